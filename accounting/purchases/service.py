"""Buying coins: quote, record the purchase, charge the provider, and post the entry exactly
once, when the provider's answer says the money was taken (now, or later on a lookup)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, ScalarSelect, and_, bindparam, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import chart, fx, idempotency
from accounting.ledger.chart import PROVIDERS, AccountSpec, check_user_id
from accounting.ledger.errors import IdempotencyKeyReused, InvalidAmount, LedgerError
from accounting.ledger.group_commit import GroupCommit
from accounting.ledger.money import fiat
from accounting.ledger.posting import in_transaction, lock_accounts, post_entry
from accounting.ledger.tables import AccountRow
from accounting.policy import standing
from accounting.purchases import catalog
from accounting.purchases.catalog import Offer
from accounting.purchases.errors import (
    ProviderNotAvailable,
    PurchaseLimitExceeded,
    PurchaseNotFound,
)
from accounting.purchases.fees import CHANNEL_PROVIDERS, FeeSchedule, fee_schedules
from accounting.purchases.payments import ChargeOutcome, ChargeResult, PaymentGateway
from accounting.purchases.repayment import ReceivablePolicy, repay_first
from accounting.purchases.rules import PurchaseFacts, purchase_entry, purchase_value_micros
from accounting.purchases.tables import PurchaseRow

log = logging.getLogger(__name__)

MAX_CUSTOM_COINS = 10_000_000
DEFAULT_UNANSWERED_GRACE = timedelta(minutes=2)
"""How long a charge the provider has no record of may still be on its way there. Within it, a
pending purchase stays pending; after it, the purchase fails as never charged."""
DEFAULT_DAILY_COIN_LIMIT = 100_000
"""Coins (bonus coins included) a user may buy per calendar day (UTC), as the service is
configured by default (``COINBOOKS_PURCHASE_DAILY_COIN_LIMIT``)."""
COUNTED_AGAINST_LIMIT = ("pending", "completed")
"""A failed purchase granted nothing: it does not count against the daily limit. A pending one
may still grant its coins, so it does."""
_PENDING_COLUMNS = (
    "user_id",
    "idempotency_key",
    "request_hash",
    "package_code",
    "coins",
    "bonus_coins",
    "channel",
    "provider",
    "currency",
    "price_minor",
)
_LOCK_BUYER = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('purchase:' || CAST(:user_id AS text), 0))"
)


@dataclass(frozen=True, slots=True)
class PurchaseRequest:
    user_id: str
    idempotency_key: str
    currency: str
    channel: str
    provider: str
    payment_token: str
    package_code: str | None = None
    custom_coins: int | None = None
    paid_minor: int | None = None
    """What a store's verified transaction says the buyer paid: recorded as the price, rather
    than the catalog's (accounting/purchases/store.py)."""

    def fingerprint(self) -> str:
        return idempotency.request_hash(
            "purchase_coins",
            {
                "currency": self.currency,
                "channel": self.channel,
                "provider": self.provider,
                "payment_token": self.payment_token,
                "package_code": self.package_code,
                "custom_coins": self.custom_coins,
            },
        )


@dataclass(frozen=True, slots=True)
class PurchaseResult:
    purchase: PurchaseRow
    replayed: bool
    """True when the idempotency key had been seen: nothing new was charged or posted."""


