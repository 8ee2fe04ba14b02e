"""The benchmark's plots, as PNG files: gifts per second against concurrency (with the pgbench
baseline and the target), wallet-read latency against the size of the history, and the mixed
phase's latencies by kind of request. Reference lines are named in the legend, which sits below
the plot: no label lies on another, and the legend hides no line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DPI = 120


def throughput_plot(
    path: Path,
    senders: list[int],
    gifts_per_second: list[float],
    baselines: dict[int, float],
    title: str,
    target: tuple[int, float] | None = None,
) -> Path:
    """Gifts/s at each number of senders (log x), pgbench TPC-B tps as horizontal lines, and
    ``target`` (senders, gifts/s) as a line of its own."""
    figure, axes = plt.subplots(figsize=(8, 4.8))
    axes.plot(senders, gifts_per_second, marker="o", label="gifts/s through the core")
    for n, (clients, tps) in enumerate(sorted(baselines.items(), reverse=True)):
        axes.axhline(
            tps,
            linestyle=(0, (4, 2 + 2 * n)),
            linewidth=1,
            color="dimgrey" if n == 0 else "darkgrey",
            label=f"pgbench TPC-B, {clients} clients: {tps:,.0f} tps",
        )
    if target is not None:
        at, rate = target
        axes.axhline(rate, linestyle="--", linewidth=1.2, color="firebrick")
        axes.plot(
            [at],
            [rate],
            marker="*",
            markersize=12,
            color="firebrick",
            linestyle="--",
            label=f"target at {at} senders: >= {rate:,.0f} gifts/s",
        )
    for x, y in zip(senders, gifts_per_second, strict=True):
        axes.annotate(
            f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8
        )
    axes.set_xscale("log", base=2)
    axes.set_xticks(senders, [str(s) for s in senders])
    axes.set_xlim(senders[0] / 1.6, senders[-1] * 1.6)
    return _finish(
        figure, axes, path, x_label="concurrent senders", y_label="per second", title=title
    )


def latency_plot(
    path: Path,
    postings: list[int],
    latencies_ms: dict[str, list[float | None]],
    target_ms: float | None,
    title: str,
) -> Path:
    """Latency percentiles against postings in the books (log x). Labels are
    ``"<percentile>, <series>"``: one colour per series, p50 solid and higher percentiles
    dashed."""
    figure, axes = plt.subplots(figsize=(8, 4.8))
    colours: dict[str, str] = {}
    for label, values in latencies_ms.items():
        percentile, _, series = label.partition(", ")
        colour = colours.setdefault(series, f"C{len(colours)}")
        points = [(x, y) for x, y in zip(postings, values, strict=True) if y is not None]
        axes.plot(
            [x for x, _ in points],
            [y for _, y in points],
            marker="o",
            color=colour,
            linestyle="-" if percentile == "p50" else "--",
            label=label,
        )
    if target_ms is not None:
        axes.axhline(
            target_ms,
            linestyle=":",
            linewidth=1.5,
            color="firebrick",
            label=f"target: p99 <= {target_ms:g} ms",
        )
    axes.set_xscale("log")
    return _finish(
        figure, axes, path, x_label="postings in the books", y_label="latency, ms", title=title
    )


def mixed_plot(
    path: Path,
    latencies_ms: dict[str, tuple[float | None, float | None]],
    target_ms: float,
    deadlocks: int,
    title: str,
) -> Path:
    """The mixed phase: p50 and p99 of each kind of request (bars), the p99 target as a line,
    and the deadlocks PostgreSQL counted in the title."""
    figure, axes = plt.subplots(figsize=(8, 4.8))
    kinds = list(latencies_ms)
    xs = range(len(kinds))
    width = 0.38
    for offset, name, index in ((-width / 2, "p50", 0), (width / 2, "p99", 1)):
        values = [latencies_ms[kind][index] or 0.0 for kind in kinds]
        bars = axes.bar([x + offset for x in xs], values, width, label=name)
        axes.bar_label(bars, [f"{v:,.1f}" for v in values], fontsize=8, padding=2)
    axes.axhline(
        target_ms,
        linestyle="--",
        linewidth=1.2,
        color="firebrick",
        label=f"target: p99 <= {target_ms:g} ms, 0 deadlocks",
    )
    axes.set_xticks(list(xs), kinds)
    return _finish(
        figure,
        axes,
        path,
        x_label="request",
        y_label="latency, ms",
        title=f"{title}: {deadlocks} deadlocks",
    )


def _finish(
    figure: Any,
    axes: Any,
    path: Path,
    *,
    x_label: str,
    y_label: str,
    title: str,
) -> Path:
    """Label the axes (y from zero, with room above the highest point), add the title, the
    grid and the legend, outside the plot so that it hides no line, and write the PNG."""
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_ylim(bottom=0, top=axes.get_ylim()[1] * 1.08)
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(0, -0.14), ncol=2, fontsize=8, frameon=False)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return path
