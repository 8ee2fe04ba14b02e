"""Purchases through GraphQL over HTTP: the real service started as a subprocess (uvicorn with
the app factory), driven with ``purchaseCoins`` mutations from concurrent connections."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy.engine import URL

from accounting.policy.access import Role
from api.auth import issue_token
from api.local_postgres import LocalProcess
from api.settings import Settings
from bench.limits import service_environment
from bench.load import LoadResult, NotAcknowledged, drive

MUTATION = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) {
    purchase { id status }
    wallet { coins }
    replayed
    errors { code message }
  }
}
"""

STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 120.0
"""Generous: a request the client gave up on might still be posted, and would then show up as
a purchase in the books that nobody was told about."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _peak_rss_bytes(pid: int) -> int | None:
    """The kernel's high-water mark of the process's resident set (Linux), if it says."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds spent while a load ran: by the service, and by the benchmark's process (the
    load generator)."""

    service_seconds: float
    client_seconds: float
    wall_seconds: float


@dataclass(slots=True)
class ServiceMemory:
    idle_rss: int = 0
    """Resident set once the service answers /health, before any load."""
    peak_rss: int = 0
    """The highest resident set seen: the kernel's high-water mark, or the sampled maximum."""


class ServiceProcess(LocalProcess):
    """``python -m uvicorn api.app:app_from_environment --factory`` with ``DATABASE_URL`` set,
    and the benchmark's limits (bench/limits.py), on a free local port; its output goes to
    ``log_path``."""

    def __init__(self, database_url: URL, log_path: Path) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.memory = ServiceMemory()
        self._process: subprocess.Popen[bytes] | None = None
        self._processes: list[Any] | None = None
        self._log: Any = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        env = dict(os.environ)
        env["DATABASE_URL"] = self.database_url.render_as_string(hide_password=False)
        env.update(service_environment())
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:app_from_environment",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)  # bench/results/ is not in git
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def processes(self) -> list[Any]:
        """The service's process and its children (worker processes), as ``psutil`` sees them:
        looked up once the service answers (finding children scans every process on the
        machine, too costly to repeat ten times a second while the load runs)."""
        if self._processes is None:
            try:
                process = psutil.Process(self.pid)
                self._processes = [process, *process.children(recursive=True)]
            except psutil.Error:
                return []
        return self._processes

    def rss(self) -> int:
        """Resident set of the service and any children (worker processes)."""
        total = 0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the service and its children have used so far."""
        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def note_memory(self) -> None:
        self.memory.peak_rss = max(self.memory.peak_rss, self.rss())

    def note_peak(self) -> None:
        """Take the kernel's high-water mark while the process is still alive."""
        peak = _peak_rss_bytes(self.pid)
        if peak is not None:
            self.memory.peak_rss = max(self.memory.peak_rss, peak)

    async def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"the service exited with {self._process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    response = await client.get("/health")
                    if response.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"no answer on /health in {STARTUP_TIMEOUT:.0f} s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.2)
        self.memory.idle_rss = self.rss()
        self.memory.peak_rss = self.memory.idle_rss

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
            self._processes = None
        if self._log is not None:
            self._log.close()
            self._log = None


async def _sample_memory(service: ServiceProcess, stop: asyncio.Event) -> None:
    while not stop.is_set():
        service.note_memory()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.1)


@contextlib.asynccontextmanager
async def sample_memory(service: ServiceProcess) -> AsyncIterator[None]:
    """Sample the service's resident set every 0.1 s inside the block; at its end, take the
    kernel's high-water mark too."""
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_memory(service, stop))
    try:
        yield
    finally:
        stop.set()
        await sampler
        service.note_peak()


def purchase_variables(idempotency_key: str) -> dict[str, Any]:
    return {
        "input": {
            "idempotencyKey": idempotency_key,
            "currency": "USD",
            "channel": "WEB",
            "provider": "CARD",
            "paymentToken": "tok_success",
            "packageCode": "coins_350",
        }
    }


def acknowledged(body: dict[str, Any]) -> None:
    """Raise unless the reply says a new purchase completed."""
    if body.get("errors"):
        raise NotAcknowledged(f"GraphQL errors: {body['errors']}")
    payload = (body.get("data") or {}).get("purchaseCoins") or {}
    purchase = payload.get("purchase") or {}
    if payload.get("errors") or payload.get("replayed") or purchase.get("status") != "COMPLETED":
        raise NotAcknowledged(f"not a completed purchase: {payload}")


async def drive_http(
    service: ServiceProcess,
    settings: Settings,
    *,
    clients: int,
    seconds: float,
    warmup: float,
) -> LoadResult:
    """``clients`` connections, each with a user (and bearer token) of its own, post
    ``purchaseCoins`` one after another; the service's memory is sampled meanwhile."""
    run = uuid.uuid4().hex[:8]
    tokens = [issue_token(settings, f"http-{run}-{i}", [Role("viewer")]) for i in range(clients)]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=service.base_url, limits=limits, timeout=REQUEST_TIMEOUT
    ) as client:

        async def attempt(index: int, sequence: int) -> None:
            response = await client.post(
                "/graphql",
                json={"query": MUTATION, "variables": purchase_variables(uuid.uuid4().hex)},
                headers={"Authorization": f"Bearer {tokens[index]}"},
            )
            if response.status_code != 200:
                raise NotAcknowledged(f"HTTP {response.status_code}: {response.text[:300]}")
            acknowledged(response.json())

        async with sample_memory(service):
            return await drive(clients, seconds, warmup, attempt)
