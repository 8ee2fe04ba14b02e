"""A load generator that costs the machine little: HTTP/1.1 keep-alive connections over plain
asyncio streams, GraphQL requests serialised ahead of time (only the bytes that change per
request are filled in), replies parsed only as far as the benchmark needs.

On two cores shared by PostgreSQL, the service and the client, a full-featured client (httpx
spends several hundred microseconds of Python per request) would take CPU from the service
and so lower the figure it is measuring; this one spends a few tens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from types import TracebackType
from typing import Any

from bench.load import NotAcknowledged

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024


class HttpError(Exception):
    """The connection broke, or the reply was not HTTP this client understands."""


def graphql_body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    """A GraphQL request body, compact JSON."""
    payload: dict[str, Any] = {"query": " ".join(query.split())}
    if variables is not None:
        payload["variables"] = variables
    return json.dumps(payload, separators=(",", ":")).encode()


def request_head(host: str, path: str, token: str | None) -> bytes:
    """Everything of a POST request but its Content-Length and body."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        "Accept: application/json",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n").encode()


def post_request(head: bytes, body: bytes) -> bytes:
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


class Connection:
    """One keep-alive connection: one request at a time, each reply read in full."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._reader = self._writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, return the reply's status and body. A connection the server
        closed is opened again once, before anything was sent on it."""
        if self._writer is None or self._writer.is_closing():
            await self.open()
        assert self._reader is not None and self._writer is not None
        self._writer.write(request)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as error:
            await self.close()
            raise HttpError(f"no reply: {type(error).__name__}") from None
        if len(head) > MAX_HEADER_BYTES:
            raise HttpError("reply headers too long")
        status_line, _, header_block = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP reply: {status_line[:80]!r}")
        status = int(parts[1])
        length: int | None = None
        keep_alive = True
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value.strip())
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                raise HttpError("chunked replies are not expected from this service")
            elif lowered == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        if length is None or length > MAX_BODY_BYTES:
            raise HttpError(f"reply without a usable Content-Length ({length})")
        try:
            body = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, OSError) as error:
            await self.close()
            raise HttpError(f"reply cut short: {type(error).__name__}") from None
        if not keep_alive:
            await self.close()
        return status, body


def graphql_data(status: int, body: bytes, field: str) -> dict[str, Any]:
    """The ``data.<field>`` object of a GraphQL reply; raise if the request failed."""
    if status != 200:
        raise NotAcknowledged(f"HTTP {status}: {body[:300]!r}")
    reply = json.loads(body)
    if reply.get("errors"):
        raise NotAcknowledged(f"GraphQL errors: {reply['errors']}")
    found = (reply.get("data") or {}).get(field)
    if not isinstance(found, dict):
        raise NotAcknowledged(f"no {field} in the reply: {body[:300]!r}")
    return found
