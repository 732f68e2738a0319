"""Small SVG charts drawn on the server: bars for throughput, lines for supply.

The functions compute geometry only; the template `_charts.html` writes the SVG. A chart
is redrawn by swapping the fragment that holds it, so no chart library runs in the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Bar", "BarChart", "Line", "LineChart", "bar_chart", "line_chart", "nice_ceiling"]

WIDTH = 600
"""The charts' drawing width in SVG units (they scale to the page)."""
HEIGHT = 160
"""The charts' drawing height in SVG units."""
_PAD_TOP = 8
_PAD_BOTTOM = 4

PALETTE = ("#4f7cff", "#f59e0b", "#10b981", "#ef4444", "#a855f7", "#14b8a6")
"""Line colours, one per series, readable on light and dark backgrounds."""


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `value`."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale


@dataclass(frozen=True)
class Bar:
    """One bar: its box, and whether its value is known."""

    x: float
    y: float
    width: float
    height: float
    known: bool
    label: str


@dataclass(frozen=True)
class BarChart:
    """Bars with a y-axis ceiling."""

    bars: list[Bar]
    ceiling: float
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(values: list[float | None], labels: list[str]) -> BarChart:
    """Bars for `values`; None draws a faint stub (no data there)."""
    ceiling = nice_ceiling(max((v for v in values if v is not None), default=0.0))
    slot = WIDTH / max(1, len(values))
    usable = HEIGHT - _PAD_TOP - _PAD_BOTTOM
    bars = []
    for index, (value, label) in enumerate(zip(values, labels, strict=True)):
        known = value is not None
        size = usable * (value or 0.0) / ceiling if known else 3.0
        size = max(size, 1.5 if known and value else size)
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.12, 2),
                y=round(HEIGHT - _PAD_BOTTOM - size, 2),
                width=round(slot * 0.76, 2),
                height=round(size, 2),
                known=known,
                label=label,
            )
        )
    return BarChart(bars=bars, ceiling=ceiling)


@dataclass(frozen=True)
class Line:
    """One series as an SVG polyline."""

    name: str
    colour: str
    points: str
    last: float
    last_x: float
    last_y: float


@dataclass(frozen=True)
class LineChart:
    """Lines sharing one x range (heights) and one y ceiling."""

    lines: list[Line] = field(default_factory=list)
    ceiling: float = 1.0
    x_from: int = 0
    x_to: int = 0
    width: int = WIDTH
    height: int = HEIGHT


def line_chart(series: dict[str, list[tuple[int, int]]], first_colour: int = 0) -> LineChart:
    """Lines for `{name: [(x, y), ...]}`, x ascending; one point draws a flat line.

    Args:
        series: The points of each line, by name.
        first_colour: Where in `PALETTE` the first line's colour is taken.
    """
    xs = [x for points in series.values() for x, _ in points]
    if not xs:
        return LineChart()
    x_from, x_to = min(xs), max(xs)
    span = max(1, x_to - x_from)
    ceiling = nice_ceiling(max(y for points in series.values() for _, y in points))
    usable = HEIGHT - _PAD_TOP - _PAD_BOTTOM
    lines = []
    for number, (name, points) in enumerate(sorted(series.items())):
        if not points:
            continue
        coords = [
            (
                round(WIDTH * (x - x_from) / span if x_to > x_from else 0.0, 2),
                round(HEIGHT - _PAD_BOTTOM - usable * y / ceiling, 2),
            )
            for x, y in points
        ]
        if len(coords) == 1:
            coords.append((float(WIDTH), coords[0][1]))
        lines.append(
            Line(
                name=name,
                colour=PALETTE[(first_colour + number) % len(PALETTE)],
                points=" ".join(f"{x},{y}" for x, y in coords),
                last=points[-1][1],
                last_x=coords[-1][0],
                last_y=coords[-1][1],
            )
        )
    return LineChart(lines=lines, ceiling=ceiling, x_from=x_from, x_to=x_to)
