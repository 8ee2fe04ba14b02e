"""Wallet balance reads over HTTP: the GraphQL ``wallet`` query (the balance now, or as of a past
instant), each connection a closed loop over the reader wallets (each request with that
reader's own bearer token), by the low-cost client of bench/rawhttp.py. Every reply's coins are
kept, to be checked against the books."""

from __future__ import annotations

import asyncio
from datetime import datetime
from urllib.parse import urlsplit

from accounting.policy.access import Role
from api.auth import issue_token
from api.settings import Settings
from bench.load import LoadResult, NotAcknowledged, drive
from bench.over_http import ServiceProcess
from bench.rawhttp import Connection, graphql_body, graphql_data, post_request, request_head

WALLET = """
query Wallet {
  wallet { userId coins coinsValue { amount currency } }
}
"""
WALLET_AS_OF = """
query WalletAsOf($asOf: DateTime!) {
  wallet(asOf: $asOf) { userId coins coinsValue { amount currency } asOf }
}
"""


async def drive_wallet_reads(
    service: ServiceProcess,
    settings: Settings,
    readers: list[str],
    *,
    clients: int,
    seconds: float,
    warmup: float,
    seen: dict[str, int],
    as_of: datetime | None = None,
) -> LoadResult:
    """``clients`` connections read wallets for ``seconds`` (their balance now, or as of
    ``as_of``); connection ``i`` reads reader ``(i + sequence) % len(readers)`` in turn.
    ``seen`` collects each reader's coins as the replies gave them (a reply that disagrees with
    an earlier one is an error)."""
    host = urlsplit(service.base_url)
    assert host.hostname is not None and host.port is not None
    body = (
        graphql_body(WALLET)
        if as_of is None
        else graphql_body(WALLET_AS_OF, {"asOf": as_of.isoformat()})
    )
    requests = [
        post_request(
            request_head(
                f"{host.hostname}:{host.port}",
                "/graphql",
                issue_token(settings, reader, [Role("viewer")]),
            ),
            body,
        )
        for reader in readers
    ]
    connections = [Connection(host.hostname, host.port) for _ in range(clients)]
    await asyncio.gather(*(connection.open() for connection in connections))

    async def attempt(client: int, sequence: int) -> None:
        reader = (client + sequence) % len(readers)
        status, reply = await connections[client].exchange(requests[reader])
        wallet = graphql_data(status, reply, "wallet")
        coins = int(wallet["coins"])
        if wallet.get("userId") != readers[reader]:
            raise NotAcknowledged(f"asked for {readers[reader]}'s wallet, got {wallet}")
        if seen.setdefault(readers[reader], coins) != coins:
            raise NotAcknowledged(
                f"{readers[reader]} read {coins} coins, earlier {seen[readers[reader]]}"
            )

    try:
        return await drive(clients, seconds, warmup, attempt)
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
