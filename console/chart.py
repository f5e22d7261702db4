"""The overview's chart, drawn on the server as inline SVG: no script, no image file.

Bars are the cross-sell revenue of each day (left scale, in the currency's major unit); the line is
the attach rate (right scale, 0-100 %). Pure: data in, markup out.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 40, 12, 28


@dataclass(frozen=True)
class DayPoint:
    """One day of the chart."""

    day: str  #: ISO date
    paid_orders: int
    orders_with_cross_sell: int
    revenue: float  #: cross-sell revenue in the major unit of the chart's currency

    @property
    def attach_rate(self) -> float | None:
        return self.orders_with_cross_sell / self.paid_orders if self.paid_orders else None


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^n at or above *value* (a readable top of a scale)."""
    if value <= 0:
        return 1.0
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def attach_chart(points: Sequence[DayPoint], currency: str) -> str:
    """The SVG markup of the chart (escaped text; safe to embed as is)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_revenue = nice_ceiling(max((p.revenue for p in points), default=0.0))
    slot = plot_w / max(1, len(points))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img" '
             f'aria-label="Attach rate and cross-sell revenue per day">',
             f"<title>Attach rate (line, right scale) and cross-sell revenue in {escape(currency.upper())} "
             f"(bars, left scale), last {len(points)} days</title>"]
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_short(top_revenue * fraction)}</text>")
        parts.append(f'<text class="axis" x="{LEFT + plot_w + 6}" y="{y + 4:.1f}">{int(fraction * 100)}%</text>')
    for index, point in enumerate(points):
        height = plot_h * point.revenue / top_revenue
        x = LEFT + index * slot + slot * 0.15
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{height:.1f}"><title>{escape(point.day)}: {_short(point.revenue)} '
                     f"{escape(currency.upper())}, {point.orders_with_cross_sell}/{point.paid_orders} orders took "
                     f"the cross-sell</title></rect>")
    line = [(LEFT + (index + 0.5) * slot, TOP + plot_h * (1 - rate))
            for index, point in enumerate(points) if (rate := point.attach_rate) is not None]
    if line:
        parts.append('<polyline class="rate" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in line) + '"/>')
        parts.extend(f'<circle class="rate-dot" cx="{x:.1f}" cy="{y:.1f}" r="2.5"/>' for x, y in line)
    for index in (0, len(points) // 2, len(points) - 1) if points else ():
        x = LEFT + (index + 0.5) * slot
        parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                     f"{escape(points[index].day[5:])}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