class PurchaseService:
    token_providers: frozenset[str] | None = None
    """The providers whose payment tokens the gateway charges; None for every provider. In
    production no sandbox charges tokens: then none (api/database.py)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gateway: PaymentGateway,
        *,
        functional_currency: str = "USD",
        fees: dict[str, FeeSchedule] | None = None,
        unanswered_grace: timedelta = DEFAULT_UNANSWERED_GRACE,
        daily_coin_limit: int | None = None,
        receivable_policy: ReceivablePolicy = ReceivablePolicy.REPAY_FIRST,
    ) -> None:
        """``daily_coin_limit``: coins a user may buy per calendar day (UTC); None for no
        limit (the service process always sets one, see api/database.py).
        ``receivable_policy``: whether a purchase repays what its buyer owes first."""
        if daily_coin_limit is not None and daily_coin_limit < 1:
            raise ValueError("a daily coin limit is at least one coin")
        self._sessions = sessions
        self._gateway = gateway
        self.functional_currency = fiat(functional_currency).code
        self._fees = fees or fee_schedules()
        self.unanswered_grace = unanswered_grace
        self.daily_coin_limit = daily_coin_limit
        self.receivable_policy = receivable_policy
        self.completions: GroupCommit[tuple[int, ChargeResult], PurchaseRow] = GroupCommit(
            self._complete_batch, key=lambda completion: completion[0]
        )
        """Purchases whose charges succeeded, completed together (accounting/ledger/
        group_commit.py): the hot platform accounts (coins issued, the provider's clearing
        account, fees) are locked and moved by one transaction per batch, not per purchase."""

    def _check(self, request: PurchaseRequest) -> None:
        check_user_id(request.user_id)
        idempotency.check_key(request.idempotency_key)
        fiat(request.currency)
        if request.channel not in CHANNEL_PROVIDERS:
            raise ProviderNotAvailable(
                f"Unknown channel {request.channel!r}", field="channel", channel=request.channel
            )
        if request.provider not in PROVIDERS:
            raise ProviderNotAvailable(
                f"Unknown payment provider {request.provider!r}", field="provider"
            )
        if request.provider not in CHANNEL_PROVIDERS[request.channel]:
            raise ProviderNotAvailable(
                f"{request.provider} is not available on {request.channel}",
                field="provider",
                allowed=CHANNEL_PROVIDERS[request.channel],
            )
        if (request.package_code is None) == (request.custom_coins is None):
            raise InvalidAmount(
                "Give either a package code or a custom number of coins", field="packageCode"
            )
        if request.custom_coins is not None and not 0 < request.custom_coins <= MAX_CUSTOM_COINS:
            raise InvalidAmount("Custom coins out of range", field="customCoins")
        if not 1 <= len(request.payment_token) <= 200:
            raise InvalidAmount("A payment token is 1-200 characters", field="paymentToken")

    async def purchase_coins(self, request: PurchaseRequest) -> PurchaseResult:
        """Buy coins. The purchase comes back completed (coins granted), failed (declined: nothing
        posted) or pending (no answer from the provider: settled later, exactly once)."""
        self._check(request)
        if self.token_providers is not None and request.provider not in self.token_providers:
            raise ProviderNotAvailable(
                f"{request.provider} takes no payment tokens on this service",
                field="provider",
                allowed=sorted(self.token_providers),
            )
        fingerprint = request.fingerprint()
        purchase, replayed = await in_transaction(
            self._sessions, lambda session: self._record(session, request, fingerprint)
        )
        if replayed:
            purchase = await self._replay(purchase, request, fingerprint)
            return PurchaseResult(purchase, replayed=True)
        result = await self._charge(purchase, request.payment_token)
        purchase = await self._resolve(purchase.id, result)
        return PurchaseResult(purchase, replayed=False)

    async def _record(
        self, session: AsyncSession, request: PurchaseRequest, fingerprint: str
    ) -> tuple[PurchaseRow, bool]:
        """The purchase as recorded, pending, before anything is charged; or the one recorded
        before under its idempotency key (True: a replay)."""
        if self.daily_coin_limit is not None:
            # One buyer's purchases queue here: the next statement, run once this one has
            # the lock, sees every purchase recorded before it (and a racing request with
            # the same key, which it then returns).
            await session.execute(_LOCK_BUYER, {"user_id": request.user_id})
        existing, bought_today, frozen = (
            await session.execute(
                _RECORD_READ, {"user_id": request.user_id, "key": request.idempotency_key}
            )
        ).one()
        if existing is not None:
            return existing, True
        standing.refuse_frozen(request.user_id, frozen, doing="buy coins")
        if request.package_code is not None:
            offer = await catalog.package_offer(
                session, request.package_code, request.currency, request.channel
            )
        else:
            assert request.custom_coins is not None
            offer = await catalog.custom_offer(
                session, request.custom_coins, request.currency, request.channel
            )
        if self.daily_coin_limit is not None:
            self._check_daily_limit(
                request, offer.total_coins, int(bought_today), self.daily_coin_limit
            )
        return await self._insert(session, request, fingerprint, offer)

    async def _insert(
        self, session: AsyncSession, request: PurchaseRequest, fingerprint: str, offer: Offer
    ) -> tuple[PurchaseRow, bool]:
        """Insert the pending purchase, unless a concurrent request with the same key won the
        race (then its purchase, as a replay); the FX rate of its time is fixed now."""
        row = await session.scalar(
            _INSERT_PENDING,
            {
                "user_id": request.user_id,
                "idempotency_key": request.idempotency_key,
                "request_hash": fingerprint,
                "package_code": offer.package_code,
                "coins": offer.coins,
                "bonus_coins": offer.bonus_coins,
                "channel": request.channel,
                "provider": request.provider,
                "currency": request.currency,
                "price_minor": request.paid_minor or offer.price_minor,
            },
        )
        if row is None:  # a concurrent request with the same key won the race
            raced = await self._by_key(session, request.user_id, request.idempotency_key)
            assert raced is not None
            return raced, True
        if request.currency != self.functional_currency:
            await fx.rate_at(session, request.currency, self.functional_currency, row.created_at)
        return row, False

    async def _replay(
        self, purchase: PurchaseRow, request: PurchaseRequest, fingerprint: str
    ) -> PurchaseRow:
        """The purchase first recorded under the request's key, as it is now (refused if the key
        was used for another purchase)."""
        if purchase.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                "This idempotency key was used for a different purchase",
                field="idempotencyKey",
                purchase_id=purchase.id,
            )
        if purchase.status == "pending":
            # The first request may still be waiting for the provider. Send the same charge
            # again (the provider charges once per merchant reference) before asking what
            # became of it: a lookup racing the first charge would find nothing and fail a
            # purchase whose money is being taken.
            await self._charge(purchase, request.payment_token)
            purchase = await self.settle(purchase.id)
        return purchase

    async def _charge(self, purchase: PurchaseRow, payment_token: str) -> ChargeResult:
        """Ask the provider to take the purchase's price (once per merchant reference)."""
        return await self._gateway.charge(
            provider=purchase.provider,
            merchant_reference=merchant_reference(purchase.id),
            payment_token=payment_token,
            amount_minor=purchase.price_minor,
            currency=purchase.currency,
        )

    @staticmethod
    def _check_daily_limit(
        request: PurchaseRequest, asked_coins: int, bought: int, limit_coins: int
    ) -> None:
        """Refuse the purchase if its coins would take the user past the day's limit. The
        coins bought today were counted under the buyer's lock: they are all there are."""
        if bought + asked_coins > limit_coins:
            raise PurchaseLimitExceeded(
                f"{bought:,} coins already bought today (UTC); {asked_coins:,} more would pass "
                f"the daily limit of {limit_coins:,} coins",
                field="packageCode" if request.package_code is not None else "customCoins",
                limit_coins=limit_coins,
                bought_today_coins=bought,
                asked_coins=asked_coins,
            )

    async def settle(self, purchase_id: int) -> PurchaseRow:
        """Ask the provider what became of a pending purchase and resolve it (at most once)."""
        async with self._sessions() as session:
            purchase = await session.get(PurchaseRow, purchase_id)
        if purchase is None:
            raise PurchaseNotFound(f"No purchase {purchase_id}", field="purchaseId")
        if purchase.status != "pending":
            return purchase
        result = await self._gateway.lookup(
            provider=purchase.provider, merchant_reference=merchant_reference(purchase.id)
        )
        return await self._resolve(purchase_id, result)

    async def settle_pending(
        self, *, limit: int = 1000, on_settled: Callable[[str], None] | None = None
    ) -> dict[str, int]:
        """Settle every pending purchase the provider has an answer for; count the outcomes.
        ``on_settled`` is told each purchase's status once asked (a progress bar's step)."""
        async with self._sessions() as session:
            ids = (
                await session.scalars(
                    select(PurchaseRow.id)
                    .where(PurchaseRow.status == "pending")
                    .order_by(PurchaseRow.id)
                    .limit(limit)
                )
            ).all()
        counts = {"completed": 0, "failed": 0, "pending": 0}
        for purchase_id in ids:
            settled = await self.settle(purchase_id)
            counts[settled.status] += 1
            if on_settled is not None:
                on_settled(settled.status)
        return counts

    async def _resolve(self, purchase_id: int, result: ChargeResult) -> PurchaseRow:
        """Settle the purchase on the provider's answer. A charge that succeeded is completed
        through the group commit (its entry posted with those of the purchases completing at
        the same time, in one transaction); any other answer alone."""
        if result.outcome is ChargeOutcome.SUCCEEDED:
            purchase = await self.completions.submit((purchase_id, result))
        else:
            purchase = await in_transaction(
                self._sessions, lambda session: self._resolve_one(session, purchase_id, result)
            )
        log.info("purchase %s is %s", purchase.id, purchase.status)
        return purchase

    async def _resolve_one(
        self, session: AsyncSession, purchase_id: int, result: ChargeResult
    ) -> PurchaseRow:
        purchase = await session.get(PurchaseRow, purchase_id, with_for_update=True)
        assert purchase is not None
        return await self._settle_locked(session, purchase, result)

    async def _settle_locked(
        self, session: AsyncSession, purchase: PurchaseRow, result: ChargeResult
    ) -> PurchaseRow:
        """Settle ``purchase``, locked by this transaction, on ``result`` (at most once)."""
        if purchase.status != "pending":
            return purchase  # settled already, by a racing retry or a provider event
        if result.outcome is ChargeOutcome.NOT_FOUND:
            now = await session.scalar(select(func.now()))
            if now is not None and now - purchase.created_at < self.unanswered_grace:
                return purchase  # a first charge may still be on its way to the provider
        if result.outcome is ChargeOutcome.SUCCEEDED:
            facts = await self._facts(session, purchase, result.reference or "")
            facts = await self._repay_first(session, facts)
            posted = await post_entry(  # the pending purchase, locked: its entry is not posted
                session, purchase_entry(facts, actor=f"user:{purchase.user_id}"), new=True
            )
            purchase.status = "completed"
            purchase.entry_id = posted.id
            purchase.provider_reference = result.reference
            purchase.settled_at = posted.posted_at
            purchase.receivable_repaid_micros = facts.receivable_repaid_micros
            purchase.coins_withheld = facts.coins_withheld
        elif result.outcome in (ChargeOutcome.DECLINED, ChargeOutcome.NOT_FOUND):
            settled_at = await session.scalar(select(func.now()))
            purchase.status = "failed"
            purchase.failure_code = result.decline_code or "not_charged"
            purchase.failure_message = result.message or "The payment did not go through"
            purchase.provider_reference = result.reference
            purchase.settled_at = settled_at
        await session.flush()
        return purchase

    async def _complete_batch(
        self, completions: Sequence[tuple[int, ChargeResult]]
    ) -> list[PurchaseRow | Exception]:
        """Complete the purchases whose charges succeeded, in one transaction: their rows locked
        first, then every account their entries post to in one lock (ascending id order, as
        every poster locks), then each entry posted in turn under a savepoint of its own, so a
        purchase refused is refused alone. Should the transaction fail as a whole, each
        purchase is completed alone."""
        try:
            return await in_transaction(
                self._sessions, lambda session: self._complete_locked(session, completions)
            )
        except Exception:
            log.exception("completing %d purchases together failed; one by one", len(completions))
        outcomes: list[PurchaseRow | Exception] = []
        for purchase_id, result in completions:
            try:
                alone = functools.partial(self._resolve_one, purchase_id=purchase_id, result=result)
                outcomes.append(await in_transaction(self._sessions, alone))
            except Exception as error:
                outcomes.append(error)
        return outcomes

    async def _complete_locked(
        self, session: AsyncSession, completions: Sequence[tuple[int, ChargeResult]]
    ) -> list[PurchaseRow | Exception]:
        ids = sorted({purchase_id for purchase_id, _ in completions})
        rows = await session.scalars(_LOCK_PURCHASES, {"ids": ids})
        purchases = {row.id: row for row in rows}
        await lock_accounts(session, await self._accounts_of(session, purchases.values()))
        outcomes: list[PurchaseRow | Exception] = []
        for purchase_id, result in completions:
            try:
                async with session.begin_nested():
                    outcomes.append(
                        await self._settle_locked(session, purchases[purchase_id], result)
                    )
            except LedgerError as refused:
                outcomes.append(refused)
        return outcomes

    async def _accounts_of(
        self, session: AsyncSession, purchases: Iterable[PurchaseRow]
    ) -> list[AccountSpec]:
        """Every account the pending purchases' entries may post to: the entry's, and the
        buyer's receivable where the buyer owes one (a purchase repays it first)."""
        accounts: dict[str, AccountSpec] = {}
        receivables: dict[str, AccountSpec] = {}
        for purchase in purchases:
            if purchase.status != "pending":
                continue
            facts = await self._facts(session, purchase, "")
            entry = purchase_entry(facts, actor=f"user:{purchase.user_id}")
            accounts.update((p.account.code, p.account) for p in entry.postings)
            receivable = chart.user_receivable(purchase.user_id, self.functional_currency)
            receivables[receivable.code] = receivable
        if self.receivable_policy is not ReceivablePolicy.NONE and receivables:
            # the buyers who owe, in one read
            owing = await session.scalars(_OWING, {"codes": list(receivables)})
            accounts.update((code, receivables[code]) for code in owing)
        return list(accounts.values())

    async def _facts(
        self, session: AsyncSession, purchase: PurchaseRow, reference: str
    ) -> PurchaseFacts:
        rate: Decimal | None = None
        if purchase.currency != self.functional_currency:
            rate = await fx.rate_at(
                session, purchase.currency, self.functional_currency, purchase.created_at
            )
        return PurchaseFacts(
            purchase_id=purchase.id,
            user_id=purchase.user_id,
            coins=purchase.coins,
            bonus_coins=purchase.bonus_coins,
            provider=purchase.provider,
            currency=purchase.currency,
            price_minor=purchase.price_minor,
            fee_minor=self._fees[purchase.provider].fee_minor(
                purchase.price_minor, purchase.currency
            ),
            functional_currency=self.functional_currency,
            fx_rate=rate,
            provider_reference=reference,
            package_code=purchase.package_code,
        )

    async def _repay_first(self, session: AsyncSession, facts: PurchaseFacts) -> PurchaseFacts:
        """The facts with what the purchase repays of its buyer's receivable, under the
        receivable policy (accounting/purchases/repayment.py)."""
        repayment = await repay_first(
            session,
            purchase_entry(facts, actor=f"user:{facts.user_id}"),
            user_id=facts.user_id,
            functional_currency=self.functional_currency,
            value_micros=purchase_value_micros(facts),
            total_coins=facts.coins + facts.bonus_coins,
            policy=self.receivable_policy,
        )
        return replace(
            facts,
            receivable_repaid_micros=repayment.repaid_micros,
            coins_withheld=repayment.coins_withheld,
        )

    async def value_micros(self, session: AsyncSession, purchase: PurchaseRow) -> int:
        return purchase_value_micros(await self._facts(session, purchase, ""))

    async def record_paid(
        self, session: AsyncSession, request: PurchaseRequest
    ) -> tuple[PurchaseRow, bool]:
        """Record, pending and in ``session``, a purchase whose payment is proven otherwise (an
        app store's signed transaction, accounting/purchases/store.py), with every check and
        limit of :meth:`purchase_coins`; or find the one recorded under its key (True)."""
        self._check(request)
        return await self._record(session, request, request.fingerprint())

    async def complete_paid(self, purchase_id: int, reference: str) -> PurchaseRow:
        """Complete a pending purchase whose payment is proven: its entry posted once, exactly
        as for a charge that succeeded under ``reference``."""
        return await self._resolve(
            purchase_id, ChargeResult(ChargeOutcome.SUCCEEDED, reference=reference)
        )

    @staticmethod
    async def _by_key(session: AsyncSession, user_id: str, key: str) -> PurchaseRow | None:
        row: PurchaseRow | None = await session.scalar(
            select(PurchaseRow).where(by_key(user_id, key))
        )
        return row


