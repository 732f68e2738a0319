"""Orderers behind one interface: `solo` (the embedded default) and, later, `pbft`."""

from tally.consensus.orderer import Application, Orderer, Proposal, ProposalT
from tally.consensus.solo import SoloOrderer

__all__ = ["Application", "Orderer", "Proposal", "ProposalT", "SoloOrderer"]
