"""Breakage runs by finance (DESIGN.md, "Breakage"): as of a run date, every wallet whose coins
and their value have not moved for the policy's period has its whole deferred value recognised
as breakage revenue, one ``breakage`` entry per wallet keyed ``breakage:<run date>:<user>``.

A run is one transaction, audited once with its totals. Runs queue on an advisory lock, so two
runs never interleave; the wallets found dormant are locked together with the breakage revenue
account, in one statement (accounting/ledger/locks.py), and each is read again before
it is broken (a gift meanwhile makes it active, and it is left alone), and the ledger's unique
event keys post a wallet at most once per run date. A dry run reads the same wallets without
posting or recording anything, and may look at a future date (what would break by then); a
real run only recognises breakage as of a day that has ended. The same idempotency key from the
same person gives back the first run. A run passes over the wallet of the finance person who
runs it (nobody acts with a staff role on their own account): another person's run breaks it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.breakage.errors import BreakageDateNotEnded
from accounting.breakage.reads import BrokenWallet, recognised_wallets
from accounting.breakage.rules import BreakagePolicy, WalletFacts, breakage_entry, is_dormant
from accounting.ledger import chart, idempotency
from accounting.ledger.errors import IdempotencyKeyReused
from accounting.ledger.posting import in_transaction, lock_accounts, post_entry
from accounting.policy import audit, separation
from accounting.policy.tables import AuditRow

MAX_WALLETS_PER_RUN = 500
"""A run's transaction holds each wallet it breaks locked until it commits: at most this many
wallets per run (the oldest first); a run that leaves more says so, and the next takes them."""
AUDIT_ACTION = "breakage.recognised"
_RUN_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('coinbooks:breakage_run', 0))")
WALLET_VALUES = r"user:%:coins\_value"
"""Every wallet's value account (``user:<id>:coins_value``), as a ``LIKE`` pattern."""


@dataclass(frozen=True, slots=True)
class BreakageRequest:
    as_of: date
    """The run date: wallets dormant as of the end of this day (UTC)."""
    actor: str
    idempotency_key: str
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class BreakageRun:
    as_of: date
    after_days: int
    cutoff: datetime
    """Wallets whose last movement is before this instant were dormant."""
    dry_run: bool
    wallets: list[BrokenWallet]
    more: bool
    """Dormant wallets beyond this run's limit remain: run again for the same date."""
    replayed: bool = False

    @property
    def coins(self) -> int:
        return sum(wallet.coins for wallet in self.wallets)

    @property
    def value_micros(self) -> int:
        return sum(wallet.value_micros for wallet in self.wallets)


_LAST_POSTED = (
    "SELECT posted_at FROM posting WHERE account_id = {account} ORDER BY posted_at DESC LIMIT 1"
)
"""When an account last moved: the newest key of its history index."""
_DORMANT = text(
    # Each wallet with deferred value, and the later of the last postings on its coins and on
    # their value (each the newest of its account's history: one index probe apiece).
    "SELECT w.user_id, w.value_micros, w.coins, w.last_moved_at FROM ("
    "  SELECT split_part(v.code, ':', 2) AS user_id, -v.balance AS value_micros,"
    "         coalesce(-c.balance, 0) AS coins, v.id,"
    "         greatest(lv.posted_at, lc.posted_at) AS last_moved_at"
    "    FROM account v"
    "    JOIN LATERAL (" + _LAST_POSTED.format(account="v.id") + ") lv ON true"
    "    LEFT JOIN account c ON c.code = left(v.code, -length('_value'))"
    "    LEFT JOIN LATERAL (" + _LAST_POSTED.format(account="c.id") + ") lc ON true"
    "   WHERE v.code LIKE :wallets AND v.commodity = :currency AND v.balance < 0"
    " ) w WHERE w.last_moved_at < :cutoff AND w.user_id IS DISTINCT FROM :passed_over"
    " ORDER BY w.last_moved_at, w.id LIMIT :limit"
)
_LAST_MOVED = text(
    "SELECT max(p.posted_at) FROM unnest(CAST(:ids AS bigint[])) AS a(id)"
    "  CROSS JOIN LATERAL (" + _LAST_POSTED.format(account="a.id") + ") p"
)
_TODAY = text("SELECT CAST(now() AT TIME ZONE 'UTC' AS date)")


async def dormant_wallets(
    session: AsyncSession,
    cutoff: datetime,
    functional_currency: str,
    *,
    limit: int,
    passed_over: str | None = None,
) -> list[BrokenWallet]:
    """Up to ``limit`` wallets with deferred value and no movement since ``cutoff``, oldest
    movement first; never the wallet of user ``passed_over`` (who runs it)."""
    rows = await session.execute(
        _DORMANT,
        {
            "wallets": WALLET_VALUES,
            "currency": functional_currency,
            "cutoff": cutoff,
            "limit": limit,
            "passed_over": passed_over,
        },
    )
    return [
        BrokenWallet(row.user_id, int(row.coins), int(row.value_micros), row.last_moved_at)
        for row in rows
    ]


async def locked_wallet(
    session: AsyncSession, user_id: str, functional_currency: str
) -> WalletFacts | None:
    """The wallet's coins, value and last movement, read under its accounts' row locks (a gift
    waits for the run, or the run for the gift): None if it never moved."""
    coins = chart.user_coins(user_id)
    value = chart.user_coins_value(user_id, functional_currency)
    locked = await lock_accounts(session, [coins, value])
    accounts = list(locked.values())
    last = await session.scalar(
        _LAST_MOVED,
        {"ids": [a.id for a in accounts]},
    )
    if last is None:
        return None
    return WalletFacts(
        user_id, locked[coins.code].normal_balance, locked[value.code].normal_balance, last
    )