def by_key(user_id: str | ColumnElement[str], key: str | ColumnElement[str]) -> ColumnElement[bool]:
    return and_(PurchaseRow.user_id == user_id, PurchaseRow.idempotency_key == key)


def coins_bought_today(user_id: str | ColumnElement[str]) -> ScalarSelect[int]:
    """Coins, bonus coins included, of the user's purchases created since midnight UTC that
    completed or may still complete (pending)."""
    return (
        select(func.coalesce(func.sum(PurchaseRow.coins + PurchaseRow.bonus_coins), 0))
        .where(
            PurchaseRow.user_id == user_id,
            PurchaseRow.status.in_(COUNTED_AGAINST_LIMIT),
            PurchaseRow.created_at >= func.date_trunc("day", func.now(), "UTC"),
        )
        .scalar_subquery()
    )


_RECORD_READ = (
    select(
        PurchaseRow,
        coins_bought_today(bindparam("user_id")),
        standing.frozen_of(bindparam("user_id")),
    )
    .select_from(select(literal(1)).subquery())
    .outerjoin(PurchaseRow, by_key(bindparam("user_id"), bindparam("key")))
)
"""The purchase already recorded under the key (or NULL), the coins the buyer bought today and
whether the buyer is frozen: one statement, built once, that a new purchase reads first."""
_INSERT_PENDING = (
    pg_insert(PurchaseRow)
    .values({name: bindparam(name) for name in _PENDING_COLUMNS})
    .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
    .returning(PurchaseRow)
    .execution_options(dml_strategy="orm")  # one row, not the ORM's bulk insert
)
"""A pending purchase, unless its key is taken; built once."""
_LOCK_PURCHASES = (
    select(PurchaseRow)
    .where(PurchaseRow.id.in_(bindparam("ids", expanding=True)))
    .order_by(PurchaseRow.id)
    .with_for_update()
)
_OWING = select(AccountRow.code).where(
    AccountRow.code.in_(bindparam("codes", expanding=True)), AccountRow.balance > 0
)
"""Which of the receivables asked for are owed."""


def merchant_reference(purchase_id: int) -> str:
    return f"purchase:{purchase_id}"
