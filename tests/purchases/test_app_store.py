"""Apple in-app purchases over HTTP: purchaseCoinsInAppStore verifies the App Store's signed
transaction (offline, against a root of the tests' own, tests/purchases/app_store.py) and grants
its product's package once per transaction; every refused transaction gets a typed error and
writes nothing. Apple's signed REFUND notifications verify the same way."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.tables import ProviderEventRow
from accounting.ledger.tables import JournalEntryRow
from accounting.policy.access import Role
from accounting.purchases.tables import PurchaseRow
from api.app import create_app
from api.auth import issue_token
from api.settings import Settings
from schema.nodes import pk_of
from tests.purchases.app_store import (
    APP_APPLE_ID,
    BUNDLE_ID,
    PRODUCTS,
    AppStore,
    issue,
    millis,
    transaction_payload,
)

BUY = """
mutation Buy($input: PurchaseCoinsInAppStoreInput!) {
  purchaseCoinsInAppStore(input: $input) {
    purchase {
      id userId status packageCode coins bonusCoins channel provider
      price { amount currency } providerReference
    }
    wallet { coins coinsValue { amount currency } }
    replayed
    errors { code field }
  }
}
"""

TOKEN_PURCHASE = """
mutation PurchaseCoins($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { status } errors { code field } }
}
"""


@pytest.fixture(scope="module")
def store() -> AppStore:
    return AppStore()


def apple_settings(
    db_url: URL, root: Path, *, environment: str = "development", **overrides: Any
) -> Settings:
    fields: dict[str, Any] = {
        "database_url": db_url.render_as_string(hide_password=False),
        "environment": environment,
        "apple_bundle_id": BUNDLE_ID,
        "apple_app_apple_id": APP_APPLE_ID,
        "apple_environment": "Sandbox",
        "apple_root_certificates": (root,),
        "apple_products": PRODUCTS,
        **overrides,
    }
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


@pytest.fixture
def root_file(store: AppStore, tmp_path: Path) -> Path:
    path = tmp_path / "TestRootCA.pem"
    path.write_bytes(store.root_pem())
    return path


class Buyer:
    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    async def buy(self, signed: str, *, key: str = "apple-key-0001", user: str = "ana") -> Any:
        bearer = issue_token(self.settings, user, [Role.VIEWER])
        response = await self.http.post(
            "/graphql",
            json={
                "query": BUY,
                "variables": {"input": {"idempotencyKey": key, "signedTransaction": signed}},
            },
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]["purchaseCoinsInAppStore"]

    async def graphql(self, query: str, variables: dict[str, Any], user: str = "ana") -> Any:
        bearer = issue_token(self.settings, user, [Role.VIEWER])
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        body: dict[str, Any] = response.json()
        return body["data"]

    async def notify(self, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/webhooks/apple", content=json.dumps(body).encode())


@asynccontextmanager
async def buyer_of(settings: Settings, db_url: URL) -> AsyncIterator[Buyer]:
    app = create_app(settings, db_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield Buyer(http, settings)
    await app.state.engine.dispose()


@pytest.fixture
async def apple(db_url: URL, root_file: Path) -> AsyncIterator[Buyer]:
    async with buyer_of(apple_settings(db_url, root_file), db_url) as buyer:
        yield buyer


async def rows(sessions: async_sessionmaker[AsyncSession], table: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


def granted(purchase_id: str, user: str = "ana") -> dict[str, Any]:
    """350 coins for what Apple says was paid: 5490 milliunits, 5.49 USD (the iOS price)."""
    return {
        "id": purchase_id,
        "userId": user,
        "status": "COMPLETED",
        "packageCode": "coins_350",
        "coins": "350",
        "bonusCoins": "0",
        "channel": "IOS",
        "provider": "APPLE",
        "price": {"amount": "5.49", "currency": "USD"},
        "providerReference": "2000000123456789",
    }


async def test_a_verified_transaction_grants_its_package_once(
    apple: Buyer, store: AppStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    signed = store.transaction()

    first = await apple.buy(signed)
    again = await apple.buy(signed)
    other_key = await apple.buy(store.transaction(), key="apple-key-0002")

    purchase_id = first["purchase"]["id"]
    assert first == {
        "purchase": granted(purchase_id),
        "wallet": {"coins": "350", "coinsValue": {"amount": "5.49", "currency": "USD"}},
        "replayed": False,
        "errors": [],
    }
    # The same transaction again, under its key or another (signed anew): the same purchase,
    # nothing more granted: the wallet holds 350 coins worth 5.49 USD still.
    for replay in (again, other_key):
        assert replay == {**first, "replayed": True}
    assert await rows(sessions, PurchaseRow) == 1
    assert await rows(sessions, JournalEntryRow) == 1


async def test_one_transaction_presented_five_times_at_once_grants_once(
    apple: Buyer, store: AppStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    signed = store.transaction()

    replies = await asyncio.gather(
        *(apple.buy(signed, key=f"apple-race-{n:04d}") for n in range(5))
    )

    # One request recorded and completed the purchase; the four others, queued on the lock of
    # Apple's transaction id, found it and answered with it: 350 coins, once.
    assert sorted(reply["replayed"] for reply in replies) == [False, True, True, True, True]
    assert {reply["purchase"]["id"] for reply in replies} == {replies[0]["purchase"]["id"]}
    assert all(reply["purchase"]["status"] == "COMPLETED" for reply in replies)
    assert await apple.graphql("query { wallet { coins } }", {}) == {"wallet": {"coins": "350"}}
    assert await rows(sessions, PurchaseRow) == 1
    assert await rows(sessions, JournalEntryRow) == 1


async def test_apples_price_is_what_the_purchase_records(apple: Buyer, store: AppStore) -> None:
    # Apple says the buyer paid 5990 milliunits: 5.99 USD, not the catalog's 5.49.
    reply = await apple.buy(store.transaction(price=5990))

    assert reply["purchase"]["price"] == {"amount": "5.99", "currency": "USD"}
    assert reply["wallet"] == {"coins": "350", "coinsValue": {"amount": "5.99", "currency": "USD"}}


async def test_a_tokenless_transaction_presented_by_another_user_is_refused(
    db_url: URL, root_file: Path, store: AppStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Tokens not required (app releases from before them): a transaction without one is the
    # first presenter's, and refused to everyone else once it granted.
    settings = apple_settings(db_url, root_file, apple_require_account_token=False)
    signed = store.transaction(buyer=None)
    async with buyer_of(settings, db_url) as apple:
        await apple.buy(signed)
        stolen = await apple.buy(signed, key="apple-key-0003", user="bo")

    assert stolen == {
        "purchase": None,
        "wallet": None,
        "replayed": False,
        "errors": [{"code": "PAYMENT_ALREADY_USED", "field": "signedTransaction"}],
    }
    assert await rows(sessions, PurchaseRow) == 1


async def test_a_key_used_for_another_transaction_is_refused(
    apple: Buyer, store: AppStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await apple.buy(store.transaction("2000000000000001"))

    reused = await apple.buy(store.transaction("2000000000000002"))

    assert reused["errors"] == [{"code": "IDEMPOTENCY_KEY_REUSED", "field": "idempotencyKey"}]
    assert reused["purchase"] is None
    assert await rows(sessions, PurchaseRow) == 1
    assert await rows(sessions, JournalEntryRow) == 1


def tampered(signed: str) -> str:
    """The same header and signature over a payload that says another product."""
    header, _, signature = signed.split(".")
    payload = transaction_payload("2000000123456789", productId="com.coinbooks.coins17500")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


def expired_store(root: AppStore) -> AppStore:
    """The same root and intermediate, and a leaf whose certificate expired a day ago."""
    from tests.purchases.app_store import RECEIPT_SIGNING_MARKER

    assert root.intermediate is not None
    leaf = issue(
        "Expired Signing",
        issuer=root.intermediate,
        ca=False,
        marker=RECEIPT_SIGNING_MARKER,
        not_after=datetime.now(UTC) - timedelta(days=1),
    )
    return AppStore(root=root.root, intermediate=root.intermediate, leaf=leaf)


def leaf_without_marker(root: AppStore) -> AppStore:
    """A leaf of the right chain without Apple's receipt-signing marker."""
    assert root.intermediate is not None
    leaf = issue("Unmarked Signing", issuer=root.intermediate, ca=False)
    return AppStore(root=root.root, intermediate=root.intermediate, leaf=leaf)


