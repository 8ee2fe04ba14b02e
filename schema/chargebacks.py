"""Chargebacks as support and finance read them, and the provider events behind them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from accounting.chargebacks import provider_events, receivables
from accounting.chargebacks import service as chargebacks
from accounting.chargebacks.errors import NothingOwed
from accounting.chargebacks.tables import (
    ChargebackClawbackRow,
    ChargebackRow,
    ProviderEventRow,
    WebhookRefusalRow,
)
from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import InvalidIdempotencyKey, InvalidReason, InvalidUserId
from accounting.ledger.money import minor_to_micros
from accounting.policy.access import may_read_provider_events
from accounting.policy.separation import SelfApprovalForbidden
from schema.authorization import CHARGEBACKS, require_finance
from schema.context import Info
from schema.errors import (
    BAD_USER_INPUT,
    ClientError,
    MutationError,
    error_type,
    errors_in_payload,
    require_role,
)
from schema.nodes import Node, global_id, pk_of
from schema.pagination import Connection, check_first, connection, decode_cursor, page_start
from schema.payloads import null_on_error, replayed_field
from schema.scalars import BigInt, Money


@strawberry.enum(description="How the provider took the purchase back.")
class ChargebackKind(Enum):
    DISPUTE = "dispute"
    APP_STORE_REFUND = "app_store_refund"
    VOIDED = "voided"
    PROVIDER_REFUND = "provider_refund"


@strawberry.enum(
    description="OPEN: a dispute not yet decided. WON: decided for us, the chargeback undone. "
    "LOST: decided against us, the chargeback stands. FINAL: a refund or void, not disputable."
)
class ChargebackStatus(Enum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    FINAL = "final"


@strawberry.enum(description="Where the value of coins already spent was booked.")
class LossBookedTo(Enum):
    RECEIVABLE = "receivable"
    FRAUD_LOSS = "fraud_loss"


@strawberry.type(description="Diamonds taken back from one gift the purchase paid for.")
class Clawback:
    gift_id: strawberry.ID
    creator_id: str
    coins: BigInt = strawberry.field(description="The gift's coins this purchase paid for.")
    diamonds: BigInt
    payable: Money


@strawberry.type(description="A purchase taken back by its provider, and what it moved.")
class Chargeback(Node):
    purchase_id: strawberry.ID
    user_id: str
    provider: str
    kind: ChargebackKind
    case_id: str = strawberry.field(description="The provider's dispute id, or event id.")
    reason: str
    status: ChargebackStatus
    cash: Money = strawberry.field(description="What the provider took back.")
    coins_clawed_back: BigInt = strawberry.field(description="Coins the buyer still held.")
    coins_spent: BigInt
    value_released: Money
    diamonds_clawed_back: BigInt = strawberry.field(
        description="Diamonds the spent coins bought that were still pending at creators."
    )
    payable_clawed_back: Money
    loss: Money = strawberry.field(
        description="What the spent coins cost, less the payable clawed back."
    )
    loss_booked_to: LossBookedTo
    contra_revenue: Money
    clawbacks: list[Clawback]
    created_at: datetime
    resolved_at: datetime | None


def chargeback_of(row: ChargebackRow, clawed: list[ChargebackClawbackRow], fc: str) -> Chargeback:
    return Chargeback(
        id=global_id("Chargeback", row.id),
        purchase_id=strawberry.ID(str(row.purchase_id)),
        user_id=row.user_id,
        provider=row.provider,
        kind=ChargebackKind(row.kind),
        case_id=row.case_id,
        reason=row.reason,
        status=ChargebackStatus(row.status),
        cash=Money.of(minor_to_micros(row.cash_minor, row.currency), row.currency),
        coins_clawed_back=BigInt(row.coins_clawed),
        coins_spent=BigInt(row.coins_spent),
        value_released=Money.of(row.value_released_micros, fc),
        diamonds_clawed_back=BigInt(row.diamonds_clawed),
        payable_clawed_back=Money.of(row.payable_clawed_micros, fc),
        loss=Money.of(row.loss_micros, fc),
        loss_booked_to=LossBookedTo(row.loss_booked_to),
        contra_revenue=Money.of(row.contra_revenue_micros, fc),
        clawbacks=[
            Clawback(
                gift_id=strawberry.ID(str(c.gift_id)),
                creator_id=c.creator_id,
                coins=BigInt(c.coins),
                diamonds=BigInt(c.diamonds),
                payable=Money.of(c.payable_micros, fc),
            )
            for c in clawed
        ],
        created_at=row.created_at,
        resolved_at=row.resolved_at,
    )


@strawberry.type(description="A signed provider event, accepted once, and what it did.")
class ProviderEvent:
    id: strawberry.ID
    provider: str
    event_id: str
    event_type: str
    outcome: str = strawberry.field(
        description="charged_back, already_charged_back, already_refunded, not_completed, "
        "amount_mismatch, unknown_purchase, dispute_won, dispute_lost, already_resolved, "
        "no_open_dispute, ignored or refused."
    )
    detail: str
    purchase_id: strawberry.ID | None
    chargeback_id: strawberry.ID | None
    signed_at: datetime
    received_at: datetime


def provider_event_of(row: ProviderEventRow) -> ProviderEvent:
    return ProviderEvent(
        id=strawberry.ID(str(row.id)),
        provider=row.provider,
        event_id=row.event_id,
        event_type=row.event_type,
        outcome=row.outcome,
        detail=row.detail,
        purchase_id=strawberry.ID(str(row.purchase_id)) if row.purchase_id else None,
        chargeback_id=strawberry.ID(str(row.chargeback_id)) if row.chargeback_id else None,
        signed_at=row.signed_at,
        received_at=row.received_at,
    )


@strawberry.type(
    description="Webhook deliveries refused before they were read as events, counted: those "
    "from one source for one reason within one minute, the first one's details kept as a sample."
)
class RefusedDelivery:
    id: strawberry.ID
    source: str = strawberry.field(
        description="The provider the address named, or 'unknown' when it named none we know."
    )
    provider: str = strawberry.field(
        description="The first delivery's provider, as its address named it."
    )
    reason: str = strawberry.field(
        description="UNKNOWN_PROVIDER, MISSING_SIGNATURE, BAD_SIGNATURE, STALE_TIMESTAMP or "
        "MALFORMED_EVENT."
    )
    window_start: datetime = strawberry.field(description="The minute they came in.")
    deliveries: BigInt = strawberry.field(description="How many were refused.")
    total_bytes: BigInt = strawberry.field(description="Their bodies' sizes, summed.")
    first_seen_at: datetime
    last_seen_at: datetime
    detail: str = strawberry.field(description="Why the first was refused.")
    body_sha256: str = strawberry.field(description="The first one's body's SHA-256.")
    body_bytes: BigInt = strawberry.field(description="The first one's body's size.")
    client: str | None = strawberry.field(description="The first one's client address.")
    received_at: datetime = strawberry.field(description="When the first came.")


def refused_delivery_of(row: WebhookRefusalRow) -> RefusedDelivery:
    return RefusedDelivery(
        id=strawberry.ID(str(row.id)),
        source=row.source,
        provider=row.sample_provider,
        reason=row.reason,
        window_start=row.window_start,
        deliveries=BigInt(row.deliveries),
        total_bytes=BigInt(row.body_bytes),
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        detail=row.sample_detail,
        body_sha256=row.sample_body_sha256,
        body_bytes=BigInt(row.sample_body_bytes),
        client=row.sample_client,
        received_at=row.first_seen_at,
    )


async def load_chargeback(info: Info, pk: int) -> Chargeback | None:
    """Chargeback ``pk`` for support and finance (FORBIDDEN to other roles, as the list is);
    None when there is none. ``node(id:)`` answers with it."""
    CHARGEBACKS.caller(info)
    async with info.context.services.reads() as session:
        row = await session.get(ChargebackRow, pk)
        if row is None:
            return None
        clawed = await chargebacks.clawbacks_of(session, [row.id])
    return chargeback_of(row, clawed[row.id], info.context.services.functional_currency)


@strawberry.type
class ChargebackQueries:
    @strawberry.field(
        description="Chargebacks, newest first, of one buyer or of all (support and finance)."
    )
    async def chargebacks(
        self, info: Info, user_id: str | None = None, first: int = 20, after: str | None = None
    ) -> Connection[Chargeback]:
        CHARGEBACKS.caller(info)
        check_first(first)
        if user_id is not None:
            try:
                check_user_id(user_id)
            except InvalidUserId as error:
                raise ClientError(BAD_USER_INPUT, error.message) from None
        before = decode_cursor("chargeback", after)
        fc = info.context.services.functional_currency
        async with info.context.services.reads() as session:
            page = await chargebacks.chargebacks_page(
                session, user_id=user_id, first=first, before_id=before
            )
            clawed = await chargebacks.clawbacks_of(session, [row.id for row in page.items])
        return connection(
            "chargeback",
            [(row.id, chargeback_of(row, clawed[row.id], fc)) for row in page.items],
            page.has_next,
        )

    @strawberry.field(
        description="Provider events as accepted, newest first, of one purchase or all (finance)."
    )
    async def provider_events(
        self,
        info: Info,
        purchase_id: strawberry.ID | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[ProviderEvent]:
        require_role(
            info, may_read_provider_events, "read provider events without the finance role"
        )
        check_first(first)
        purchase = None
        if purchase_id is not None:
            purchase = pk_of(purchase_id, "Purchase")
            if purchase is None:
                raise ClientError(BAD_USER_INPUT, "'purchaseId' is not a purchase id")
        before = decode_cursor("provider_event", after)
        async with info.context.services.reads() as session:
            page = await provider_events.provider_events_page(
                session, purchase_id=purchase, first=first, before_id=before
            )
        return connection(
            "provider_event",
            [(row.id, provider_event_of(row)) for row in page.items],
            page.has_next,
        )

    @strawberry.field(
        description="Webhook deliveries refused, counted per source, reason and minute, newest "
        "first (finance)."
    )
    async def refused_deliveries(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[RefusedDelivery]:
        what = "read refused webhook deliveries without the finance role"
        require_role(info, may_read_provider_events, what)
        before = page_start("refused_delivery", first, after)
        async with info.context.services.reads() as session:
            page = await provider_events.refused_deliveries_page(
                session, first=first, before_id=before
            )
        return connection(
            "refused_delivery",
            [(row.id, refused_delivery_of(row)) for row in page.items],
            page.has_next,
        )


# --- writeOffReceivable -------------------------------------------------------------------------


@strawberry.input
class WriteOffReceivableInput:
    user_id: str = strawberry.field(description="The user whose receivable is written off.")
    reason: str = strawberry.field(description="Why, for the record: 1-500 characters.")
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per write-off (a UUID)."
    )


@strawberry.type(description="A user's receivable written off to fraud losses.")
class ReceivableWriteOff:
    entry_id: strawberry.ID
    user_id: str
    amount: Money = strawberry.field(description="What the user owed, all of it, now a loss.")


@error_type(NothingOwed, SelfApprovalForbidden, InvalidUserId, InvalidReason, InvalidIdempotencyKey)
class WriteOffReceivableError(MutationError): ...


@strawberry.type
class WriteOffReceivablePayload:
    write_off: ReceivableWriteOff | None = null_on_error()
    replayed: bool = replayed_field()
    errors: list[WriteOffReceivableError]


@strawberry.type
class ChargebackMutations:
    @strawberry.mutation(
        description="Write off what a user owes after a chargeback (finance role): the whole "
        "receivable to fraud losses, with a reason, audited; the same key again replays it."
    )
    @errors_in_payload(WriteOffReceivablePayload, WriteOffReceivableError)
    async def write_off_receivable(
        self, info: Info, input: WriteOffReceivableInput
    ) -> WriteOffReceivablePayload:
        principal = require_finance(info, "write off receivables")
        services = info.context.services
        done = await receivables.write_off_receivable(
            services.sessions,
            receivables.WriteOffRequest(
                input.user_id, input.idempotency_key, principal.actor, input.reason
            ),
            services.functional_currency,
        )
        write_off = ReceivableWriteOff(
            entry_id=strawberry.ID(str(done.entry_id)),
            user_id=done.user_id,
            amount=Money.of(done.amount_micros, done.currency),
        )
        return WriteOffReceivablePayload(write_off=write_off, replayed=done.replayed, errors=[])
