"""Breakage for finance: recogniseBreakage, a run (or a dry run) of the breakage policy as of a
date. Finance role only; the domain (accounting/breakage) does the work."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from accounting.breakage import service
from accounting.breakage.errors import BreakageDateNotEnded
from accounting.breakage.reads import BrokenWallet
from accounting.ledger.errors import IdempotencyKeyReused, InvalidIdempotencyKey
from schema.authorization import require_finance
from schema.context import Info
from schema.errors import MutationError, error_type, errors_in_payload
from schema.payloads import null_on_error, replayed_field
from schema.scalars import BigInt, Money


@strawberry.type(description="A wallet whose coins went unused for the breakage period.")
class BreakageWallet:
    user_id: str
    coins: BigInt = strawberry.field(
        description="Coins unused: they stay in the wallet, spendable, with no value left."
    )
    value: Money = strawberry.field(
        description="Their deferred value, moved to platform:revenue:breakage."
    )
    last_moved_at: datetime = strawberry.field(
        description="When the wallet's coins or their value last moved."
    )
    entry_id: strawberry.ID | None = strawberry.field(
        description="The breakage entry (keyed breakage:<asOf>:<userId>); null in a dry run."
    )


@strawberry.type(description="A breakage run: the wallets it recognised, or would in a dry run.")
class BreakageRun:
    as_of: date = strawberry.field(description="The run date: wallets dormant at its end (UTC).")
    after_days: int = strawberry.field(description="The policy: whole days unused.")
    unused_since: datetime = strawberry.field(
        description="The cut-off: wallets last moved before this instant were dormant."
    )
    dry_run: bool = strawberry.field(description="True: nothing was posted or recorded.")
    wallet_count: int
    coins: BigInt = strawberry.field(description="Coins of those wallets, in total.")
    value: Money = strawberry.field(description="Deferred value recognised, in total.")
    wallets: list[BreakageWallet] = strawberry.field(
        description="Oldest movement first; at most 500 per run."
    )
    more: bool = strawberry.field(
        description="More dormant wallets remain beyond this run's 500: run again for the date."
    )


def wallet_of(wallet: BrokenWallet, currency: str) -> BreakageWallet:
    return BreakageWallet(
        user_id=wallet.user_id,
        coins=BigInt(wallet.coins),
        value=Money.of(wallet.value_micros, currency),
        last_moved_at=wallet.last_moved_at,
        entry_id=None if wallet.entry_id is None else strawberry.ID(str(wallet.entry_id)),
    )


def run_of(run: service.BreakageRun, currency: str) -> BreakageRun:
    return BreakageRun(
        as_of=run.as_of,
        after_days=run.after_days,
        unused_since=run.cutoff,
        dry_run=run.dry_run,
        wallet_count=len(run.wallets),
        coins=BigInt(run.coins),
        value=Money.of(run.value_micros, currency),
        wallets=[wallet_of(wallet, currency) for wallet in run.wallets],
        more=run.more,
    )


@strawberry.input
class RecogniseBreakageInput:
    as_of: date = strawberry.field(
        description="The run date (YYYY-MM-DD): a day that has ended, or any day for a dry run."
    )
    dry_run: bool = strawberry.field(
        default=False, description="Show what the run would post; post and record nothing."
    )
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per run (a UUID); a dry run keeps none."
    )


@error_type(BreakageDateNotEnded, InvalidIdempotencyKey, IdempotencyKeyReused)
class RecogniseBreakageError(MutationError):
    pass


@strawberry.type
class RecogniseBreakagePayload:
    run: BreakageRun | None = null_on_error()
    replayed: bool = replayed_field()
    errors: list[RecogniseBreakageError]


@strawberry.type
class BreakageMutations:
    @strawberry.mutation(
        description="Recognise breakage as of a date (finance role, audited): each wallet whose "
        "coins and their value have not moved for the policy's period has its deferred value "
        "moved to breakage revenue, one entry per wallet, at most once per run date. The coins "
        "stay spendable. A dry run shows the same wallets and changes nothing."
    )
    @errors_in_payload(RecogniseBreakagePayload, RecogniseBreakageError)
    async def recognise_breakage(
        self, info: Info, input: RecogniseBreakageInput
    ) -> RecogniseBreakagePayload:
        principal = require_finance(info, "recognise breakage")
        services = info.context.services
        run = await service.recognise_breakage(
            services.sessions,
            service.BreakageRequest(
                as_of=input.as_of,
                actor=principal.actor,
                idempotency_key=input.idempotency_key,
                dry_run=input.dry_run,
            ),
            policy=services.breakage_policy,
            functional_currency=services.functional_currency,
        )
        return RecogniseBreakagePayload(
            run=run_of(run, services.functional_currency), replayed=run.replayed, errors=[]
        )
