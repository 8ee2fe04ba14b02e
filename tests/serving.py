"""The app under a real uvicorn inside the test process, on a free localhost port.

Every test that serves in-process goes through ``served_in_process`` so that it leaves the test
process as it found it:

- uvicorn is given ``log_config=None``, as ``coinbooks serve`` gives it. With its default
  configuration uvicorn installs a handler of its own on ``uvicorn.access`` and stops that
  logger's records from reaching the root logger, for the rest of the process: every later test
  of the logs would then see no access line.
- the test runner's signal handlers are left alone (uvicorn replaces them while it serves and
  raises any signal it caught once it stops).

``tests/conftest.py`` checks the first after every test of the suite.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Literal

import uvicorn
from starlette.applications import Starlette

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class InProcessServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave the test runner's signal handlers alone


@asynccontextmanager
async def served_in_process(
    app: Starlette,
    *,
    lifespan: Literal["on", "off"] = "on",
    log_level: str = "warning",
    wait_seconds: float = 10.0,
) -> AsyncIterator[int]:
    """Serve ``app`` until the block ends; yields the port it listens on."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_config=None,
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )
    server = InProcessServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(wait_seconds):
            while not server.started:
                assert not task.done(), "the server stopped while starting"
                await asyncio.sleep(0.01)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, wait_seconds * 2)
        listener.close()


def uvicorn_logging() -> dict[str, tuple[bool, int]]:
    """Whether each of uvicorn's loggers hands its records on, and how many handlers it has."""
    loggers = {name: logging.getLogger(name) for name in UVICORN_LOGGERS}
    return {name: (logger.propagate, len(logger.handlers)) for name, logger in loggers.items()}
