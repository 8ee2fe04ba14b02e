"""One benchmark run against one PostgreSQL server: the pgbench baseline, the core phases
(purchases, gifts, the gift concurrency sweep) and the HTTP phases (purchases, gifts, and the
mix of gifts, unlocks, purchases, replays and wallet reads, which fails the run on any deadlock),
each ledger phase followed by the invariant check; the baseline again; wallet reads as a long
history grows, with the integrity check over all of it; then the report, its targets and its
plots."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy.engine import URL

from api.database import migrate
from bench import graphql_caches, pgbench
from bench.close_guard import CLIENTS as CLOSE_GUARD_CLIENTS
from bench.close_guard import CREATORS as CLOSE_GUARD_CREATORS
from bench.close_guard import GuardCost, run_guard_cost
from bench.database import BenchServer, bench_server
from bench.finance_phase import EXPORT_TARGET_LINES_PER_SECOND, FinanceResult
from bench.history_phase import HistoryPlan, HistoryResult, ReadSeries, run_history_phase
from bench.load import percentile
from bench.machine import machine_info
from bench.mixed import MIX
from bench.phases import (
    PhaseResult,
    run_core_phase,
    run_gift_phase,
    run_http_gift_phase,
    run_http_phase,
    run_mixed_phase,
)
from bench.platform_shards import SHARDS, ShardSplit, run_shard_split
from bench.plots import latency_plot, mixed_plot, throughput_plot
from bench.replica_reads import run_replica_reads
from bench.report import Figure, Report, Target

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BASELINE_CLIENTS = (32, 8)
TARGET_CLIENTS = 32
"""The pgbench client count every target ratio is taken against."""
HTTP_CLIENTS = 32
FEW_USERS = 4
UNIFORM_CREATORS = 100
SWEEP_SENDERS = (1, 8, 32, 128)
CONNECTION_RESERVE = 12
"""Server connections a gift phase leaves free (for the admin connection, the counts and the
books check; pgbench is not running then): its engine has at most ``max_connections`` minus
these."""
HISTORY_USERS = 10_000
HISTORY_READERS = 16
READ_SERIES = (
    ReadSeries("now, 1 connection", 1),
    ReadSeries("now, 4 connections", 4),
    ReadSeries("asOf, 4 connections", 4, past=True),
)
"""How the wallets are read at each history size, in turn: the current balance from one
connection (a read alone) and from four, and the balance halfway through the history from
four."""
READ_TARGET = READ_SERIES[1]
READ_SECONDS_MAX = 5
TARGET_HISTORY_POSTINGS = 10_000_000
MB = 1_000_000
UNIFORM_TARGET_RATIO = 1.2
"""Gifts through the core, 32 senders, uniform creators: at least this many times pgbench."""
MIXED_P99_MS = 150


@dataclass(frozen=True, slots=True)
class Options:
    seconds: int
    warmup: float
    quick: bool
    output: Path
    history_postings: int = TARGET_HISTORY_POSTINGS
    """Postings to grow the wallet-read history to; 0 leaves that phase out."""


@dataclass(frozen=True, slots=True)
class LedgerPhase:
    key: str
    label: str
    phase: str
    """core or http."""
    clients: int
    users: int | None = None
    """``None``: a user of its own per worker (or connection)."""
    flow: str = "purchase"
    """What each request is: a purchase or a gift."""
    creators: int | None = None
    """Gifts: the live creators the gifts are spread over, uniformly."""
    baseline_clients: int | None = None
    """pgbench's client count for the ratio (``None``: as many as this phase has)."""