async def recognise_breakage(
    sessions: async_sessionmaker[AsyncSession],
    request: BreakageRequest,
    *,
    policy: BreakagePolicy,
    functional_currency: str,
    today: date | None = None,
) -> BreakageRun:
    """Run breakage as of ``request.as_of`` (see the module): a dry run reads, a run posts and
    audits in one transaction. ``today`` is the current UTC date (default: the database's)."""
    idempotency.check_key(request.idempotency_key)
    cutoff = policy.cutoff(request.as_of)
    if request.dry_run:
        async with sessions() as session:
            found = await dormant_wallets(
                session,
                cutoff,
                functional_currency,
                limit=MAX_WALLETS_PER_RUN + 1,
                passed_over=separation.user_of_actor(request.actor),
            )
        return BreakageRun(
            request.as_of,
            policy.after_days,
            cutoff,
            dry_run=True,
            wallets=found[:MAX_WALLETS_PER_RUN],
            more=len(found) > MAX_WALLETS_PER_RUN,
        )

    async def work(session: AsyncSession) -> BreakageRun:
        current = today or await session.scalar(_TODAY)
        assert current is not None
        if request.as_of >= current:
            raise BreakageDateNotEnded(
                f"Breakage is recognised as of a day that has ended (UTC): {request.as_of} has "
                "not; a dry run may look ahead",
                field="asOf",
                as_of=request.as_of.isoformat(),
                today=current.isoformat(),
            )
        await session.execute(_RUN_LOCK)
        replayed = await _run_by_key(session, request)
        if replayed is not None:
            return replayed
        return await _break_wallets(session, request, policy, cutoff, functional_currency)

    return await in_transaction(sessions, work)


async def _break_wallets(
    session: AsyncSession,
    request: BreakageRequest,
    policy: BreakagePolicy,
    cutoff: datetime,
    functional_currency: str,
) -> BreakageRun:
    """Each dormant wallet, locked and read again, broken if it still is; then the audit."""
    found = await dormant_wallets(
        session,
        cutoff,
        functional_currency,
        limit=MAX_WALLETS_PER_RUN + 1,
        passed_over=separation.user_of_actor(request.actor),
    )
    broken: list[BrokenWallet] = []
    candidates = found[:MAX_WALLETS_PER_RUN]
    await lock_accounts(  # the run's accounts, in one statement
        session,
        [
            chart.revenue("breakage", functional_currency),
            *(chart.user_coins(c.user_id) for c in candidates),
            *(chart.user_coins_value(c.user_id, functional_currency) for c in candidates),
        ],
    )
    for candidate in candidates:
        wallet = await locked_wallet(session, candidate.user_id, functional_currency)
        if wallet is None or not is_dormant(wallet, cutoff):
            continue  # it moved since it was found
        entry = breakage_entry(
            wallet,
            as_of=request.as_of,
            policy=policy,
            functional_currency=functional_currency,
            actor=request.actor,
        )
        posted = await post_entry(session, entry)
        broken.append(
            BrokenWallet(
                wallet.user_id, wallet.coins, wallet.value_micros, wallet.last_moved_at, posted.id
            )
        )
    run = BreakageRun(
        request.as_of,
        policy.after_days,
        cutoff,
        dry_run=False,
        wallets=broken,
        more=len(found) > MAX_WALLETS_PER_RUN,
    )
    await audit.record(
        session,
        actor=request.actor,
        action=AUDIT_ACTION,
        subject=f"breakage:{request.as_of.isoformat()}",
        details=_audit_details(request, run),
    )
    return run


def _request_hash(request: BreakageRequest) -> str:
    return idempotency.request_hash("recognise_breakage", {"as_of": request.as_of.isoformat()})


def _audit_details(request: BreakageRequest, run: BreakageRun) -> dict[str, Any]:
    return {
        "idempotency_key": request.idempotency_key,
        "request_hash": _request_hash(request),
        "as_of": run.as_of.isoformat(),
        "after_days": run.after_days,
        "cutoff": run.cutoff.isoformat(),
        "wallets": len(run.wallets),
        "coins": run.coins,
        "value_micros": run.value_micros,
        "more": run.more,
        "entry_ids": [wallet.entry_id for wallet in run.wallets],
    }


async def _run_by_key(session: AsyncSession, request: BreakageRequest) -> BreakageRun | None:
    """The run this person made under this key, as it was; another run date is refused."""
    details: dict[str, Any] | None = await session.scalar(
        select(AuditRow.details)
        .where(
            AuditRow.actor == request.actor,
            AuditRow.action == AUDIT_ACTION,
            AuditRow.details["idempotency_key"].astext == request.idempotency_key,
        )
        .limit(1)
    )
    if details is None:
        return None
    if details["request_hash"] != _request_hash(request):
        raise IdempotencyKeyReused(
            f"This idempotency key was used for the breakage run of {details['as_of']}",
            field="idempotencyKey",
        )
    wallets = await recognised_wallets(session, details["entry_ids"])
    return BreakageRun(
        date.fromisoformat(details["as_of"]),
        int(details["after_days"]),
        datetime.fromisoformat(details["cutoff"]),
        dry_run=False,
        wallets=wallets,
        more=bool(details["more"]),
        replayed=True,
    )