REFUSED: list[tuple[str, Any, str]] = [
    (
        "another app",
        lambda s: s.transaction(bundleId="com.example.other"),
        "PAYMENT_FOR_ANOTHER_APP",
    ),
    (
        "production while sandbox is configured",
        lambda s: s.transaction(environment="Production"),
        "PAYMENT_WRONG_ENVIRONMENT",
    ),
    (
        "a product we do not sell",
        lambda s: s.transaction(productId="com.coinbooks.sticker"),
        "PRODUCT_NOT_SOLD",
    ),
    ("three at once", lambda s: s.transaction(quantity=3), "PRODUCT_NOT_SOLD"),
    (
        "revoked",
        lambda s: s.transaction(revocationDate=millis(datetime.now(UTC))),
        "PAYMENT_REVOKED",
    ),
    ("a bad signature", lambda s: tampered(s.transaction()), "PAYMENT_NOT_VERIFIED"),
    ("a chain to another root", lambda s: AppStore().transaction(), "PAYMENT_NOT_VERIFIED"),
    ("an expired certificate", lambda s: expired_store(s).transaction(), "PAYMENT_NOT_VERIFIED"),
    (
        "a leaf without Apple's marker",
        lambda s: leaf_without_marker(s).transaction(),
        "PAYMENT_NOT_VERIFIED",
    ),
    ("not a JWS", lambda s: "not-a-signed-transaction", "PAYMENT_NOT_VERIFIED"),
    ("too long", lambda s: "x" * (32 * 1024 + 1), "PAYMENT_NOT_VERIFIED"),
    ("a price not in cents", lambda s: s.transaction(price=5495), "PAYMENT_NOT_VERIFIED"),
    ("free", lambda s: s.transaction(price=0), "PAYMENT_NOT_VERIFIED"),
]