CORE_PHASES = (
    LedgerPhase("core_c8", "core: a user per worker", "core", 8),
    LedgerPhase("core_c32", "core: a user per worker", "core", 32),
    LedgerPhase("core_c32_few_users", f"core: all to {FEW_USERS} users", "core", 32, FEW_USERS),
)
GIFT_PHASES = (
    LedgerPhase(
        "gifts_c32_uniform",
        f"core gifts: {UNIFORM_CREATORS} creators, uniform",
        "core",
        32,
        flow="gift",
        creators=UNIFORM_CREATORS,
    ),
    LedgerPhase(
        "gifts_c32_one_creator",
        "core gifts: all to one creator",
        "core",
        32,
        flow="gift",
        creators=1,
    ),
)
SWEEP_PHASES = tuple(
    LedgerPhase(
        f"gifts_c{senders}_uniform",
        f"core gifts: {UNIFORM_CREATORS} creators, uniform",
        "core",
        senders,
        flow="gift",
        creators=UNIFORM_CREATORS,
        baseline_clients=TARGET_CLIENTS,
    )
    for senders in SWEEP_SENDERS
    if senders != 32  # the 32-sender point is GIFT_PHASES' first
)
HTTP_PHASE = LedgerPhase(
    f"http_c{HTTP_CLIENTS}", "GraphQL purchaseCoins over HTTP", "http", HTTP_CLIENTS
)
HTTP_GIFT_PHASE = LedgerPhase(
    f"http_gifts_c{HTTP_CLIENTS}",
    f"GraphQL sendGift over HTTP, {UNIFORM_CREATORS} creators",
    "http",
    HTTP_CLIENTS,
    flow="gift",
    creators=UNIFORM_CREATORS,
    baseline_clients=TARGET_CLIENTS,
)


MIXED_PHASE = LedgerPhase(
    f"mixed_c{HTTP_CLIENTS}",
    "GraphQL mix over HTTP: " + ", ".join(f"{kind} {share}%" for kind, share in MIX.items()),
    "http",
    HTTP_CLIENTS,
    flow="mixed",
    creators=UNIFORM_CREATORS,
    baseline_clients=TARGET_CLIENTS,
)
"""Gifts with unlocks, purchases, replays and wallet reads among them (bench/mixed.py)."""
ALL_PHASES = (
    *CORE_PHASES,
    *GIFT_PHASES,
    *SWEEP_PHASES,
    HTTP_PHASE,
    HTTP_GIFT_PHASE,
    MIXED_PHASE,
)


def run_pgbench(
    server: BenchServer, url: URL, seconds: int, console: Console
) -> dict[int, pgbench.PgbenchResult]:
    found: dict[int, pgbench.PgbenchResult] = {}
    for clients in BASELINE_CLIENTS:
        server.checkpoint()
        console.print(f"pgbench -c {clients} -j {pgbench.THREADS} -T {seconds}")
        found[clients] = result = pgbench.run(url, clients, seconds)
        console.print(f"  [bold]{result.tps:,.0f}[/bold] tps")
    return found


def run_phase(
    server: BenchServer,
    template: URL,
    phase: LedgerPhase,
    options: Options,
    console: Console,
    max_pool: int,
) -> PhaseResult:
    """The phase on a fresh copy of the migrated template, dropped afterwards."""
    url = server.create(phase.key, template=template)
    server.checkpoint()
    if phase.flow == "mixed":
        assert phase.creators is not None
        result = run_mixed_phase(
            url,
            clients=phase.clients,
            seconds=options.seconds,
            warmup=options.warmup,
            creators=phase.creators,
            log_path=RESULTS_DIR / "service-mixed.log",
        )
    elif phase.flow == "gift" and phase.phase == "http":
        assert phase.creators is not None
        result = run_http_gift_phase(
            url,
            clients=phase.clients,
            seconds=options.seconds,
            warmup=options.warmup,
            creators=phase.creators,
            log_path=RESULTS_DIR / "service.log",
        )
    elif phase.flow == "gift":
        assert phase.creators is not None
        result = run_gift_phase(
            url,
            clients=phase.clients,
            seconds=options.seconds,
            warmup=options.warmup,
            creators=phase.creators,
            max_pool=max_pool,
        )
    elif phase.phase == "core":
        result = run_core_phase(
            url,
            clients=phase.clients,
            seconds=options.seconds,
            warmup=options.warmup,
            users=phase.users,
        )
    else:
        result = run_http_phase(
            url,
            clients=phase.clients,
            seconds=options.seconds,
            warmup=options.warmup,
            log_path=RESULTS_DIR / "service.log",
        )
    server.drop(url)
    _report_phase(console, result, _noun(phase))
    return result


