"""The SVG chart geometry."""

from __future__ import annotations

import pytest

from mailer.admin.chart import MAX_LABELS, bar_chart, line_chart, nice_step


@pytest.mark.parametrize(("largest", "step"), [(0, 1), (3, 1), (8, 2), (10, 5), (37, 10), (120, 50), (9_999, 5_000),
                                              (100_000, 50_000)])
def test_nice_step(largest, step):
    assert nice_step(largest) == step


def test_line_chart_scales_to_the_largest_value():
    chart = line_chart([0, 50, 100], ["a", "b", "c"], ["ta", "tb", "tc"])
    bottom, top = chart.bottom, chart.gridlines[-1].y
    ys = [p.y for p in chart.points]
    assert ys[0] == bottom and ys[2] == pytest.approx(top, abs=0.1) and ys[1] == pytest.approx((bottom + top) / 2, 0.1)
    xs = [p.x for p in chart.points]
    assert xs == sorted(xs) and chart.left < xs[0] and xs[-1] < chart.right
    assert [g.text for g in chart.gridlines] == ["0", "50", "100"]
    assert chart.line.startswith("M") and chart.area.endswith("Z")
    assert [p.text for p in chart.points] == ["ta", "tb", "tc"]


def test_labels_are_thinned_but_keep_the_newest():
    labels = [f"w{n}" for n in range(26)]
    chart = line_chart(list(range(26)), labels, labels)
    shown = [m.text for m in chart.labels]
    assert len(shown) <= MAX_LABELS + 1 and shown[-1] == "w25"


def test_bar_chart_pairs():
    chart = bar_chart([(4, 1), (0, 0), (2, 3)], ["a", "b", "c"], ["1", "2", "3"])
    assert [b.kind for b in chart.bars] == ["joined", "left"] * 3
    heights = [b.height for b in chart.bars]
    assert heights[2:4] == [0, 0] and heights[0] > heights[5] > heights[4] > heights[1]
    assert all(b.y + b.height == pytest.approx(chart.bottom, abs=0.1) for b in chart.bars)


def test_empty_series():
    chart = line_chart([], [], [])
    assert chart.points == [] and chart.line == ""
