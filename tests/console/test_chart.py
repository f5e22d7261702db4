"""The overview chart: pure SVG from daily figures."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from console.chart import DayPoint, attach_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(("value", "top"), [(0, 1), (0.4, 0.5), (7, 10), (12, 20), (23, 25), (2600, 5000), (100, 100)])
def test_scales_end_on_a_readable_number(value: float, top: float) -> None:
    assert nice_ceiling(value) == top


def test_bars_follow_revenue_and_the_line_skips_days_without_orders() -> None:
    points = [DayPoint("2026-11-01", 4, 1, 15.0), DayPoint("2026-11-02", 0, 0, 0.0), DayPoint("2026-11-03", 2, 2, 30.0)]

    root = ET.fromstring(attach_chart(points, "usd"))

    bars = root.findall(f"{SVG}rect")
    heights = [float(bar.get("height", "0")) for bar in bars]
    assert len(bars) == 3 and heights[1] == 0 and heights[2] == pytest.approx(2 * heights[0])
    [line] = root.findall(f"{SVG}polyline")
    ys = [float(pair.split(",")[1]) for pair in line.get("points", "").split()]
    assert len(ys) == 2 and ys[1] < ys[0]  # 100 % sits higher than 25 %
    assert "USD" in (root.find(f"{SVG}title").text or "")  # type: ignore[union-attr]


def test_text_in_the_chart_is_escaped() -> None:
    markup = attach_chart([DayPoint("<script>", 1, 1, 1.0)], "<b>")

    assert "<script>" not in markup and "&lt;script&gt;" in markup
    ET.fromstring(markup)


def test_an_empty_chart_is_still_valid_svg() -> None:
    ET.fromstring(attach_chart([], "usd"))