def _noun(phase: LedgerPhase) -> str:
    """What one request of the phase is called: a purchase, a gift, or (the mix) a request."""
    return "request" if phase.flow == "mixed" else phase.flow


def _report_phase(console: Console, result: PhaseResult, flow: str) -> None:
    load, books = result.load, result.books
    p99 = "-" if load.p99_ms is None else f"{load.p99_ms:,.1f}"
    console.print(
        f"  [bold]{load.per_second:,.1f}[/bold] {flow}s/s, p99 {p99} ms, "
        f"{load.errors} errors; books: "
        + (
            f"[green]OK[/green] ({books.acknowledged:,} acknowledged = "
            f"{books.entries:,} {books.kind} entries, no violations)"
            if books.ok
            else "[bold red]FAIL[/bold red]"
        )
    )
    if result.mixed is not None:
        deadlocks = result.mixed.deadlocks
        console.print(
            "  PostgreSQL deadlocks: "
            + (f"[bold red]{deadlocks}[/bold red]" if deadlocks else "[green]0[/green]")
            + f", p50 {_ms(load.p50_ms)} ms; "
            + ", ".join(
                f"{kind} p99 {_ms(result.mixed.p99_ms(kind))} ms"
                for kind in result.mixed.latencies_ms
            )
        )
    for problem in books.problems()[:20]:
        console.print(f"    [bold red]FAIL[/bold red] {problem}")
    for example in load.error_examples:
        console.print(f"    [yellow]error[/yellow] {example}")


def ledger_figure(
    phase: LedgerPhase, result: PhaseResult, baselines: dict[int, pgbench.Baseline]
) -> Figure:
    baseline_clients = phase.baseline_clients or phase.clients
    return Figure(
        key=phase.key,
        label=phase.label,
        phase=phase.phase,
        clients=phase.clients,
        users=phase.users or phase.clients,
        creators=phase.creators,
        noun=_noun(phase),
        load=result.load,
        books=result.books,
        baseline_tps=baselines[baseline_clients].tps,
        memory=result.memory,
        transactions=result.transactions,
        baseline_clients=baseline_clients,
        storage=result.storage,
        cpu=result.cpu,
        mixed=result.mixed,
    )


def targets(
    figures: dict[str, Figure],
    history: HistoryResult | None,
    history_wanted: int,
    guard: GuardCost | None = None,
) -> list[Target]:
    """The issue's table: each figure against its target, from this run's figures."""
    found = [*_gift_targets(figures), _wallet_read_target(history, history_wanted)]
    if guard is not None:
        found.append(_guard_target(guard))
    found += _finance_targets(history.finance if history is not None else None)
    stored = [f for f in figures.values() if f.storage is not None and f.storage.gifts]
    if stored:
        most = max(stored, key=lambda f: f.storage.gifts if f.storage else 0)
        found.append(_storage_target(most))
    served = [f for f in figures.values() if f.memory is not None]
    if served:
        peak = max(served, key=lambda f: f.memory.peak_rss if f.memory else 0)
        found.append(_memory_target(peak))
    return found


def _books_ok(*of: Figure) -> bool:
    return all(f.books is not None and f.books.ok for f in of)


def _gift_targets(figures: dict[str, Figure]) -> list[Target]:
    """The rates held to targets: gifts through the core (uniform creators, and all to one),
    purchases through the core, gifts over HTTP, and the mixed phase over HTTP."""
    uniform = figures["gifts_c32_uniform"]
    one = figures["gifts_c32_one_creator"]
    of_uniform = one.per_second / uniform.per_second if uniform.per_second else None
    return [
        Target(
            "gifts/s through the core, 32 senders, uniform creators",
            f"{uniform.per_second:,.1f}/s",
            uniform.ratio,
            f">= {UNIFORM_TARGET_RATIO:g}x pgbench",
            uniform.ratio is not None and uniform.ratio >= UNIFORM_TARGET_RATIO,
            _books_ok(uniform),
        ),
        Target(
            "the same, every gift to one creator",
            f"{one.per_second:,.1f}/s",
            one.ratio,
            ">= 0.9x uniform",
            of_uniform is not None and of_uniform >= 0.9,
            _books_ok(one),
            "-" if of_uniform is None else f"{of_uniform:.2f}x uniform",
        ),
        _rate_target(
            figures["core_c32"], "purchases through the core, 32 workers", 0.5, p99_ms=100
        ),
        _rate_target(figures[HTTP_GIFT_PHASE.key], "sendGift over HTTP, 32 connections", 0.4, 100),
        _mixed_target(figures[MIXED_PHASE.key]),
    ]


