"""GET /metrics over HTTP, read with Prometheus's own parser: after a purchase, a gift, a
declined purchase and a refused webhook, each counter carries the right labels and values."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import URL

from api.app import create_app
from api.settings import Settings
from tests.chargebacks.deliveries import deliver
from tests.conftest import GraphQLClient
from tests.gifts.streaming import buy_coins, send_gift, start_stream
from tests.graphql.test_graphql_refunds import buy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_operations_gifts_and_webhooks_are_counted_with_their_labels(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    await buy_coins(gql, "ana")  # PurchaseCoins, ok
    stream_id = await start_stream(gql, "bo")  # StartStream, ok
    assert (await send_gift(gql, stream_id, "rose", 2))["errors"] == []  # SendGift, ok
    await buy(gql, "ana", paymentToken="tok_declined")  # Buy: a payload error
    await gql("query { wallet { coins } }")  # anonymous, signed out: UNAUTHENTICATED
    refused = await deliver(client, "card", {"id": "evt_1"}, signature="t=1,v1=00")
    assert refused.status_code == 401
    unknown = await deliver(client, "bitcoin", {"id": "evt_2"})
    assert unknown.status_code == 404

    samples = await scrape(client)

    requests = "coinbooks_graphql_requests_total"
    assert value(samples, requests, operation="PurchaseCoins", outcome="ok") == 1
    assert value(samples, requests, operation="StartStream", outcome="ok") == 1
    assert value(samples, requests, operation="SendGift", outcome="ok") == 1
    assert value(samples, requests, operation="Buy", outcome="PAYMENT_DECLINED") == 1
    assert value(samples, requests, operation="anonymous", outcome="UNAUTHENTICATED") == 1
    errors = "coinbooks_graphql_errors_total"
    assert value(samples, errors, operation="Buy", code="PAYMENT_DECLINED") == 1
    assert value(samples, errors, operation="anonymous", code="UNAUTHENTICATED") == 1
    assert value(samples, errors, operation="SendGift", code="PAYMENT_DECLINED") == 0
    latency = "coinbooks_graphql_request_duration_seconds"
    assert value(samples, f"{latency}_count", operation="SendGift") == 1
    assert value(samples, f"{latency}_bucket", operation="SendGift", le="+Inf") == 1
    # one gift, written alone: one batch of one
    assert value(samples, "coinbooks_gift_batch_size_count") == 1
    assert value(samples, "coinbooks_gift_batch_size_sum") == 1
    assert value(samples, "coinbooks_gift_batch_size_bucket", le="1.0") == 1
    assert value(samples, "coinbooks_gift_queue_depth") == 0
    deliveries = "coinbooks_webhook_deliveries_total"
    assert value(samples, deliveries, provider="card", outcome="BAD_SIGNATURE") == 1
    assert value(samples, deliveries, provider="unknown", outcome="UNKNOWN_PROVIDER") == 1
    assert ("coinbooks_db_pool_size", frozenset()) in samples
    assert value(samples, "coinbooks_db_pool_checked_out") == 0  # every request returned its own
    retries = "coinbooks_db_transaction_retries_total"
    assert (retries, frozenset({("reason", "deadlock")})) in samples
    assert (retries, frozenset({("reason", "serialization_failure")})) in samples


async def test_operation_names_beyond_the_limit_count_as_other(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    metrics = client._transport.app.state.metrics  # type: ignore[attr-defined]
    metrics._names.update(f"Name{n}" for n in range(200))

    await gql("query Fresh { wallet { coins } }", user="ana")
    await gql("query Name7 { wallet { coins } }", user="ana")

    samples = await scrape(client)
    requests = "coinbooks_graphql_requests_total"
    assert value(samples, requests, operation="other", outcome="ok") == 1
    assert value(samples, requests, operation="Name7", outcome="ok") == 1
    assert value(samples, requests, operation="Fresh", outcome="ok") == 0


SCRAPE_TOKEN = "scrape-" + "k" * 33
"""A metrics token of 40 characters."""


@pytest.fixture
async def guarded(settings: Settings, db_url: URL) -> AsyncIterator[httpx.AsyncClient]:
    """The app with ``COINBOOKS_METRICS_TOKEN`` set."""
    app = create_app(settings.model_copy(update={"metrics_token": SCRAPE_TOKEN}), db_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield http
    await app.state.engine.dispose()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {SCRAPE_TOKEN}", f"Bearer {SCRAPE_TOKEN}x", "Bearer"],
    ids=["none", "wrong", "not-bearer", "longer", "empty"],
)
async def test_with_a_metrics_token_a_scrape_without_it_is_refused(
    guarded: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await guarded.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "coinbooks_" not in response.text


async def test_with_a_metrics_token_a_scrape_bearing_it_is_answered(
    guarded: httpx.AsyncClient,
) -> None:
    response = await guarded.get("/metrics", headers={"Authorization": f"bearer {SCRAPE_TOKEN}"})

    assert response.status_code == 200
    assert "coinbooks_db_pool_size" in response.text


async def test_without_a_metrics_token_anyone_who_reaches_it_scrapes(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/metrics")).status_code == 200
