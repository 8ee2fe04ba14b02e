"""GraphiQL works without the internet: its page names only scripts and styles the service
serves itself (from api/static/graphiql), with long cache lifetimes and their content types,
and a real headless Chromium whose every request beyond the service fails renders the editor.
Production serves neither the page nor its assets (tests/graphql/test_graphql_security.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from api.graphiql import MissingAsset, offline_page

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)
COINBOOKS = str(Path(sys.executable).parent / "coinbooks")
LOADS_FROM_ELSEWHERE = re.compile(
    r"""(?:\bsrc\s*[=:]\s*|\bimport\s*\(\s*|\bimportScripts\s*\(\s*|"""
    r"""@import\s+(?:url\()?\s*|\burl\(\s*)["'`]?https?://""",
    re.IGNORECASE,
)


class _Assets(HTMLParser):
    """The ``<script src>`` and ``<link href>`` of a page, with their ``integrity`` (but the
    icon, a ``data:`` URL drawn by the page itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        url = attributes.get("src") if tag == "script" else attributes.get("href")
        if tag in ("script", "link") and url and not url.startswith("data:"):
            self.found.append((url, attributes.get("integrity")))


def _assets_of(page: str) -> list[tuple[str, str | None]]:
    parser = _Assets()
    parser.feed(page)
    return parser.found


def _sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


async def test_the_page_loads_its_scripts_and_styles_from_the_service_alone(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assets = _assets_of(page.text)

    assert page.status_code == 200
    assert "https://unpkg.com" not in page.text
    assert not LOADS_FROM_ELSEWHERE.search(page.text)
    assert {url.rsplit("/", 1)[-1] for url, _ in assets} == {
        "react.production.min.js",
        "react-dom.production.min.js",
        "js.cookie.min.js",
        "graphiql.min.css",
        "style.css",
        "graphiql.min.js",
        "index.umd.js",
    }
    for url, integrity in assets:
        assert url.startswith("/graphiql/static/"), url
        served = await client.get(url)
        assert served.status_code == 200, url
        assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert served.headers["content-type"] == f"{kind}; charset=utf-8", url
        assert integrity == _sri(served.content), f"{url} is not the file the page was built for"
        assert not LOADS_FROM_ELSEWHERE.search(served.text), f"{url} loads from another origin"


def test_a_page_naming_a_file_not_shipped_is_refused() -> None:
    """What an upgrade of strawberry naming newer versions meets: a refusal naming the file,
    not a page that stays at "Loading..." without the internet."""
    page = '<script src="https://unpkg.com/react@19.0.0/umd/react.production.min.js"></script>'

    with pytest.raises(MissingAsset, match=r"loads https://unpkg\.com/react@19\.0\.0/umd/"):
        offline_page(page)
    with pytest.raises(MissingAsset, match=r"https://cdn\.example/graphiql\.js"):
        offline_page('<script src="https://cdn.example/graphiql.js"></script>')


async def test_every_shipped_asset_keeps_its_licence() -> None:
    shipped = Path(__file__).parents[1] / "api" / "static" / "graphiql"
    packages = {path.parent for path in shipped.rglob("package.json")}

    assert len(packages) == 5
    for package in packages:
        assert (package / "LICENSE").read_text().startswith("MIT License"), package


# --- in a browser without the internet ----------------------------------------------------------


@pytest.fixture
def no_internet() -> Iterator[int]:
    """A port that refuses connections: Chromium's proxy for everything but loopback."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yield closed.getsockname()[1]


@pytest.fixture
def service(db_url: URL, tmp_path: Path) -> Iterator[str]:
    """``coinbooks serve`` in development on the test's database; yields its address."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COINBOOKS_")}
    environment["DATABASE_URL"] = db_url.render_as_string(hide_password=False)
    ready = tmp_path / "coinbooks.address"
    process = subprocess.Popen(
        [COINBOOKS, "serve", "--port", "0", "--ready-file", str(ready)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, "the service exited while starting"
            assert time.monotonic() < deadline, "no ready file in time"
            time.sleep(0.1)
        yield ready.read_text().strip()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _rendered(chromium: str, url: str, proxy_port: int, folder: Path) -> str:
    """The page's DOM once its scripts ran (15 s of the page's virtual time); the browser's
    network log is left in ``folder / "net.json"``."""
    shown = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={folder / 'profile'}",
            f"--proxy-server=http://127.0.0.1:{proxy_port}",
            f"--log-net-log={folder / 'net.json'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return shown.stdout


def _requested_by(origin: str, net_log: Path) -> set[str]:
    """The URLs a page of ``origin`` asked for, from Chromium's network log (the browser's own
    requests, for updates and the like, name no initiator)."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start and event.get("params", {}).get("initiator") == origin
    }


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)"
)
def test_graphiql_renders_in_a_browser_without_the_internet(
    service: str, no_internet: int, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    dom = _rendered(CHROMIUM, f"{service}/graphql", no_internet, tmp_path)
    requested = _requested_by(service, tmp_path / "net.json")

    assert "Loading..." not in dom
    assert 'class="graphiql-container"' in dom
    assert "graphiql-query-editor" in dom
    assert 'class="CodeMirror' in dom
    assert "Welcome to GraphiQL" in dom, "the query editor shows its example"
    assert f"{service}/graphiql/static/graphiql@3.8.3/graphiql.min.js" in requested
    assert {url for url in requested if not url.startswith(f"{service}/")} == set()