def _rate_target(figure: Figure, name: str, ratio: float, p99_ms: float) -> Target:
    """A rate of at least ``ratio`` times pgbench's, with a p99 of at most ``p99_ms``."""
    assert figure.load is not None
    p99 = figure.load.p99_ms
    return Target(
        name,
        f"{figure.per_second:,.1f}/s, p99 {_ms(p99)} ms",
        figure.ratio,
        f">= {ratio:g}x pgbench, p99 <= {p99_ms:g} ms",
        figure.ratio is not None and figure.ratio >= ratio and p99 is not None and p99 <= p99_ms,
        _books_ok(figure),
    )


def _mixed_target(mixed: Figure) -> Target:
    """The mixed phase: no deadlock at all, and its p99 over every kind of request."""
    assert mixed.load is not None and mixed.mixed is not None
    p99, deadlocks = mixed.load.p99_ms, mixed.mixed.deadlocks
    return Target(
        "mixed phase over HTTP, 32 connections",
        f"{deadlocks} deadlocks, p99 {_ms(p99)} ms",
        mixed.ratio,
        f"0 deadlocks, p99 <= {MIXED_P99_MS} ms",
        deadlocks == 0 and p99 is not None and p99 <= MIXED_P99_MS,
        _books_ok(mixed),
        f"{mixed.per_second:,.1f} requests/s; "
        + ", ".join(f"{kind} {share}%" for kind, share in MIX.items()),
    )


def _guard_target(guard: GuardCost) -> Target:
    """Gifts/s with the period-close guard as installed, against the same with it disabled."""
    ratio, rounds = guard.ratio, len(guard.runs) // 2
    return Target(
        "core gifts with the period-close guard, against it disabled",
        f"{guard.per_second(guard=True):,.1f}/s vs {guard.per_second(guard=False):,.1f}/s",
        None,
        ">= 0.9x disabled",
        ratio is not None and ratio >= 0.9,
        guard.books_ok,
        ("-" if ratio is None else f"{ratio:.3f}x")
        + f"; {CLOSE_GUARD_CLIENTS} senders, {CLOSE_GUARD_CREATORS} creators, a closed month"
        f" present; mean of {rounds} runs each",
    )


def _wallet_read_target(history: HistoryResult | None, history_wanted: int) -> Target:
    """The wallet query's p99 at the longest history read."""
    if history is None:
        return Target(
            "wallet balance query over HTTP, 10M postings",
            "not measured",
            None,
            "p99 <= 5 ms",
            None,
            None,
            "--history-postings 0",
        )
    last = history.last
    read = last.reads.get(READ_TARGET.name) or next(iter(last.reads.values()))
    short = last.postings < TARGET_HISTORY_POSTINGS
    return Target(
        f"wallet balance query over HTTP, {last.postings:,} postings",
        f"p99 {_ms(read.p99_ms)} ms",
        None,
        "p99 <= 5 ms",
        read.p99_ms is not None and read.p99_ms <= 5,
        not history.failures(),
        f"{read.clients} connections"
        + (f"; the target is at {TARGET_HISTORY_POSTINGS:,} postings" if short else "")
        + (f" (asked for {history_wanted:,})" if history_wanted != last.postings else ""),
    )


