"""The figures as a rich table and as JSON (bench/results/latest.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.books import BooksCheck
from bench.graphql_caches import CacheFigures
from bench.history_phase import HistoryResult
from bench.load import LoadResult
from bench.mixed import MIX, MixedResult
from bench.over_http import CpuUse, ServiceMemory
from bench.pgbench import SCALE, Baseline
from bench.platform_shards import ShardSplit
from bench.replica_reads import ReplicaReads
from bench.storage import StorageGrowth

MIB = 1024 * 1024


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _yes_no(value: bool | None, yes: str, no: str) -> str:
    if value is None:
        return "-"
    return f"[green]{yes}[/green]" if value else f"[bold red]{no}[/bold red]"


@dataclass(slots=True)
class Figure:
    key: str
    label: str
    phase: str
    """baseline, core or http."""
    clients: int
    users: int
    load: LoadResult | None
    books: BooksCheck | None
    baseline_tps: float
    """pgbench TPC-B tps at the same number of clients, this run."""
    memory: ServiceMemory | None = None
    transactions: int | None = None
    """PostgreSQL transactions in the phase's database during the load (ledger phases)."""
    pgbench: Baseline | None = None
    creators: int | None = None
    """Gift phases: how many creators the gifts went to."""
    noun: str = "purchase"
    """What one request of the phase is: a purchase or a gift."""
    baseline_clients: int | None = None
    """The pgbench client count of ``baseline_tps`` (``None``: the same as ``clients``)."""
    storage: StorageGrowth | None = None
    """Gift phases: table and index growth per gift."""
    cpu: CpuUse | None = None
    """HTTP phases: CPU time of the service and of the load generator."""
    mixed: MixedResult | None = None
    """The mixed phase: its kinds of request and the deadlocks PostgreSQL counted."""

    def cpu_ms_per_request(self) -> tuple[float, float] | None:
        """The service's and the client's CPU milliseconds per acknowledged request."""
        if self.cpu is None or self.load is None or not self.load.acknowledged:
            return None
        return (
            self.cpu.service_seconds * 1000 / self.load.acknowledged,
            self.cpu.client_seconds * 1000 / self.load.acknowledged,
        )

    @classmethod
    def of_pgbench(cls, result: Baseline) -> Figure:
        return cls(
            key=f"pgbench_c{result.clients}",
            label=f"pgbench TPC-B -s {SCALE} (baseline)",
            phase="baseline",
            clients=result.clients,
            users=0,
            load=None,
            books=None,
            baseline_tps=result.tps,
            pgbench=result,
        )

    @property
    def per_second(self) -> float:
        if self.pgbench is not None:
            return self.pgbench.tps
        assert self.load is not None
        return self.load.per_second

    @property
    def ratio(self) -> float | None:
        return self.per_second / self.baseline_tps if self.baseline_tps > 0 else None

    @property
    def unit(self) -> str:
        return "tps" if self.pgbench else f"{self.noun}s/s"

    @property
    def transactions_per_request(self) -> float | None:
        if self.transactions is None or self.load is None or not self.load.acknowledged:
            return None
        return self.transactions / self.load.acknowledged

    def failures(self) -> list[str]:
        found: list[str] = []
        if self.books is not None and not self.books.ok:
            found += [f"{self.key}: {problem}" for problem in self.books.problems()]
        if self.load is not None and self.load.errors:
            found.append(f"{self.key}: {self.load.errors} requests failed")
        if self.pgbench is not None and self.pgbench.failed:
            found.append(f"{self.key}: {self.pgbench.failed} pgbench transactions failed")
        if self.mixed is not None and self.mixed.deadlocks:
            found.append(f"{self.key}: PostgreSQL reported {self.mixed.deadlocks} deadlocks")
        return found

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "key": self.key,
            "label": self.label,
            "phase": self.phase,
            "clients": self.clients,
            "users": self.users or None,
            "per_second": round(self.per_second, 2),
            "unit": self.unit,
            "baseline_tps": round(self.baseline_tps, 2),
            "baseline_clients": self.baseline_clients or self.clients,
            "ratio_to_pgbench": _round(self.ratio, 4),
        }
        if self.pgbench is not None:
            found |= {
                "runs_tps": [round(run.tps, 2) for run in self.pgbench.runs],
                "drift": round(self.pgbench.drift, 4),
                "latency_avg_ms": _round(self.pgbench.latency_avg_ms),
                "failed": self.pgbench.failed,
                "seconds": self.pgbench.runs[0].seconds,
            }
        if self.load is not None:
            found |= {
                "completed_in_window": self.load.completed,
                "window_seconds": self.load.window_seconds,
                "latency_p50_ms": _round(self.load.p50_ms),
                "latency_p99_ms": _round(self.load.p99_ms),
                "latency_mean_ms": _round(self.load.mean_ms),
                "acknowledged_total": self.load.acknowledged,
                "errors": self.load.errors,
                "error_examples": self.load.error_examples,
                "db_transactions": self.transactions,
                f"db_transactions_per_{self.noun}": _round(self.transactions_per_request, 2),
            }
            if self.creators is not None:
                found["creators"] = self.creators
        if self.books is not None:
            found["books"] = {
                "ok": self.books.ok,
                "acknowledged": self.books.acknowledged,
                f"{self.books.kind}_entries": self.books.entries,
                "entries_checked": self.books.entries_checked,
                "problems": self.books.problems(),
            }
        if self.memory is not None:
            found["service_rss_idle_mib"] = round(self.memory.idle_rss / MIB, 1)
            found["service_rss_peak_mib"] = round(self.memory.peak_rss / MIB, 1)
        if self.storage is not None:
            found["storage"] = self.storage.to_json()
        if self.mixed is not None:
            found["mixed"] = self.mixed.to_json()
        per_request = self.cpu_ms_per_request()
        if self.cpu is not None and per_request is not None:
            found["cpu"] = {
                "service_seconds": round(self.cpu.service_seconds, 2),
                "client_seconds": round(self.cpu.client_seconds, 2),
                "wall_seconds": round(self.cpu.wall_seconds, 2),
                f"service_ms_per_{self.noun}": round(per_request[0], 3),
                f"client_ms_per_{self.noun}": round(per_request[1], 3),
            }
        return found


