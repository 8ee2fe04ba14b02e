"""The embedded PostgreSQL stops with the service: ``coinbooks serve`` on an embedded server is
started as an operator would, stopped with SIGTERM, and afterwards no PostgreSQL of its data
directory runs. A service killed outright (SIGKILL) cannot stop anything; the next one takes the
still-running server over and stops it when it exits itself."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from api.settings import Settings

COINBOOKS = str(Path(sys.executable).parent / "coinbooks")
ROOT = Path(__file__).parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _postgres_of(pgdata: Path) -> list[psutil.Process]:
    """The running postgres processes of that data directory."""
    found = []
    for process in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata) in " ".join(cmdline):
            found.append(process)
    return found


class Service:
    """``coinbooks serve`` in a folder of its own, its data in ``data_dir``."""

    def __init__(self, data_dir: Path, *options: str) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("COINBOOKS_")}
        environment.pop("DATABASE_URL", None)
        self.port = _free_port()
        environment.update(COINBOOKS_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            [COINBOOKS, "serve", "--port", str(self.port), *options],
            cwd=data_dir.parent,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_until_serving(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the service exited while starting"
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{self.port}/graphql",
                    json={"query": "{ __typename }"},
                    timeout=2,
                )
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise AssertionError("the service did not start serving in time")

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(os.environ.get("DATABASE_URL")),
        reason="about the embedded server, which the run without DATABASE_URL covers",
    ),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data directory for the module (one initdb); each test ends with no server running."""
    folder = tmp_path_factory.mktemp("service")
    folder.chmod(0o755)  # the embedded server runs as its own user when started by root
    data = folder / "data"
    yield data
    for process in _postgres_of(data / "pgdata"):  # whatever a failing test left behind
        process.kill()


def _gone(pgdata: Path, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while _postgres_of(pgdata) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _postgres_of(pgdata)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_service_and_its_embedded_postgres(
    data_dir: Path, sig: signal.Signals
) -> None:
    service = Service(data_dir)
    service.wait_until_serving()
    assert _postgres_of(data_dir / "pgdata"), "the embedded server should be running"

    service.stop(sig)

    assert _gone(data_dir / "pgdata")


def test_a_service_killed_outright_leaves_a_server_the_next_one_stops(data_dir: Path) -> None:
    killed = Service(data_dir)
    killed.wait_until_serving()
    killed.stop(signal.SIGKILL)
    assert _postgres_of(data_dir / "pgdata"), "nothing could stop it: the server still runs"

    service = Service(data_dir)
    service.wait_until_serving()
    service.stop(signal.SIGTERM)

    assert _gone(data_dir / "pgdata")


def test_a_ready_file_names_the_address_once_it_serves(data_dir: Path, tmp_path: Path) -> None:
    """What a test suite in any language does: start on a port the system chooses, wait for
    the file, talk GraphQL at the address in it, stop the service; nothing of it runs on."""
    ready = tmp_path / "run" / "coinbooks.address"
    service = Service(data_dir, "--port", "0", "--ready-file", str(ready))
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert service.process.poll() is None, "the service exited while starting"
        assert time.monotonic() < deadline, "no ready file in time"
        time.sleep(0.1)
    address = ready.read_text()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", address)
    answer = httpx.post(f"{address.strip()}/graphql", json={"query": "{ __typename }"}, timeout=5)
    assert answer.json()["data"] == {"__typename": "Query"}
    assert _postgres_of(data_dir / "pgdata"), "the embedded server should be running"

    service.stop(signal.SIGTERM)

    assert _gone(data_dir / "pgdata")
    assert not ready.exists(), "a stopped service leaves no address behind"
    assert not list(ready.parent.iterdir()), "nor a half-written file"


def test_a_taken_address_ends_the_start_before_any_banner(tmp_path: Path) -> None:
    """Another server holds the port: the service says so and exits, printing no address it
    does not serve, and starts no database."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("COINBOOKS_")}
        environment.update(COINBOOKS_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
        started = subprocess.run(
            [COINBOOKS, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert started.returncode != 0
    assert "GraphQL at" not in started.stdout
    assert "address already in use" in started.stderr.lower()
    assert not (tmp_path / "data" / "pgdata").exists()


def test_the_data_directory_is_absolute_and_the_same_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``coinbooks check`` run from another folder uses the same embedded data as ``make run``
    (the checkout's ``.coinbooks``); a relative ``COINBOOKS_DATA_DIR`` is taken from the folder
    the command starts in, and kept absolute."""
    monkeypatch.delenv("COINBOOKS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings(_env_file=None).data_dir == ROOT / ".coinbooks"  # type: ignore[call-arg]

    monkeypatch.setenv("COINBOOKS_DATA_DIR", "elsewhere")
    assert Settings(_env_file=None).data_dir == tmp_path / "elsewhere"  # type: ignore[call-arg]


def test_a_command_on_the_embedded_server_says_nothing_but_its_own(data_dir: Path) -> None:
    """Without XDG_RUNTIME_DIR (a container, a CI job, a root shell) the embedded server's
    socket folder falls back to /tmp/runtime-<uid>: ``coinbooks migrate`` warns of nothing,
    ``coinbooks check --json`` prints its JSON and nothing on standard error, and each stops the
    server it started."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COINBOOKS_")}
    for name in ("DATABASE_URL", "XDG_RUNTIME_DIR", "PYTHONWARNINGS"):
        environment.pop(name, None)
    environment.update(COINBOOKS_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COINBOOKS, *command],
            cwd=data_dir.parent,
            env=environment,
            capture_output=True,
            text=True,
            timeout=180,
        )

    migrated = run("migrate")
    checked = run("check", "--json")

    assert (migrated.returncode, checked.returncode) == (0, 0), migrated.stderr + checked.stderr
    assert "Warning" not in migrated.stdout + migrated.stderr
    assert checked.stderr == ""
    assert json.loads(checked.stdout)["ok"] is True
    assert _gone(data_dir / "pgdata")
