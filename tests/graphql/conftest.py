"""What the GraphQL-layer tests share: the service's log lines, as production renders them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from api.logs import handler


class Lines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line["event"] == event]

    def of_logger(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line["logger"] == name]


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    """What the service writes, as the JSON handler of production renders it."""
    stream = io.StringIO()
    writer = handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(writer)
    root.setLevel(logging.INFO)
    try:
        yield Lines(stream)
    finally:
        root.removeHandler(writer)
        root.setLevel(level)
