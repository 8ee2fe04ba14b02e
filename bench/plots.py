"""The benchmark's two plots, as PNG files: gifts per second against concurrency (with the
pgbench baseline), and wallet-read latency against the size of the history."""

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
) -> Path:
    """Gifts/s at each number of senders (log x), and pgbench TPC-B tps as horizontal lines."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(senders, gifts_per_second, marker="o", label="gifts/s through the core")
    for clients, tps in sorted(baselines.items()):
        _level(
            axes,
            tps,
            f"pgbench TPC-B, {clients} clients: {tps:,.0f} tps",
            at=senders[0],
            colour="grey",
            text_colour="dimgrey",
        )
    for x, y in zip(senders, gifts_per_second, strict=True):
        axes.annotate(f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
    axes.set_xscale("log", base=2)
    axes.set_xticks(senders, [str(s) for s in senders])
    return _finish(
        figure,
        axes,
        path,
        x_label="concurrent senders",
        y_label="per second",
        title=title,
        legend_at="upper right",
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
    figure, axes = plt.subplots(figsize=(7, 4.5))
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
        _level(
            axes,
            target_ms,
            f"target: p99 <= {target_ms:g} ms",
            at=postings[0],
            colour="firebrick",
            text_colour="firebrick",
        )
    axes.set_xscale("log")
    return _finish(
        figure,
        axes,
        path,
        x_label="postings in the books",
        y_label="latency, ms",
        title=title,
        legend_at="upper left",
    )


def _level(axes: Any, y: float, label: str, *, at: float, colour: str, text_colour: str) -> None:
    """A horizontal dashed line at ``y``, labelled just above it from ``at`` on."""
    axes.axhline(y, linestyle="--", linewidth=1, color=colour)
    axes.annotate(
        label,
        (at, y),
        textcoords="offset points",
        xytext=(2, 3),
        fontsize=8,
        color=text_colour,
    )


def _finish(
    figure: Any,
    axes: Any,
    path: Path,
    *,
    x_label: str,
    y_label: str,
    title: str,
    legend_at: str,
) -> Path:
    """Label the axes (y from zero), add the title, grid and legend, and write the PNG."""
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_ylim(bottom=0)
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc=legend_at, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
