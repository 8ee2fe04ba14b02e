"""Each GraphQL operation observed once it is answered: counted (api/metrics.py) with its name,
outcome and duration.

The outcome is ``ok``, or the code of the first error: a GraphQL error's ``extensions.code``
(``GRAPHQL_VALIDATION_FAILED`` for a document that does not parse or validate,
``INTERNAL_ERROR`` for an unexpected failure), else the code of an error a mutation's payload
returns (``errors { code }``, when the client selected it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from api.metrics import Metrics


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


class ObservedOperation(SchemaExtension):
    """Times the operation from its parse to its answer and reports it to ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        duration = time.perf_counter() - started
        context = self.execution_context
        operation = self.metrics.operation_label(context.operation_name)
        self.metrics.operation_done(operation, error_codes(context.result), duration)


def observed(metrics: Metrics) -> Callable[[], SchemaExtension]:
    """The extension's factory, a fresh instance per operation."""
    return lambda: ObservedOperation(metrics)
