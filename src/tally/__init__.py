"""Tally: a digital-currency platform for a two-tier monetary system."""

__all__ = ["__version__"]

__version__ = "0.1.0"
