"""Plots of the hourly averages (matplotlib, no pyplot state): against ground truth, and the consumer panel's
live chart (:func:`chart_figure`)."""

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


def chart_title(name: str, shown: int, published: int | None = None, maxlen: int = 0) -> str:
    """How many averages the chart shows, and, when it is fewer than were published, why."""
    if published is not None and published > shown:
        why = f"MAXLEN ~ {maxlen} trimmed the oldest" if maxlen else "the oldest were trimmed"
        return f"{name}: the newest {shown} of {published} hourly averages published ({why})"
    return f"{name}: {shown} hourly averages"


def render_chart(data: list[tuple[int, float]], name: str = "temps:averages", published: int | None = None,
                 maxlen: int = 0, width: float = 9, height: float = 2.6) -> bytes:
    """PNG of :func:`chart_figure`."""
    from .helpers import figure_png
    return figure_png(chart_figure(data, name, published, maxlen, width, height), dpi=90)


def chart_figure(data: list[tuple[int, float]], name: str = "temps:averages", published: int | None = None,
                 maxlen: int = 0, width: float = 9, height: float = 2.6):
    """Hourly averages ``[(hour start ms, °F), …]`` with day boundaries marked (a matplotlib Figure, no pyplot).

    The title says how many are drawn; with ``published`` (entries ever added) above that, it says the cap
    (``maxlen``) trimmed the rest.  It is wrapped to fit the figure, and the newest hour has a line of its own.
    """
    import textwrap

    import matplotlib.dates as mdates

    when = pd.to_datetime([d[0] for d in data], unit="ms", utc=True)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    ax.plot(when, [d[1] for d in data], color="tab:orange", marker=".", ms=3, lw=1.2)
    for day in pd.date_range(when[0].normalize(), when[-1], freq="D", tz="UTC")[1:]:
        ax.axvline(day, color="0.85", lw=0.8, zorder=0)
    locator = mdates.AutoDateLocator(tz="UTC")
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))
    ax.set_ylabel("°F")
    title = textwrap.fill(chart_title(name, len(data), published, maxlen).replace("~ ", "~\u00a0"), int(width * 11))
    ax.set_title(f"{title}\nnewest {when[-1]:%Y/%m/%d} at {when[-1].hour}:00", fontsize=10)
    ax.grid(axis="y", color="0.92")
    return fig