@dataclass(frozen=True, slots=True)
class Target:
    """One of the figures the service is held to: its value, the target, and whether the run
    met it (``None``: not measured in this run)."""

    figure: str
    value: str
    ratio: float | None
    """To pgbench TPC-B at 32 clients, where the figure is a rate."""
    target: str
    met: bool | None
    books_ok: bool | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": self.value,
            "ratio_to_pgbench_c32": _round(self.ratio, 4),
            "target": self.target,
            "met": self.met,
            "books_ok": self.books_ok,
            "note": self.note,
        }


@dataclass(slots=True)
class Report:
    started_at: datetime
    elapsed_seconds: float
    seconds: int
    warmup: float
    quick: bool
    machine: dict[str, Any]
    figures: list[Figure]
    graphql_caches: CacheFigures | None = None
    targets: list[Target] = field(default_factory=list)
    history: HistoryResult | None = None
    plots: list[Path] = field(default_factory=list)
    replica_reads: ReplicaReads | None = None
    """Wallet and history reads over HTTP without and with a streaming replica."""
    platform_shards: ShardSplit | None = None
    """Core gifts with the hot platform accounts whole and split into sub-accounts."""

    @property
    def ok(self) -> bool:
        return not self.failures()

    def failures(self) -> list[str]:
        found = [failure for figure in self.figures for failure in figure.failures()]
        if self.history is not None:
            found += self.history.failures()
        if self.replica_reads is not None:
            found += self.replica_reads.failures()
        if self.platform_shards is not None:
            found += self.platform_shards.failures()
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "elapsed_seconds": round(self.elapsed_seconds, 1),
            "seconds_per_phase": self.seconds,
            "warmup_seconds": self.warmup,
            "quick": self.quick,
            "ok": self.ok,
            "failures": self.failures(),
            "machine": self.machine,
            "targets": [target.to_json() for target in self.targets],
            "figures": [figure.to_json() for figure in self.figures],
            "wallet_reads_by_history": self.history.to_json() if self.history else None,
            "graphql_caches": self.graphql_caches.to_json() if self.graphql_caches else None,
            "replica_reads": self.replica_reads.to_json() if self.replica_reads else None,
            "platform_shards": self.platform_shards.to_json() if self.platform_shards else None,
            "plots": [str(path) for path in self.plots],
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def figures_table(self) -> Table:
        table = Table(
            title=f"Coinbooks benchmark, {self.started_at:%Y-%m-%d %H:%M} UTC "
            f"({self.seconds} s per phase{', quick' if self.quick else ''})",
        )
        table.add_column("figure")
        table.add_column("clients", justify="right")
        table.add_column("per second", justify="right")
        table.add_column("ratio to pgbench", justify="right")
        table.add_column("p50 ms", justify="right")
        table.add_column("p99 ms", justify="right")
        table.add_column("books", justify="center")
        table.add_column("notes")
        for figure in self.figures:
            ratio = "-" if figure.ratio is None else f"{figure.ratio:.3f}"
            if figure.pgbench is not None:
                table.add_row(
                    figure.label,
                    str(figure.clients),
                    f"{figure.per_second:,.0f} tps",
                    ratio,
                    "-",
                    "-",
                    "-",
                    "mean of "
                    + " and ".join(f"{run.tps:,.0f}" for run in figure.pgbench.runs)
                    + f" (before, after: drift {figure.pgbench.drift:.0%}); "
                    f"latency avg {_ms(figure.pgbench.latency_avg_ms)} ms",
                )
                continue
            assert figure.load is not None and figure.books is not None
            notes = []
            if figure.transactions_per_request is not None:
                notes.append(f"{figure.transactions_per_request:.1f} db xacts/{figure.noun}")
            if figure.load.errors:
                notes.append(f"[red]{figure.load.errors} errors[/red]")
            if figure.memory is not None:
                notes.append(
                    f"service RSS peak {figure.memory.peak_rss / MIB:,.0f} MiB "
                    f"(idle {figure.memory.idle_rss / MIB:,.0f})"
                )
            if figure.storage is not None and figure.storage.bytes_per_gift is not None:
                notes.append(f"{figure.storage.bytes_per_gift:,.0f} B/gift stored")
            if figure.mixed is not None:
                deadlocks = figure.mixed.deadlocks
                notes.append(
                    ("[bold red]" if deadlocks else "")
                    + f"{deadlocks} deadlocks"
                    + ("[/bold red]" if deadlocks else "")
                    + "; "
                    + ", ".join(f"{kind} {share}%" for kind, share in MIX.items())
                )
            per_request = figure.cpu_ms_per_request()
            if per_request is not None:
                notes.append(
                    f"CPU/{figure.noun}: service {per_request[0]:.1f} ms, "
                    f"client {per_request[1]:.2f} ms"
                )
            if figure.baseline_clients not in (None, figure.clients):
                notes.append(f"ratio to pgbench at {figure.baseline_clients} clients")
            table.add_row(
                figure.label,
                str(figure.clients),
                f"{figure.per_second:,.1f} {figure.unit}",
                ratio,
                _ms(figure.load.p50_ms),
                _ms(figure.load.p99_ms),
                "[green]OK[/green]" if figure.books.ok else "[bold red]FAIL[/bold red]",
                ", ".join(notes),
            )
        return table

    def machine_table(self) -> Table:
        m = self.machine
        table = Table("machine", "", title="Measured on", show_header=False)
        table.add_row(
            "CPU",
            f"{m['cpu_model']}, {m['logical_cores']} logical cores "
            f"({m['physical_cores']} physical)",
        )
        table.add_row("memory", f"{m['memory_bytes'] / 1024**3:,.1f} GiB")
        table.add_row("PostgreSQL", f"{m['postgres']} ({m['database']})")
        settings = m.get("postgres_settings") or {}
        table.add_row("server settings", ", ".join(f"{k}={v}" for k, v in settings.items()))
        table.add_row("Python", str(m["python"]))
        table.add_row("OS", str(m["os"]))
        load = m.get("load_average_at_start")
        if load:
            table.add_row("load average at start", " ".join(f"{x:.2f}" for x in load))
        table.add_row("run took", f"{self.elapsed_seconds:,.0f} s")
        return table

    def targets_table(self) -> Table:
        table = Table(title="Targets: every rate as a ratio to pgbench TPC-B at 32 clients")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("ratio to pgbench", justify="right")
        table.add_column("target")
        table.add_column("met", justify="center")
        table.add_column("books", justify="center")
        table.add_column("notes")
        for target in self.targets:
            table.add_row(
                target.figure,
                target.value,
                "-" if target.ratio is None else f"{target.ratio:.3f}",
                target.target,
                _yes_no(target.met, "yes", "NO"),
                _yes_no(target.books_ok, "OK", "FAIL"),
                target.note,
            )
        return table

    def history_table(self) -> Table | None:
        if self.history is None:
            return None
        history = self.history
        table = Table(
            title=f"Wallet reads over HTTP by history size ({history.readers} wallets read, "
            f"{history.users:,} wallets in the books)"
        )
        table.add_column("postings", justify="right")
        table.add_column("a read wallet's postings", justify="right")
        table.add_column("read", justify="left")
        table.add_column("reads/s", justify="right")
        table.add_column("p50 ms", justify="right")
        table.add_column("p99 ms", justify="right")
        table.add_column("service CPU/read ms", justify="right")
        table.add_column("balances")
        for step in history.steps:
            for name, load in step.reads.items():
                table.add_row(
                    f"{step.postings:,}",
                    f"{step.reader_postings_min:,}",
                    name,
                    f"{load.per_second:,.0f}",
                    _ms(load.p50_ms),
                    _ms(load.p99_ms),
                    _ms(step.service_cpu_ms.get(name)),
                    "[green]OK[/green]"
                    if not step.mismatches and not load.errors
                    else "[bold red]FAIL[/bold red]",
                )
        return table

    def finance_table(self) -> Table | None:
        """Finance's reads over the whole history, and the journal export."""
        finance = self.history.finance if self.history is not None else None
        if finance is None:
            return None
        table = Table(title=f"Finance reads over {finance.postings:,} postings (issue 11)")
        for column in ("read", "median ms", "max ms", "target", "met", "detail"):
            table.add_column(column, justify="right" if "ms" in column else "left")
        for timing in finance.timings:
            target = timing.target_seconds
            table.add_row(
                timing.name,
                _ms(timing.median * 1000),
                _ms(max(timing.seconds) * 1000),
                "-" if target is None else f"<= {target * 1000:,.0f} ms",
                _yes_no(timing.met, "yes", "NO"),
                Text(timing.detail),  # plain: account codes are not markup nor emoji
            )
        for run in finance.exports:
            table.add_row(
                f"journal export, {run.label}",
                f"{run.seconds * 1000:,.0f}",
                "-",
                "-",
                "-",
                f"{run.lines:,} lines, {run.lines_per_second:,.0f} lines/s, "
                f"peak RSS {run.peak_rss_bytes / MIB:,.0f} MiB, "
                f"exporter CPU {run.cpu_seconds:,.1f} s",
            )
        for name, size in finance.index_bytes.items():
            per_entry = size / finance.entries if finance.entries else 0
            table.add_row(
                f"index {name}",
                "-",
                "-",
                "-",
                "-",
                f"{size / MIB:,.1f} MiB, {per_entry:,.1f} B/entry",
            )
        return table

    def print(self, console: Console) -> None:
        if self.targets:
            console.print(self.targets_table())
        console.print(self.figures_table())
        history = self.history_table()
        if history is not None:
            console.print(history)
            assert self.history is not None
            seed = self.history.seed
            console.print(
                f"History: {seed.postings_written:,} postings written in {seed.seconds:,.0f} s "
                f"({seed.postings_per_second:,.0f}/s); integrity check over "
                f"{seed.postings:,} postings: "
                + ("no violation" if not self.history.violations else "[bold red]FAIL[/bold red]")
                + f" in {self.history.integrity_seconds:,.0f} s; database "
                f"{self.history.database_bytes / 1024**3:,.2f} GiB"
            )
        finance = self.finance_table()
        if finance is not None:
            console.print(finance)
        if self.replica_reads is not None:
            console.print(self.replica_reads.table())
        if self.platform_shards is not None:
            console.print(self.platform_shards.table())
        console.print(self.machine_table())
