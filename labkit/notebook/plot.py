"""Plots of the hourly averages against ground truth (matplotlib, no pyplot state)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure


def averages_vs_truth(table: pd.DataFrame, title: str = "Hourly average temperature") -> Figure:
    """Two panels: published averages over ground truth, and their difference per hour.

    ``table`` is :attr:`labkit.core.truth.Report.table` (one row per published hour,
    with ``ms``, ``avg`` and ``true_mean``).  Day boundaries are marked.
    """
    t = table.sort_values("ms")
    when = pd.to_datetime(t["ms"], unit="ms", utc=True)
    fig = Figure(figsize=(11, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot(when, t["true_mean"], color="0.6", lw=4, label="ground truth (from raw readings)")
    top.plot(when, t["avg"], color="tab:orange", lw=1.4, marker=".", ms=3, label="temps:averages")
    top.set_ylabel("°F")
    top.set_title(title)
    top.legend(loc="upper right")
    # The exact published mean (sum / count) where the entry carries its sum; else the rounded average.
    exact = (t["sum"] / t["count"]).where(t["sum"].notna(), t["avg"])
    diff = exact - t["true_mean"]
    bottom.bar(when, diff, width=1 / 24, color="tab:blue")
    bottom.axhline(0, color="0.3", lw=0.8)
    bottom.set_ylabel("published − truth (°F)")
    lim = max(0.01, float(diff.abs().max()) * 1.2 if len(diff) else 0.01)
    bottom.set_ylim(-lim, lim)
    if len(when):
        for day in pd.date_range(when.iloc[0].normalize(), when.iloc[-1], freq="D", tz="UTC")[1:]:
            for ax in (top, bottom):
                ax.axvline(day, color="0.85", lw=0.8, zorder=0)
    bottom.set_xlabel("hour (UTC); grey lines are partition (day) boundaries")
    return fig
