"""How ``coinbooks serve`` listens: the address bound before anything starts, and, once the
application has started, the address written to a ready file for test suites in any language
(``coinbooks serve --port 0 --ready-file PATH``)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
from pathlib import Path

import uvicorn

_uvicorn_log = logging.getLogger("uvicorn.error")


def bind_quietly(config: uvicorn.Config) -> socket.socket:
    """The configured address, bound (a taken one ends the start here, with uvicorn's reason),
    without uvicorn's "running on" line: nothing serves on it yet."""
    level = _uvicorn_log.level
    _uvicorn_log.setLevel(max(level, logging.WARNING))
    try:
        return config.bind_socket()
    finally:
        _uvicorn_log.setLevel(level)


def address_of(listening: socket.socket) -> str:
    """``http://host:port`` of a bound socket (the port the system chose for port 0)."""
    host, port = listening.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def write_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` whole or does not exist: written beside it, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class ReadyServer(uvicorn.Server):
    """uvicorn's server that says where it listens once the application's startup completed
    and it accepts connections: in the log and, when given, in ``ready_file`` (removed again
    when it stops)."""

    def __init__(self, config: uvicorn.Config, ready_file: Path | None) -> None:
        super().__init__(config)
        self.ready_file = ready_file

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # a failed application startup exits in there
        if not sockets:
            return
        address = address_of(sockets[0])
        _uvicorn_log.info("Uvicorn running on %s (Press CTRL+C to quit)", address)
        if self.ready_file is not None:
            write_atomically(self.ready_file, address + "\n")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.ready_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.ready_file.unlink()
        await super().shutdown(sockets)