FINANCE_TARGETS = (
    ("balance sheet, now and halfway", ("balance sheet now", "balance sheet, halfway"), "<= 1 s"),
    (
        "income statement, a month and the whole history",
        ("income statement, a month", "income statement, all"),
        "<= 1 s",
    ),
    (
        "account statement page, platform account and wallet",
        ("statement page, platform account", "statement page, wallet"),
        "<= 50 ms",
    ),
)
"""Issue 11's read targets: the figure, the finance phase's timings behind it (the slower
one's median is shown), and the target."""
EXPORT_FIGURE = "journal export (coinbooks export journal, CSV)"


def _finance_targets(finance: FinanceResult | None) -> list[Target]:
    """Issue 11's targets over the history: the reports, a statement page, the export."""
    export_target = f">= {EXPORT_TARGET_LINES_PER_SECOND:,} lines/s, flat memory"
    if finance is None:
        wanted = [(figure, target) for figure, _, target in FINANCE_TARGETS]
        wanted.append((EXPORT_FIGURE, export_target))
        return [
            Target(figure, "not measured", None, target, None, None, "no history phase")
            for figure, target in wanted
        ]
    note = f"{finance.postings:,} postings, median of {len(finance.timings[0].seconds)} runs"
    found = []
    for figure, names, target in FINANCE_TARGETS:
        timings = [finance.timing(name) for name in names]
        slowest = max(timings, key=lambda timing: timing.median)
        found.append(
            Target(
                figure,
                f"{slowest.median * 1000:,.1f} ms",
                None,
                target,
                all(timing.met for timing in timings),
                not finance.problems,
                f"{slowest.name}; {note}",
            )
        )
    found.append(_export_target(finance, export_target))
    return found


def _export_target(finance: FinanceResult, target: str) -> Target:
    whole = finance.whole_export
    if whole is None:
        return Target(EXPORT_FIGURE, "not measured", None, target, None, None)
    part = finance.exports[0]
    return Target(
        EXPORT_FIGURE,
        f"{whole.lines_per_second:,.0f} lines/s, {whole.peak_rss_bytes / MB:,.0f} MB peak",
        None,
        target,
        whole.lines_per_second >= EXPORT_TARGET_LINES_PER_SECOND and bool(finance.memory_flat),
        not finance.problems,
        f"{whole.lines:,} lines; {part.label}: {part.lines:,} lines, "
        f"{part.peak_rss_bytes / MB:,.0f} MB peak",
    )


def _storage_target(most: Figure) -> Target:
    """Bytes per gift, in the phase that stored the most gifts."""
    assert most.storage is not None and most.storage.bytes_per_gift is not None
    return Target(
        "storage per gift, tables and indexes",
        f"{most.storage.bytes_per_gift:,.0f} B",
        None,
        "<= 2 kB (2,000 B)",
        most.storage.bytes_per_gift <= 2_000,
        _books_ok(most),
        f"{most.key}: {most.storage.gifts:,} gifts",
    )


