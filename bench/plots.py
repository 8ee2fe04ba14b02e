"""The benchmark's two plots, as PNG files: gifts per second against concurrency (with the
pgbench baseline), and wallet-read latency against the size of the history."""

from __future__ import annotations

from pathlib import Path

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
        axes.axhline(tps, linestyle="--", linewidth=1, color="grey")
        axes.annotate(
            f"pgbench TPC-B, {clients} clients: {tps:,.0f} tps",
            (senders[0], tps),
            textcoords="offset points",
            xytext=(2, 3),
            fontsize=8,
            color="dimgrey",
        )
    for x, y in zip(senders, gifts_per_second, strict=True):
        axes.annotate(f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
    axes.set_xscale("log", base=2)
    axes.set_xticks(senders, [str(s) for s in senders])
    axes.set_xlabel("concurrent senders")
    axes.set_ylabel("per second")
    axes.set_ylim(bottom=0)
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


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
        axes.axhline(target_ms, linestyle="--", linewidth=1, color="firebrick")
        axes.annotate(
            f"target: p99 <= {target_ms:g} ms",
            (postings[0], target_ms),
            textcoords="offset points",
            xytext=(2, 3),
            fontsize=8,
            color="firebrick",
        )
    axes.set_xscale("log")
    axes.set_xlabel("postings in the books")
    axes.set_ylabel("latency, ms")
    axes.set_ylim(bottom=0)
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
