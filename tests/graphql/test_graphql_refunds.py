"""The refund check over GraphQL: whether a purchase may be refunded now, every reason if not,
and what a refund would move. It reads; it never posts."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import URL

from api.app import create_app
from api.settings import Settings
from schema.nodes import pk_of
from tests.conftest import GraphQLClient

REFUND_CHECK = """
query Check($id: ID!) {
  refundCheck(purchaseId: $id) {
    purchase { id status }
    refundable
    reasons { code message }
    refundableUntil
    amounts { coins cash { amount currency } valueReleased { amount currency }
              contraRevenue { amount currency } }
  }
}
"""
BUY = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { id status } errors { code } }
}
"""
START = 'mutation { startStream(input: {title: "live"}) { stream { id } errors { code } } }'
GIFT = """
mutation Gift($input: SendGiftInput!) { sendGift(input: $input) { errors { code } } }
"""
FREEZE = """
mutation Freeze($input: SetAccountFrozenInput!) {
  setAccountFrozen(input: $input) { errors { code } }
}
"""
BOOKS = "{ integrityReport { ok entries postings accounts } }"

_keys = itertools.count(1)


def key() -> str:
    return f"refund-check-{next(_keys):06d}"


async def buy(gql: GraphQLClient, user: str = "ana", **overrides: Any) -> str:
    fields = {
        "idempotencyKey": key(),
        "currency": "USD",
        "channel": "WEB",
        "provider": "CARD",
        "paymentToken": "tok_success",
        "packageCode": "coins_350",
        **overrides,
    }
    reply = await gql(BUY, {"input": fields}, user=user)
    payload = reply["data"]["purchaseCoins"]
    if fields["paymentToken"] == "tok_success":
        assert payload["errors"] == [], payload
    purchase_id: str = payload["purchase"]["id"]
    return purchase_id


async def check(
    gql: GraphQLClient, purchase_id: str, user: str = "ana", roles: tuple[str, ...] = ("viewer",)
) -> dict[str, Any]:
    reply = await gql(REFUND_CHECK, {"id": purchase_id}, user=user, roles=roles)
    assert "errors" not in reply, reply
    found: dict[str, Any] = reply["data"]["refundCheck"]
    return found


def codes(found: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in found["reasons"]]


async def test_an_unspent_card_purchase_is_refundable_and_says_what_a_refund_would_move(
    gql: GraphQLClient,
) -> None:
    """Ana buys 350 coins for $4.99 by card and spends none: refundable. A refund would take
    back 350 coins, return $4.99 to the card, release all $4.99 of deferred value, and leave
    nothing for contra revenue."""
    purchase = await buy(gql)
    found = await check(gql, purchase)
    assert found["refundable"] is True and found["reasons"] == []
    assert found["purchase"] == {"id": purchase, "status": "COMPLETED"}
    assert found["amounts"] == {
        "coins": "350",
        "cash": {"amount": "4.99", "currency": "USD"},
        "valueReleased": {"amount": "4.99", "currency": "USD"},
        "contraRevenue": {"amount": "0.00", "currency": "USD"},
    }