def _memory_target(peak: Figure) -> Target:
    """The service's resident memory, at the peak of the HTTP phases."""
    assert peak.memory is not None
    return Target(
        "service memory under the HTTP load",
        f"{peak.memory.peak_rss / MB:,.0f} MB resident",
        None,
        "<= 200 MB",
        peak.memory.peak_rss <= 200 * MB,
        _books_ok(peak),
        f"peak of the HTTP phases ({peak.key})",
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def draw_plots(
    figures: dict[str, Figure],
    baselines: dict[int, pgbench.Baseline],
    history: HistoryResult | None,
    output: Path,
    started_at: datetime,
) -> list[Path]:
    when = f"{started_at:%Y-%m-%d %H:%M} UTC"
    sweep = [figures[f"gifts_c{senders}_uniform"] for senders in SWEEP_SENDERS]
    paths = [
        throughput_plot(
            output.with_name(f"{output.stem}-gifts-by-senders.png"),
            [f.clients for f in sweep],
            [f.per_second for f in sweep],
            {clients: baseline.tps for clients, baseline in baselines.items()},
            f"Gifts through the accounting core, {UNIFORM_CREATORS} creators ({when})",
            target=(TARGET_CLIENTS, UNIFORM_TARGET_RATIO * baselines[TARGET_CLIENTS].tps),
        )
    ]
    mixed = figures.get(MIXED_PHASE.key)
    if mixed is not None and mixed.mixed is not None and mixed.load is not None:
        paths.append(
            mixed_plot(
                output.with_name(f"{output.stem}-mixed.png"),
                {
                    "every request": (mixed.load.p50_ms, mixed.load.p99_ms),
                    **{
                        kind: (percentile(values, 50), percentile(values, 99))
                        for kind, values in mixed.mixed.latencies_ms.items()
                    },
                },
                MIXED_P99_MS,
                mixed.mixed.deadlocks,
                f"Mixed phase over HTTP, {mixed.clients} connections ({when})",
            )
        )
    if history is not None:
        postings = [step.postings for step in history.steps]
        latencies: dict[str, list[float | None]] = {}
        for series in READ_SERIES:
            for name in ("p50", "p99"):
                latencies[f"{name}, {series.name}"] = [
                    (
                        step.reads[series.name].p50_ms
                        if name == "p50"
                        else step.reads[series.name].p99_ms
                    )
                    for step in history.steps
                ]
        paths.append(
            latency_plot(
                output.with_name(f"{output.stem}-wallet-reads-by-history.png"),
                postings,
                latencies,
                5.0,
                f"Wallet query over HTTP against the history's size ({when})",
            )
        )
    return paths


@dataclass(frozen=True, slots=True)
class _Measured:
    """What a run measured on its PostgreSQL server."""

    machine: dict[str, Any]
    before: dict[int, pgbench.PgbenchResult]
    """pgbench before the ledger phases, by client count."""
    after: dict[int, pgbench.PgbenchResult]
    """pgbench again, after them."""
    results: list[tuple[LedgerPhase, PhaseResult]]
    history: HistoryResult | None
    guard: GuardCost | None = None
    """Gifts with the period-close guard as installed and disabled."""
    shards: ShardSplit | None = None
    """Gifts with the hot platform accounts whole and split."""


def run(options: Options, console: Console) -> int:
    started_at = datetime.now(UTC)
    started = time.monotonic()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    measured = _measure_on_server(options, console)
    console.print("GraphQL parser and validation caches: operations/s without and with them")
    caches = graphql_caches.measure(min(options.seconds, 5))
    console.print(
        f"  {caches.without_caches_per_second:,.0f}/s without, "
        f"{caches.with_caches_per_second:,.0f}/s with: [bold]{caches.ratio:.1f}x[/bold]"
    )
    read_seconds, read_warmup = min(options.seconds, READ_SECONDS_MAX), min(options.warmup, 1.0)
    replicas = run_replica_reads(seconds=read_seconds, warmup=read_warmup, say=console.print)
    report = _report(options, measured, caches, started_at, started)
    report.replica_reads = replicas
    report.platform_shards = measured.shards
    report.print(console)
    report.write_json(options.output)
    console.print(f"JSON: {options.output}")
    for path in report.plots:
        console.print(f"plot: {path}")
    if not report.ok:
        console.print("[bold red]FAIL[/bold red]")
        for failure in report.failures():
            console.print(f"  {failure}")
        return 1
    return 0


def _measure_on_server(options: Options, console: Console) -> _Measured:
    """pgbench, every ledger phase on a fresh copy of the migrated template, pgbench again,
    then the wallet reads as the history grows (unless left out)."""
    results: list[tuple[LedgerPhase, PhaseResult]] = []
    with bench_server() as server:
        console.print(f"PostgreSQL: {server.description}")
        settings = server.settings()
        machine = machine_info(settings, server.description)
        max_pool = max(1, int(settings.get("max_connections", "100")) - CONNECTION_RESERVE)

        pgbench_db = server.create("pgbench")
        console.print(f"pgbench -i -s {pgbench.SCALE}")
        pgbench.initialise(pgbench_db)
        before = run_pgbench(server, pgbench_db, options.seconds, console)

        template = server.create("template")
        migrate(template)
        for phase in ALL_PHASES:
            console.print(f"{phase.label}, {phase.clients} clients")
            results.append((phase, run_phase(server, template, phase, options, console, max_pool)))
        guard = _guard_phase(server, template, options, console, max_pool)
        console.print(f"core gifts, platform accounts whole, then split in {SHARDS}, in turn")
        shards = run_shard_split(
            server, template, seconds=options.seconds, warmup=options.warmup, max_pool=max_pool
        )

        console.print("pgbench again, after the ledger phases")
        after = run_pgbench(server, pgbench_db, options.seconds, console)
        server.drop(pgbench_db)
        history = _history_phase(server, template, options, console)
        server.drop(template)
    return _Measured(machine, before, after, results, history, guard, shards)


def guard_phase(n: int, guard: bool) -> LedgerPhase:
    """The ``n``-th run of the guard's comparison, as a ledger phase of the report."""
    return LedgerPhase(
        f"gifts_c{CLOSE_GUARD_CLIENTS}_guard_{'on' if guard else 'off'}_{n // 2}",
        f"core gifts: period-close guard {'as installed' if guard else 'disabled'}",
        "core",
        CLOSE_GUARD_CLIENTS,
        flow="gift",
        creators=CLOSE_GUARD_CREATORS,
        baseline_clients=TARGET_CLIENTS,
    )


def _guard_phase(
    server: BenchServer, template: URL, options: Options, console: Console, max_pool: int
) -> GuardCost:
    console.print("core gifts with the period-close guard as installed, then disabled, in turn")
    guard = run_guard_cost(
        server, template, seconds=options.seconds, warmup=options.warmup, max_pool=max_pool
    )
    for run in guard.runs:
        _report_phase(console, run.result, "gift")
    ratio = guard.ratio
    console.print(
        f"  with the guard {guard.per_second(guard=True):,.1f}/s, without "
        f"{guard.per_second(guard=False):,.1f}/s: "
        + ("-" if ratio is None else f"[bold]{ratio:.3f}x[/bold]")
    )
    return guard


def _history_phase(
    server: BenchServer, template: URL, options: Options, console: Console
) -> HistoryResult | None:
    """Wallet reads over HTTP as the history grows, on a fresh copy of the template."""
    if options.history_postings <= 0:
        return None
    console.print(
        f"Wallet reads over HTTP as the history grows to {options.history_postings:,} postings"
    )
    url = server.create("history", template=template)
    history = run_history_phase(
        url,
        HistoryPlan(
            max_postings=options.history_postings,
            users=HISTORY_USERS,
            readers=HISTORY_READERS,
            series=READ_SERIES,
            seconds=min(options.seconds, READ_SECONDS_MAX),
            warmup=min(options.warmup, 1.0),
            log_path=RESULTS_DIR / "service-history.log",
        ),
        say=console.print,
    )
    server.drop(url)
    return history


def _report(
    options: Options,
    measured: _Measured,
    caches: graphql_caches.CacheFigures,
    started_at: datetime,
    started: float,
) -> Report:
    """The run's report: pgbench's baselines and every ledger phase's figure, the targets and
    the plots."""
    baselines = {
        c: pgbench.Baseline(c, (measured.before[c], measured.after[c])) for c in BASELINE_CLIENTS
    }
    figures = [ledger_figure(phase, result, baselines) for phase, result in measured.results]
    if measured.guard is not None:
        figures += [
            ledger_figure(guard_phase(n, run.guard), run.result, baselines)
            for n, run in enumerate(measured.guard.runs)
        ]
    by_key = {figure.key: figure for figure in figures}
    options.output.parent.mkdir(parents=True, exist_ok=True)
    history = measured.history
    return Report(
        started_at=started_at,
        elapsed_seconds=time.monotonic() - started,
        seconds=options.seconds,
        warmup=options.warmup,
        quick=options.quick,
        machine=measured.machine,
        figures=[*(Figure.of_pgbench(baselines[c]) for c in BASELINE_CLIENTS), *figures],
        graphql_caches=caches,
        targets=targets(by_key, history, options.history_postings, measured.guard),
        history=history,
        plots=draw_plots(by_key, baselines, history, options.output, started_at),
    )
