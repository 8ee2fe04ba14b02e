from accounting.purchases import PurchaseRequest


async def test_purchase_over_service(purchases):
    result = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "key-00000001", "USD", "web", "card", "tok_success", package_code="coins_350"
        )
    )
    assert result.purchase.status == "completed"


async def test_wallet_over_http(gql):
    reply = await gql("{ wallet { coins } }", user="ana")
    assert reply["data"]["wallet"]["coins"] == "0"
