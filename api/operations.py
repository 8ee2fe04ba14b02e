"""Each GraphQL operation observed once it is answered: counted (api/metrics.py) with its name,
outcome and duration, and logged as one line (``graphql operation``: ``operation``,
``operation_type``, ``user_id``, ``roles``, ``duration_ms``, ``outcome``, ``error_codes``; the
request's ``request_id`` with it).

The outcome is ``ok``, or the code of the first error: a GraphQL error's ``extensions.code``
(``GRAPHQL_VALIDATION_FAILED`` for a document that does not parse or validate,
``INTERNAL_ERROR`` for an unexpected failure), else the code of an error a mutation's payload
returns (``errors { code }``, when the client selected it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from api.metrics import Metrics

log = structlog.stdlib.get_logger("coinbooks.graphql")
MAX_LOGGED_NAME = 100


def _code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    return "GRAPHQL_VALIDATION_FAILED" if error.original_error is None else "INTERNAL_ERROR"


def _payload_codes(data: dict[str, Any] | None) -> list[str]:
    codes: list[str] = []
    for payload in (data or {}).values():
        errors = payload.get("errors") if isinstance(payload, dict) else None
        for error in errors if isinstance(errors, list) else []:
            if isinstance(error, dict) and isinstance(error.get("code"), str):
                codes.append(error["code"])
    return codes


def error_codes(result: Any) -> list[str]:
    """The codes of the errors an execution result carries, GraphQL's first."""
    if result is None:
        return []
    return [_code(error) for error in result.errors or []] + _payload_codes(result.data)


def _operation_type(context: ExecutionContext) -> str | None:
    try:
        return context.operation_type.value
    except RuntimeError:  # a document that did not parse, or names no operation it holds
        return None


class ObservedOperation(SchemaExtension):
    """Times the operation from its parse to its answer and reports it to ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        codes: list[str] = []
        try:
            yield
            codes = error_codes(self.execution_context.result)
        except GraphQLError as refused:  # a document that does not parse, or a guard's refusal
            codes = [_code(refused)]
            raise
        except Exception:
            codes = ["INTERNAL_ERROR"]
            raise
        finally:
            self._report(codes, time.perf_counter() - started)

    def _report(self, codes: list[str], duration: float) -> None:
        context = self.execution_context
        operation = self.metrics.operation_label(context.operation_name)
        self.metrics.operation_done(operation, codes, duration)
        principal = getattr(context.context, "principal", None)
        log.info(
            "graphql operation",
            operation=(context.operation_name or "")[:MAX_LOGGED_NAME] or None,
            operation_type=_operation_type(context),
            user_id=principal.user_id if principal else None,
            roles=sorted(str(role) for role in principal.roles) if principal else [],
            duration_ms=round(duration * 1000, 3),
            outcome=codes[0] if codes else "ok",
            error_codes=codes,
        )


def observed(metrics: Metrics) -> Callable[[], SchemaExtension]:
    """The extension's factory, a fresh instance per operation."""
    return lambda: ObservedOperation(metrics)
