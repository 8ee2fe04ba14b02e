"""How another team's integration tests use the Coinbooks test kit: the plugin loads itself once
coinbooks is installed (``pip install coinbooks[testkit]``); each test asks for a ledger of its
own and ends by asserting that the books balance. Nothing here but pytest, pytest-asyncio and
the kit's fixtures."""

import uuid

import pytest

BUY = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { status } wallet { coins } errors { code } }
}
"""
GO_LIVE = (
    "mutation Live($input: StartStreamInput!) { startStream(input: $input) { stream { id } } }"
)
GIFT = """
mutation Gift($input: SendGiftInput!) {
  sendGift(input: $input) { gift { coins diamonds } wallet { coins } errors { code } }
}
"""
WALLET = "query { wallet { coins } }"  # counts of coins are BigInt: strings in JSON


async def buy_350_coins(graphql, user):
    card = {"currency": "USD", "channel": "WEB", "provider": "CARD", "paymentToken": "tok_success"}
    order = {"idempotencyKey": str(uuid.uuid4()), "packageCode": "coins_350", **card}
    reply = await graphql(BUY, {"input": order}, user=user)
    return reply["data"]["purchaseCoins"]


@pytest.mark.asyncio
async def test_a_purchase_fills_the_wallet(coinbooks_graphql, coinbooks_assert_books_balanced):
    bought = await buy_350_coins(coinbooks_graphql, "ana")
    assert bought["errors"] == [] and bought["purchase"]["status"] == "COMPLETED"
    assert bought["wallet"]["coins"] == "350"
    await coinbooks_assert_books_balanced()


@pytest.mark.asyncio
async def test_a_gift_moves_coins_to_the_creator(coinbooks_ledger):
    await buy_350_coins(coinbooks_ledger.graphql, "ana")
    live = await coinbooks_ledger.graphql(
        GO_LIVE, {"input": {"title": "Live!"}}, user="bo", roles=("creator",)
    )
    stream = live["data"]["startStream"]["stream"]["id"]
    roses = {
        "streamId": stream,
        "giftCode": "rose",
        "quantity": 3,
        "idempotencyKey": str(uuid.uuid4()),
    }
    sent = (await coinbooks_ledger.graphql(GIFT, {"input": roses}, user="ana"))["data"]
    # three roses at one coin each: 3 coins leave ana's 350, bo earns 3 diamonds (one per coin)
    assert sent["sendGift"]["errors"] == []
    assert sent["sendGift"]["gift"] == {"coins": "3", "diamonds": "3"}
    assert sent["sendGift"]["wallet"] == {"coins": "347"}
    await coinbooks_ledger.assert_books_balanced()


@pytest.mark.asyncio
async def test_each_test_starts_with_empty_books(coinbooks_graphql, coinbooks_token):
    assert coinbooks_token("ana").count(".") == 2  # a signed JWT: header.claims.signature
    reply = await coinbooks_graphql(WALLET, user="ana")
    assert reply["data"]["wallet"]["coins"] == "0"