@pytest.mark.parametrize(("case", "make", "code"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_a_transaction_that_does_not_hold_is_refused_and_writes_nothing(
    apple: Buyer,
    store: AppStore,
    sessions: async_sessionmaker[AsyncSession],
    case: str,
    make: Any,
    code: str,
) -> None:
    reply = await apple.buy(make(store))

    assert reply == {
        "purchase": None,
        "wallet": None,
        "replayed": False,
        "errors": [{"code": code, "field": "signedTransaction"}],
    }
    assert await rows(sessions, PurchaseRow) == 0
    assert await rows(sessions, JournalEntryRow) == 0


async def test_with_apple_configured_the_sandbox_grants_no_apple_token(apple: Buyer) -> None:
    variables = {
        "input": {
            "idempotencyKey": "apple-token-0001",
            "currency": "USD",
            "channel": "IOS",
            "provider": "APPLE",
            "paymentToken": "tok_success",
            "packageCode": "coins_350",
        }
    }

    reply = await apple.graphql(TOKEN_PURCHASE, variables)

    assert reply["purchaseCoins"] == {
        "purchase": None,
        "errors": [{"code": "PROVIDER_NOT_AVAILABLE", "field": "provider"}],
    }


async def test_without_apple_configured_no_store_purchase_is_taken(
    gql: Any, store: AppStore
) -> None:
    variables = {"input": {"idempotencyKey": "apple-key-0001", "signedTransaction": "x.y.z"}}

    reply = await gql(BUY, variables, user="ana")

    assert reply["data"]["purchaseCoinsInAppStore"]["errors"] == [
        {"code": "PROVIDER_NOT_AVAILABLE", "field": "store"}
    ]


async def test_production_sells_coins_through_apple(
    db_url: URL, root_file: Path, store: AppStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = apple_settings(
        db_url,
        root_file,
        environment="production",
        apple_environment="Production",
        jwt_secret="production-signing-key-0123456789abcdef-0123456789abcdef",
        secrets_key="cHJvZHVjdGlvbi1zZWNyZXRzLWtleS0wMTIzNDU2Nzg=",
    )

    async with buyer_of(settings, db_url) as buyer:
        sandboxed = await buyer.buy(store.transaction(), key="apple-key-0010")
        paid = await buyer.buy(store.transaction(environment="Production"), key="apple-key-0011")

    assert sandboxed["errors"] == [
        {"code": "PAYMENT_WRONG_ENVIRONMENT", "field": "signedTransaction"}
    ]
    assert paid["purchase"] == granted(paid["purchase"]["id"])
    assert paid["wallet"]["coins"] == "350"
    assert await rows(sessions, PurchaseRow) == 1


# --- Account tokens (appAccountToken) ----------------------------------------------------------

TOKEN = "query { appAccountToken }"


def refused(code: str) -> dict[str, Any]:
    return {
        "purchase": None,
        "wallet": None,
        "replayed": False,
        "errors": [{"code": code, "field": "signedTransaction"}],
    }


async def test_a_transaction_bought_for_another_user_is_refused_and_its_buyer_redeems_it(
    apple: Buyer, store: AppStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Ana bought 350 coins; her app set her token on the purchase. Bo got hold of the signed
    # transaction and presents it before she does.
    signed = store.transaction(buyer="ana")

    stolen = await apple.buy(signed, key="apple-key-bo-01", user="bo")

    assert stolen == refused("PAYMENT_FOR_ANOTHER_ACCOUNT")
    assert await rows(sessions, PurchaseRow) == 0
    assert await rows(sessions, JournalEntryRow) == 0

    # Ana presents it: 350 coins worth the 5.49 USD she paid (5490 milliunits), and Bo's
    # wallet is as empty as before.
    redeemed = await apple.buy(signed, user="ana")
    again = await apple.buy(signed, key="apple-key-bo-02", user="bo")
    replay = await apple.buy(signed, key="apple-key-0002", user="ana")

    assert redeemed == {
        "purchase": granted(redeemed["purchase"]["id"]),
        "wallet": {"coins": "350", "coinsValue": {"amount": "5.49", "currency": "USD"}},
        "replayed": False,
        "errors": [],
    }
    # Redeemed, it is still not Bo's; Ana presenting it again replays it, granting nothing.
    assert again == refused("PAYMENT_FOR_ANOTHER_ACCOUNT")
    assert replay == {**redeemed, "replayed": True}
    assert await apple.graphql("query { wallet { coins } }", {}, user="bo") == {
        "wallet": {"coins": "0"}
    }
    assert await rows(sessions, PurchaseRow) == 1
    assert await rows(sessions, JournalEntryRow) == 1


async def test_each_user_buys_with_their_own_token(apple: Buyer, store: AppStore) -> None:
    ana = await apple.buy(store.transaction("2000000000000011", buyer="ana"), user="ana")
    bo = await apple.buy(
        store.transaction("2000000000000012", buyer="bo"), key="apple-key-bo-01", user="bo"
    )

    # 350 coins and 5.49 USD of value each, in each one's own wallet.
    for reply, user in ((ana, "ana"), (bo, "bo")):
        assert reply["purchase"]["userId"] == user
        assert reply["purchase"]["status"] == "COMPLETED"
        assert reply["wallet"] == {
            "coins": "350",
            "coinsValue": {"amount": "5.49", "currency": "USD"},
        }


NOT_BOUND: list[tuple[str, Any, str]] = [
    ("no token", lambda s: s.transaction(buyer=None), "PAYMENT_WITHOUT_ACCOUNT_TOKEN"),
    ("another user's", lambda s: s.transaction(buyer="bo"), "PAYMENT_FOR_ANOTHER_ACCOUNT"),
    (
        "not a UUID",
        lambda s: s.transaction(appAccountToken="ana"),
        "PAYMENT_FOR_ANOTHER_ACCOUNT",
    ),
    (
        "the user id under another namespace",
        lambda s: s.transaction(appAccountToken=str(uuid.uuid5(uuid.NAMESPACE_DNS, "ana"))),
        "PAYMENT_FOR_ANOTHER_ACCOUNT",
    ),
]


@pytest.mark.parametrize(("case", "make", "code"), NOT_BOUND, ids=[n[0] for n in NOT_BOUND])
async def test_a_transaction_not_bought_for_the_presenter_is_refused_and_writes_nothing(
    apple: Buyer,
    store: AppStore,
    sessions: async_sessionmaker[AsyncSession],
    case: str,
    make: Any,
    code: str,
) -> None:
    reply = await apple.buy(make(store), user="ana")

    assert reply == refused(code)
    assert await apple.graphql("query { wallet { coins } }", {}) == {"wallet": {"coins": "0"}}
    assert await rows(sessions, PurchaseRow) == 0
    assert await rows(sessions, JournalEntryRow) == 0


async def test_a_tokenless_transaction_is_taken_where_tokens_are_not_required(
    db_url: URL, root_file: Path, store: AppStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = apple_settings(db_url, root_file, apple_require_account_token=False)

    async with buyer_of(settings, db_url) as apple:
        tokenless = await apple.buy(store.transaction("2000000123456789", buyer=None))
        # Not required is not unchecked: a token, when there is one, must be the presenter's.
        not_bos = await apple.buy(
            store.transaction("2000000000000002", buyer="ana"), key="apple-key-bo-01", user="bo"
        )

    # An app release from before the token: 350 coins for the 5.49 USD paid.
    assert tokenless["purchase"] == granted(tokenless["purchase"]["id"])
    assert tokenless["wallet"] == {
        "coins": "350",
        "coinsValue": {"amount": "5.49", "currency": "USD"},
    }
    assert not_bos == refused("PAYMENT_FOR_ANOTHER_ACCOUNT")
    assert await rows(sessions, PurchaseRow) == 1


async def test_the_user_reads_the_token_that_buys_for_them(
    db_url: URL, root_file: Path, store: AppStore
) -> None:
    namespace = uuid.UUID("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f")
    settings = apple_settings(db_url, root_file, apple_account_token_namespace=namespace)

    async with buyer_of(settings, db_url) as apple:
        ana = (await apple.graphql(TOKEN, {}, user="ana"))["appAccountToken"]
        again = (await apple.graphql(TOKEN, {}, user="ana"))["appAccountToken"]
        bo = (await apple.graphql(TOKEN, {}, user="bo"))["appAccountToken"]
        # The app sets the token it read on the purchase; the transaction buys for Ana.
        bought = await apple.buy(store.transaction(appAccountToken=ana), user="ana")
        # Under the default namespace the token is another: this service refuses it.
        default = await apple.buy(
            store.transaction("2000000000000002", buyer="ana"), key="apple-key-0002"
        )

    # uuid5 of the user id under the configured namespace, the same on every read.
    assert ana == again == str(uuid.uuid5(namespace, "ana"))
    assert bo == str(uuid.uuid5(namespace, "bo")) != ana
    assert bought["purchase"] == granted(bought["purchase"]["id"])
    assert bought["wallet"]["coins"] == "350"
    assert default == refused("PAYMENT_FOR_ANOTHER_ACCOUNT")


# --- App Store Server Notifications V2 -----------------------------------------------------------


async def test_a_signed_refund_takes_the_purchase_back_once(
    apple: Buyer, store: AppStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bought = await apple.buy(store.transaction())
    revoked = store.transaction(revocationDate=millis(datetime.now(UTC)), revocationReason=0)
    signed = store.notification("REFUND", revoked, notification_uuid="refund-0001")

    first = await apple.notify({"signedPayload": signed})
    again = await apple.notify({"signedPayload": signed})
    wallet = await apple.graphql("query { wallet { coins } }", {})

    assert first.status_code == 200 and again.status_code == 200
    assert first.json()["outcome"] == "charged_back"
    assert first.json()["purchaseId"] == pk_of(bought["purchase"]["id"], "Purchase")
    assert again.json() == {**first.json(), "duplicate": True}
    assert wallet == {"wallet": {"coins": "0"}}
    async with sessions() as session:
        event = await session.scalar(select(ProviderEventRow))
    assert event is not None
    assert (event.provider, event.event_id, event.event_type) == ("apple", "refund-0001", "REFUND")
    assert event.payload["data"] == {"transactionId": "2000000123456789", "revocationReason": 0}


def forged_by_another_root(store: AppStore) -> str:
    forger = AppStore()
    return forger.notification("REFUND", forger.transaction(), notification_uuid="forged-1")


def for_another_app(store: AppStore) -> str:
    return store.notification("REFUND", store.transaction(), bundle_id="com.example.other")


FORGED: list[tuple[str, Any, str]] = [
    ("another root", lambda s: {"signedPayload": forged_by_another_root(s)}, "BAD_SIGNATURE"),
    ("another app", lambda s: {"signedPayload": for_another_app(s)}, "BAD_SIGNATURE"),
    (
        "an unsigned REFUND",
        lambda s: {
            "notificationType": "REFUND",
            "notificationUUID": "u-1",
            "data": {"transactionId": "2000000123456789"},
        },
        "MISSING_SIGNATURE",
    ),
    ("a signedPayload that is not one", lambda s: {"signedPayload": "a.b.c"}, "BAD_SIGNATURE"),
]


@pytest.mark.parametrize(("case", "make", "code"), FORGED, ids=[f[0] for f in FORGED])
async def test_a_forged_refund_is_refused(
    apple: Buyer,
    store: AppStore,
    sessions: async_sessionmaker[AsyncSession],
    case: str,
    make: Any,
    code: str,
) -> None:
    await apple.buy(store.transaction())

    response = await apple.notify(make(store))
    wallet = await apple.graphql("query { wallet { coins } }", {})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert wallet == {"wallet": {"coins": "350"}}
    assert await rows(sessions, ProviderEventRow) == 0
