"""One benchmark run against one PostgreSQL server: the pgbench baseline, the core phases
(purchases, then gifts) and the HTTP phase (each ledger phase followed by the invariant check),
the baseline again, and the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy.engine import URL

from api.database import migrate
from bench import graphql_caches, pgbench
from bench.database import BenchServer, bench_server
from bench.machine import machine_info
from bench.phases import PhaseResult, run_core_phase, run_gift_phase, run_http_phase
from bench.report import Figure, Report

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BASELINE_CLIENTS = (32, 8)
HTTP_CLIENTS = 32
FEW_USERS = 4
UNIFORM_CREATORS = 100


@dataclass(frozen=True, slots=True)
class Options:
    seconds: int
    warmup: float
    quick: bool
    output: Path


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
HTTP_PHASE = LedgerPhase(
    f"http_c{HTTP_CLIENTS}", "GraphQL purchaseCoins over HTTP", "http", HTTP_CLIENTS
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
    server: BenchServer, template: URL, phase: LedgerPhase, options: Options, console: Console
) -> PhaseResult:
    """The phase on a fresh copy of the migrated template, dropped afterwards."""
    url = server.create(phase.key, template=template)
    server.checkpoint()
    if phase.flow == "gift":
        assert phase.creators is not None
        result = run_gift_phase(
            url,
            clients=phase.clients,
            seconds=options.seconds,
            warmup=options.warmup,
            creators=phase.creators,
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
    _report_phase(console, result, phase.flow)
    return result


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
    for problem in books.problems()[:20]:
        console.print(f"    [bold red]FAIL[/bold red] {problem}")
    for example in load.error_examples:
        console.print(f"    [yellow]error[/yellow] {example}")


def ledger_figure(
    phase: LedgerPhase, result: PhaseResult, baselines: dict[int, pgbench.Baseline]
) -> Figure:
    return Figure(
        key=phase.key,
        label=phase.label,
        phase=phase.phase,
        clients=phase.clients,
        users=phase.users or phase.clients,
        creators=phase.creators,
        noun=phase.flow,
        load=result.load,
        books=result.books,
        baseline_tps=baselines[phase.clients].tps,
        memory=result.memory,
        transactions=result.transactions,
    )


def run(options: Options, console: Console) -> int:
    started_at = datetime.now(UTC)
    started = time.monotonic()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results: list[tuple[LedgerPhase, PhaseResult]] = []
    with bench_server() as server:
        console.print(f"PostgreSQL: {server.description}")
        machine = machine_info(server.settings(), server.description)

        pgbench_db = server.create("pgbench")
        console.print(f"pgbench -i -s {pgbench.SCALE}")
        pgbench.initialise(pgbench_db)
        before = run_pgbench(server, pgbench_db, options.seconds, console)

        template = server.create("template")
        migrate(template)
        for phase in (*CORE_PHASES, *GIFT_PHASES, HTTP_PHASE):
            console.print(f"{phase.label}, {phase.clients} clients")
            results.append((phase, run_phase(server, template, phase, options, console)))
        server.drop(template)

        console.print("pgbench again, after the ledger phases")
        after = run_pgbench(server, pgbench_db, options.seconds, console)
        server.drop(pgbench_db)

    console.print("GraphQL parser and validation caches: operations/s without and with them")
    caches = graphql_caches.measure(min(options.seconds, 5))
    console.print(
        f"  {caches.without_caches_per_second:,.0f}/s without, "
        f"{caches.with_caches_per_second:,.0f}/s with: [bold]{caches.ratio:.1f}x[/bold]"
    )

    baselines = {c: pgbench.Baseline(c, (before[c], after[c])) for c in BASELINE_CLIENTS}
    report = Report(
        started_at=started_at,
        elapsed_seconds=time.monotonic() - started,
        seconds=options.seconds,
        warmup=options.warmup,
        quick=options.quick,
        machine=machine,
        figures=[
            *(Figure.of_pgbench(baselines[c]) for c in BASELINE_CLIENTS),
            *(ledger_figure(phase, result, baselines) for phase, result in results),
        ],
        graphql_caches=caches,
    )
    report.print(console)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    report.write_json(options.output)
    console.print(f"JSON: {options.output}")
    if not report.ok:
        console.print("[bold red]FAIL[/bold red]")
        for failure in report.failures():
            console.print(f"  {failure}")
        return 1
    return 0
