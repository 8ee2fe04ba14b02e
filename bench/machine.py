"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

LIBRARIES = ("sqlalchemy", "asyncpg", "strawberry-graphql", "starlette", "uvicorn", "httpx")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(postgres: dict[str, str], database: str) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgres": postgres.get("server_version", "unknown"),
        "postgres_version": postgres.get("version"),
        "postgres_settings": {
            k: v for k, v in postgres.items() if k not in ("server_version", "version")
        },
        "database": database,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "load_average_at_start": (
            [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
        ),
    }
