"""GraphiQL without the internet: strawberry's GraphiQL page, its scripts and styles served from
this package (``api/static/graphiql``, the npm packages' files at the versions the page names,
each with its licence) instead of a CDN. The files keep the page's subresource integrity."""

from __future__ import annotations

import os
import re
from pathlib import Path

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS = Path(__file__).parent / "static" / "graphiql"
ASSETS_PATH = "/graphiql/static"
CDN = "https://unpkg.com/"
LONG_CACHE = "public, max-age=31536000, immutable"
"""Every file sits under its package's version (``graphiql@3.8.3/...``): a URL never changes."""
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_LOADED = re.compile(r"""\b(?:src|href)\s*=\s*["'](https?://[^"']+)["']""", re.IGNORECASE)


class MissingAsset(RuntimeError):
    """The IDE page loads a file this package does not ship (strawberry's page changed)."""

    def __init__(self, url: str) -> None:
        super().__init__(
            f"GraphiQL's page loads {url}, which is not shipped: add the file from npm "
            f"under {ASSETS} (see docs/operations.md, GraphiQL)"
        )


def offline_page(page: str) -> str:
    """``page`` with each script and style it loads from the CDN taken from ``ASSETS_PATH``
    instead; raises :class:`MissingAsset` for one that is not shipped or not on the CDN."""

    def local(match: re.Match[str]) -> str:
        url = match.group(1)
        asset = url.removeprefix(CDN)
        if asset == url or ".." in asset.split("/") or not (ASSETS / asset).is_file():
            raise MissingAsset(url)
        return match.group(0).replace(url, f"{ASSETS_PATH}/{asset}")

    return _LOADED.sub(local, page)


class _Assets(StaticFiles):
    """The shipped files, cached for a year by browsers and proxies, with explicit types."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = LONG_CACHE
        response.headers["x-content-type-options"] = "nosniff"
        content_type = CONTENT_TYPES.get(Path(full_path).suffix)
        if content_type is not None and "content-type" in response.headers:
            response.headers["content-type"] = content_type
        return response


def asset_routes() -> list[Mount]:
    """The route serving the IDE's scripts and styles under ``ASSETS_PATH``."""
    return [Mount(ASSETS_PATH, app=_Assets(directory=ASSETS), name="graphiql-assets")]
