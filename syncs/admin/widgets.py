"""The dashboard's daily chart: coordinates for a server-drawn SVG (templates/admin/syncs/
_daily_chart.html)."""

from __future__ import annotations

from django.utils.formats import date_format

from syncs import selectors as sync_selectors

# The daily chart: server-side SVG (no script, no external asset), two bars per day.
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_PLOT, CHART_BOTTOM = 40, 10, 12, 150, 36
CHART_SLOT, CHART_BAR = 24, 9


def _nice_ceiling(peak: int) -> int:
    """The smallest round number (1, 1.5, 2, 3, 4, 5, 6, 8 × 10ⁿ) at or above ``peak``."""
    if peak <= 5:
        return max(peak, 1)
    magnitude = 10 ** (len(str(peak)) - 1)
    for step in (1, 1.5, 2, 3, 4, 5, 6, 8, 10):
        if peak <= step * magnitude:
            return int(step * magnitude)
    return peak  # not reached


def daily_chart(days: list[sync_selectors.DayOutcome]) -> dict:
    """Coordinates for admin/syncs/_daily_chart.html: one group per day, synced and failed bars
    side by side, a labelled y axis, and a date under every fifth day (counted back from today)."""
    top = _nice_ceiling(max([d.synced for d in days] + [d.failed for d in days] + [0]))
    baseline = CHART_TOP + CHART_PLOT

    def height(value: int) -> float:
        return round(value * CHART_PLOT / top, 2)

    bars = []
    for position, day in enumerate(days):
        x = CHART_LEFT + position * CHART_SLOT + 2
        synced_h, failed_h = height(day.synced), height(day.failed)
        labelled = (len(days) - 1 - position) % 5 == 0
        bars.append(
            {
                "day": day,
                "synced_x": x,
                "synced_y": baseline - synced_h,
                "synced_h": synced_h,
                "failed_x": x + CHART_BAR + 1,
                "failed_y": baseline - failed_h,
                "failed_h": failed_h,
                "label": date_format(day.day, "j M") if labelled else "",
                "label_x": x + CHART_BAR,
            }
        )
    ticks = sorted({0, top // 2, top}) if top >= 2 else [0, top]
    return {
        "width": CHART_LEFT + len(days) * CHART_SLOT + CHART_RIGHT,
        "height": CHART_TOP + CHART_PLOT + CHART_BOTTOM,
        "bar": CHART_BAR,
        "left": CHART_LEFT,
        "right": CHART_LEFT + len(days) * CHART_SLOT,
        "baseline": baseline,
        "label_y": baseline + 16,
        "legend_y": baseline + 32,
        "ticks": [{"value": t, "y": baseline - height(t)} for t in ticks],
        "bars": bars,
        "synced_total": sum(d.synced for d in days),
        "failed_total": sum(d.failed for d in days),
    }
