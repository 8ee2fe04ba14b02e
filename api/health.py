"""The probes of an orchestrator or a test suite: ``GET /livez`` (the process answers) and
``GET /readyz`` (it can serve: the database answers and is migrated to this version's head),
both JSON; ``/readyz`` answers 503 while not ready, and says why in one log line. ``/health``
is ``/readyz`` under its earlier name."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.database import current_revision, head_revision

log = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 5.0
"""How long /readyz waits for the database before it calls it unreachable."""


async def readiness(engine: AsyncEngine) -> tuple[bool, dict[str, Any]]:
    """Whether the service can serve, and what it found."""
    head = head_revision()
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS), engine.connect() as connection:
            current = await current_revision(connection)
    except Exception as error:  # whatever keeps it from the database, it is not ready
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        log.warning("not ready: the database cannot be reached: %s", reason)
        return False, {"database": "unreachable", "migration": {"current": None, "head": head}}
    found = {"database": "reachable", "migration": {"current": current, "head": head}}
    if current != head:
        log.warning("not ready: the database is at migration %s, the head is %s", current, head)
        return False, found
    return True, found


class ReplicaStates(Protocol):
    def detail(self) -> list[dict[str, Any]]: ...


def health_routes(engine: AsyncEngine, replicas: ReplicaStates | None = None) -> list[Route]:
    """The probes; with read replicas, /readyz lists each one's state and lag (a replica down
    does not make the service unready: the primary answers its reads)."""

    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "live"})

    async def readyz(request: Request) -> JSONResponse:
        ready, found = await readiness(engine)
        status = "ready" if ready else "not ready"
        if replicas is not None:
            found["replicas"] = replicas.detail()
        return JSONResponse({"status": status, **found}, status_code=200 if ready else 503)

    return [
        Route("/livez", livez, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/health", readyz, methods=["GET", "HEAD"]),
    ]