async def test_the_check_posts_nothing(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    before = await gql(BOOKS, user="fin", roles=("finance",))
    assert before["data"]["integrityReport"]["ok"] is True
    assert before["data"]["integrityReport"]["entries"] == "1"
    for _ in range(3):
        await check(gql, purchase)
    assert await gql(BOOKS, user="fin", roles=("finance",)) == before


async def test_with_two_purchases_a_refund_releases_the_weighted_average(
    gql: GraphQLClient,
) -> None:
    """Ana buys 350 coins for $4.99, then 17,500 + 875 bonus coins for $249.99 (about $0.0136 a
    coin). Refunding the first would release her average over all 18,725 coins for 350 of them,
    less than the $4.99 she paid for them: the difference is contra revenue."""
    first = await buy(gql)
    await buy(gql, packageCode="coins_17500")
    found = await check(gql, first)
    assert found["refundable"] is True
    amounts = found["amounts"]
    assert amounts["cash"] == {"amount": "4.99", "currency": "USD"}
    released = float(amounts["valueReleased"]["amount"])
    contra = float(amounts["contraRevenue"]["amount"])
    assert 0 < released < 4.99
    assert round(released + contra, 6) == 4.99


async def test_spent_coins_block_the_refund_and_leave_no_amounts(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    stream = (await gql(START, user="bo", roles=("creator",)))["data"]["startStream"]["stream"]
    sent = await gql(
        GIFT,
        {"input": {"streamId": stream["id"], "giftCode": "rose", "quantity": 1,
                   "idempotencyKey": key()}},
        user="ana",
    )  # fmt: skip
    assert sent["data"]["sendGift"]["errors"] == []
    found = await check(gql, purchase)
    assert found["refundable"] is False
    assert codes(found) == ["COINS_SPENT"]
    assert found["reasons"][0]["message"] == "The purchase granted 350 coins; the wallet holds 349"
    assert found["amounts"] is None


async def test_an_app_store_purchase_is_refunded_by_the_store(gql: GraphQLClient) -> None:
    purchase = await buy(gql, channel="IOS", provider="APPLE")
    found = await check(gql, purchase)
    assert codes(found) == ["PROVIDER_DOES_NOT_REFUND"]
    assert found["amounts"] is not None  # what it would move, were it ours to refund


async def test_a_frozen_account_is_not_refunded(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    frozen = await gql(
        FREEZE,
        {"input": {"userId": "ana", "frozen": True, "reason": "dispute under review"}},
        user="root",
        roles=("admin",),
    )
    assert frozen["data"]["setAccountFrozen"]["errors"] == []
    assert codes(await check(gql, purchase)) == ["ACCOUNT_FROZEN"]


async def test_a_declined_purchase_granted_nothing_to_refund(gql: GraphQLClient) -> None:
    purchase = await buy(gql, paymentToken="tok_declined")
    found = await check(gql, purchase)
    assert found["purchase"]["status"] == "FAILED"
    assert codes(found) == ["NOT_COMPLETED"]
    assert found["amounts"] is None


@pytest.fixture
async def closed_window(
    settings: Settings, db_url: URL, token: Callable[..., str]
) -> AsyncIterator[GraphQLClient]:
    """The service with a refund window of zero days: every purchase is past it."""
    app = create_app(settings.model_copy(update={"refund_window_days": 0}), db_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield GraphQLClient(http, token)
    await app.state.engine.dispose()


async def test_past_the_window_every_reason_is_given(closed_window: GraphQLClient) -> None:
    gql = closed_window
    purchase = await buy(gql, channel="IOS", provider="APPLE")
    await gql(
        FREEZE,
        {"input": {"userId": "ana", "frozen": True, "reason": "chargeback"}},
        user="root",
        roles=("admin",),
    )
    found = await check(gql, purchase)
    assert codes(found) == ["WINDOW_PASSED", "PROVIDER_DOES_NOT_REFUND", "ACCOUNT_FROZEN"]


async def test_support_checks_anyone_and_a_viewer_only_their_own(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    assert (await check(gql, purchase, user="sam", roles=("support",)))["refundable"] is True
    reply = await gql(REFUND_CHECK, {"id": purchase}, user="bo")
    assert reply == {"data": {"refundCheck": None}}  # as if there were no such purchase
    reply = await gql(REFUND_CHECK, {"id": purchase})
    assert [e["extensions"]["code"] for e in reply["errors"]] == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("purchase_id", ["999999", "not-a-number", "99999999999999999999"])
async def test_an_unknown_purchase_is_null(gql: GraphQLClient, purchase_id: str) -> None:
    reply = await gql(REFUND_CHECK, {"id": purchase_id}, user="ana")
    assert reply == {"data": {"refundCheck": None}}


REFUND = """
mutation Refund($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) {
    refund { id purchaseId coins cash { amount currency } valueReleased { amount currency }
             contraRevenue { amount currency } refundedBy reason }
    purchase { id status }
    replayed
    errors { code message field reasons }
  }
}
"""
WALLET = "{ wallet { coins coinsValue { amount currency } } }"


async def refund(
    gql: GraphQLClient, purchase_id: str, refund_key: str | None = None, reason: str = "asked"
) -> dict[str, Any]:
    reply = await gql(
        REFUND,
        {"input": {"purchaseId": purchase_id, "idempotencyKey": refund_key or key(),
                   "reason": reason}},
        user="sam",
        roles=("support",),
    )  # fmt: skip
    assert "errors" not in reply, reply
    payload: dict[str, Any] = reply["data"]["refundPurchase"]
    return payload


async def books(gql: GraphQLClient) -> dict[str, Any]:
    found: dict[str, Any] = (await gql(BOOKS, user="fin", roles=("finance",)))["data"][
        "integrityReport"
    ]
    return found


async def test_support_refunds_an_unspent_purchase_and_the_wallet_is_empty_again(
    gql: GraphQLClient,
) -> None:
    """Ana buys 350 coins for $4.99 by card and asks for her money back: Sam in support
    refunds it. The coins leave her wallet, so does their $4.99 of deferred value, and the
    $4.99 goes back to the card: no contra revenue. The books still check out."""
    purchase = await buy(gql)
    done = await refund(gql, purchase, reason="bought by mistake")
    assert done["errors"] == [] and done["replayed"] is False
    # A reference field gives the row id this release (docs/graphql.md, Conventions).
    assert done["refund"]["purchaseId"] == str(pk_of(purchase, "Purchase"))
    assert (done["refund"]["coins"], done["refund"]["cash"]) == (
        "350",
        {"amount": "4.99", "currency": "USD"},
    )
    assert done["refund"]["valueReleased"] == {"amount": "4.99", "currency": "USD"}
    assert done["refund"]["contraRevenue"] == {"amount": "0.00", "currency": "USD"}
    assert (done["refund"]["refundedBy"], done["refund"]["reason"]) == (
        "user:sam",
        "bought by mistake",
    )
    wallet = (await gql(WALLET, user="ana"))["data"]["wallet"]
    assert wallet == {"coins": "0", "coinsValue": {"amount": "0.00", "currency": "USD"}}
    report = await books(gql)
    assert report["ok"] is True and report["entries"] == "2"
    found = await check(gql, purchase)
    assert codes(found) == ["ALREADY_REFUNDED"] and found["amounts"] is None
    audit = await gql(
        """query A($s: String) {
             auditLog(subject: $s) { edges { node { actor action reason } } } }""",
        {"s": f"purchase:{pk_of(purchase, 'Purchase')}"},  # audit subjects name row ids
        user="fin",
        roles=("finance",),
    )
    assert [e["node"] for e in audit["data"]["auditLog"]["edges"]] == [
        {"actor": "user:sam", "action": "purchase.refunded", "reason": "bought by mistake"}
    ]


async def test_a_refund_of_one_of_two_purchases_books_the_difference_as_contra_revenue(
    gql: GraphQLClient,
) -> None:
    first = await buy(gql)
    await buy(gql, packageCode="coins_17500")
    done = await refund(gql, first)
    assert done["errors"] == []
    released = float(done["refund"]["valueReleased"]["amount"])
    contra = float(done["refund"]["contraRevenue"]["amount"])
    assert 0 < released < 4.99 and round(released + contra, 6) == 4.99
    wallet = (await gql(WALLET, user="ana"))["data"]["wallet"]
    assert wallet["coins"] == str(17_500 + 875)
    assert (await books(gql))["ok"] is True


async def test_the_same_key_gives_back_the_first_refund_and_another_key_is_refused(
    gql: GraphQLClient,
) -> None:
    purchase = await buy(gql)
    first = await refund(gql, purchase, refund_key="refund-key-0001")
    again = await refund(gql, purchase, refund_key="refund-key-0001")
    assert again["replayed"] is True and again["refund"] == first["refund"]
    other = await refund(gql, purchase, refund_key="refund-key-0002")
    assert [(e["code"], e["reasons"]) for e in other["errors"]] == [
        ("REFUND_NOT_ALLOWED", ["ALREADY_REFUNDED"])
    ]
    second_purchase = await buy(gql)
    reused = await refund(gql, second_purchase, refund_key="refund-key-0001")
    assert [e["code"] for e in reused["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    assert (await books(gql))["entries"] == "3"  # two purchases and one refund


async def test_a_refund_the_check_refuses_posts_nothing_and_says_why(gql: GraphQLClient) -> None:
    purchase = await buy(gql, channel="IOS", provider="APPLE")
    before = await books(gql)
    refused = await refund(gql, purchase)
    assert refused["refund"] is None
    assert [(e["code"], e["field"], e["reasons"]) for e in refused["errors"]] == [
        ("REFUND_NOT_ALLOWED", "purchaseId", ["PROVIDER_DOES_NOT_REFUND"])
    ]
    assert await books(gql) == before


@pytest.mark.parametrize(
    ("purchase_id", "refund_key", "reason", "code"),
    [
        ("999999", "refund-key-0009", "asked", "PURCHASE_NOT_FOUND"),
        (None, "short", "asked", "INVALID_IDEMPOTENCY_KEY"),
        (None, "refund-key-0010", "   ", "INVALID_REASON"),
        (None, "refund-key-0011", "x" * 501, "INVALID_REASON"),
    ],
)
async def test_bad_input_is_a_clear_error_and_changes_nothing(
    gql: GraphQLClient, purchase_id: str | None, refund_key: str, reason: str, code: str
) -> None:
    purchase = await buy(gql)
    before = await books(gql)
    refused = await refund(gql, purchase_id or purchase, refund_key=refund_key, reason=reason)
    assert [e["code"] for e in refused["errors"]] == [code]
    assert await books(gql) == before


async def test_only_support_refunds(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    for user, roles in (("ana", ("viewer",)), ("fin", ("finance",)), ("root", ("admin",))):
        reply = await gql(
            REFUND,
            {"input": {"purchaseId": purchase, "idempotencyKey": key(), "reason": "mine"}},
            user=user,
            roles=roles,
        )
        assert [e["extensions"]["code"] for e in reply["errors"]] == ["FORBIDDEN"]
    assert (await check(gql, purchase))["refundable"] is True


async def test_racing_refunds_of_one_purchase_refund_it_once(
    gql: GraphQLClient, sessions: Any
) -> None:
    """Ten support people refund the same purchase at once, each with a key of their own:
    one refund is made, the nine others are told it was already refunded."""
    import asyncio

    from accounting.refunds.errors import RefundNotAllowed
    from accounting.refunds.service import RefundPolicy, RefundRequest, refund_purchase

    purchase = pk_of(await buy(gql), "Purchase")
    assert purchase is not None

    async def one(n: int) -> str:
        try:
            await refund_purchase(
                sessions,
                RefundRequest(purchase, f"race-key-{n:04d}", f"user:agent{n}", "race"),
                policy=RefundPolicy(),
                functional_currency="USD",
            )
        except RefundNotAllowed as refused:
            return ",".join(refused.facts["reasons"])
        return "refunded"

    outcomes = await asyncio.gather(*(one(n) for n in range(10)))
    assert sorted(outcomes) == ["ALREADY_REFUNDED"] * 9 + ["refunded"]
    report = await books(gql)
    assert report["ok"] is True and report["entries"] == "2"


async def test_the_database_keeps_a_refund_as_it_was_made_and_one_per_purchase(
    gql: GraphQLClient, db_url: URL
) -> None:
    import asyncpg

    from api.database import libpq_url

    purchase = await buy(gql)
    assert (await refund(gql, purchase))["errors"] == []
    raw = await asyncpg.connect(libpq_url(db_url))
    try:
        for statement in ("UPDATE refund SET reason = 'edited'", "DELETE FROM refund"):
            with pytest.raises(asyncpg.RestrictViolationError, match="refund is append-only"):
                await raw.execute(statement)
        with pytest.raises(asyncpg.UniqueViolationError) as refused:
            await raw.execute(
                "INSERT INTO refund (purchase_id, entry_id, actor, idempotency_key, reason,"
                " coins, cash_minor, value_released_micros, contra_revenue_micros, created_at)"
                " SELECT purchase_id, entry_id, 'user:eve', 'another-key-01', 'twice', coins,"
                " cash_minor, value_released_micros, contra_revenue_micros, now() FROM refund"
            )
        assert refused.value.constraint_name in {"uq_refund_purchase_id", "uq_refund_entry_id"}
    finally:
        await raw.close()
    assert (await books(gql))["ok"] is True
