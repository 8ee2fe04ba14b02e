"""The GraphQL surface. Resolvers translate and delegate to ``accounting``; no business rules."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import strawberry
from graphql import GraphQLError, MaxIntrospectionDepthRule
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from accounting.ledger.errors import LedgerError
from schema.admin import AdminMutations
from schema.breakage import BreakageMutations
from schema.chargebacks import ChargebackMutations, ChargebackQueries
from schema.close import CloseMutations, CloseQueries
from schema.corrections import CorrectionMutations, CorrectionQueries
from schema.earnings import EarningsQueries
from schema.finance import FinanceQueries
from schema.financials import FinancialQueries
from schema.gifts import GiftMutations, GiftQueries
from schema.inputs import CleanInputStrings
from schema.journal import JournalQueries
from schema.limits import QueryCost, depth_limit, hide_suggestions
from schema.live import Subscription, SubscriptionsOverWebSocket
from schema.node_queries import NodeQueries
from schema.packages import PackageQueries
from schema.payouts import PayoutMutations, PayoutQueries
from schema.purchases import PurchaseMutations, PurchaseQueries
from schema.scalars import BIG_INT_SCALAR, DAY_SCALAR, INSTANT_SCALAR, BigInt
from schema.settlement import SettlementMutations, SettlementQueries
from schema.statements import StatementQueries
from schema.store_purchases import StorePurchaseMutations, StorePurchaseQueries
from schema.streams import StreamMutations, StreamQueries
from schema.wallet import WalletQueries

log = logging.getLogger("coinbooks.graphql")

SDL_PATH = Path(__file__).parent / "schema.graphql"

Query = merge_types(
    "Query",
    (
        NodeQueries,
        PackageQueries,
        WalletQueries,
        PurchaseQueries,
        StorePurchaseQueries,
        FinanceQueries,
        FinancialQueries,
        StreamQueries,
        GiftQueries,
        EarningsQueries,
        PayoutQueries,
        ChargebackQueries,
        CorrectionQueries,
        SettlementQueries,
        CloseQueries,
        JournalQueries,
        StatementQueries,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        PurchaseMutations,
        StorePurchaseMutations,
        StreamMutations,
        GiftMutations,
        AdminMutations,
        PayoutMutations,
        CorrectionMutations,
        SettlementMutations,
        CloseMutations,
        BreakageMutations,
        ChargebackMutations,
    ),
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 10
    max_tokens: int = 2000
    max_aliases: int = 15
    max_cost: int = 1000
    cache_size: int = 1024


def _is_unexpected(error: GraphQLError) -> bool:
    """Mask errors the caller did not cause: anything raised that is not a client error.

    A ``GraphQLError`` as the original is one GraphQL itself raised for the caller (a variable
    of the wrong type, a scalar it could not parse): shown as is, like a ``ClientError``."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | LedgerError)


class MaskUnexpectedErrors(MaskErrors):
    """Replaces unexpected errors with a message carrying the request id, and logs the error
    with its stack trace under that id, so support can find it."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", "unknown")
        log.error(
            "unexpected error in request %s at %s",
            request_id,
            error.path,
            exc_info=error.original_error,
        )
        return GraphQLError(
            message=f"Unexpected error. Request id: {request_id}",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_ERROR", "requestId": request_id},
        )


class CoinbooksSchema(strawberry.Schema):
    hides_suggestions = False
    """Production's: no "Did you mean ...?" in any message (schema/limits.py)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log nothing more here. Errors the caller caused (refused tokens, bad input, business
        failures) are the caller's to read, not the log's; unexpected ones were logged with
        their stack trace and request id by :class:`MaskUnexpectedErrors` when masked. Every
        error of a response passes here, so this is where production hides suggestions."""
        if self.hides_suggestions:
            hide_suggestions(errors)


def build_schema(
    *, production: bool = False, limits: Limits | None = None, caches: bool = True
) -> strawberry.Schema:
    """The schema with its guards: token, depth (introspection's too), alias and cost limits
    (schema/limits.py), parser and validation caches, masked unexpected errors, and in
    production no introspection and no suggestions.

    Extensions are given as factories (a fresh instance per request). The validation rules are
    built once, so the validation cache, keyed by them, hits across requests.
    """
    limits = limits or Limits()
    rules = [
        depth_limit(limits.max_depth),
        MaxIntrospectionDepthRule,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: AddValidationRules(rules),
        lambda: QueryCost(limit=limits.max_cost),
        MaskUnexpectedErrors,
        CleanInputStrings,
        SubscriptionsOverWebSocket,
    ]
    if caches:
        extensions[1:1] = [lambda: ParserCache(maxsize=limits.cache_size)]
        extensions.append(lambda: ValidationCache(maxsize=limits.cache_size))
    if production:
        extensions.append(DisableIntrospection)
    schema = CoinbooksSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(
            scalar_map={BigInt: BIG_INT_SCALAR, datetime: INSTANT_SCALAR, date: DAY_SCALAR}
        ),
    )
    schema.hides_suggestions = production
    return schema


def sdl() -> str:
    return build_schema().as_str() + "\n"
