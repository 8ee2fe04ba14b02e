"""What one GraphQL request may ask for, besides its tokens and aliases (strawberry's limiters):

- its depth, introspection included (:func:`depth_limit`);
- its cost (:class:`QueryCost`): every object costs 1 and what is selected in it; a list holds
  ``first`` objects under a page (a field taking ``first``: a connection's ``edges``, a
  leaderboard), as many as the ids a field taking ``ids`` names (``nodes``), one elsewhere;
  a mutation costs 10 more. Over the limit nothing runs; every response reports the cost in
  ``extensions``;
- in production, no "Did you mean ...?" in any message (:func:`hide_suggestions`), so that
  misspelt names do not spell out the schema introspection would not show.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DefinitionNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_list_type,
    value_from_ast_untyped,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
STANDARD_INTROSPECTION_DEPTH = 14
"""The depth of the standard introspection query (GraphiQL's, code generators'): its deepest
field is the ``kind`` in the ninth ``ofType`` of a field's argument's type. Introspection is
held to the depth limit, but never below this, so that development tools keep working."""

PAGE_ARGUMENT = "first"
IDS_ARGUMENT = "ids"
MUTATION_COST = 10
QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
_SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")


def _fragments(definitions: Sequence[DefinitionNode]) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}


# --- depth ----------------------------------------------------------------------------------------


@dataclass
class _Depth:
    """Finds the first limit a selection passes: ``max_depth``, or under ``__schema`` and
    ``__type`` the introspection limit. Root fields are at depth 0; the walk stops below the
    limit, and each fragment is walked once per depth, however often it is spread."""

    fragments: dict[str, FragmentDefinitionNode]
    introspection_depth: int
    seen: dict[tuple[str, int, int], int | None] = field(default_factory=dict)

    def exceeded(
        self, selections: Sequence[SelectionNode], depth: int, limit: int, path: frozenset[str]
    ) -> int | None:
        for node in selections:
            found = self._node(node, depth, limit, path)
            if found is not None:
                return found
        return None

    def _node(
        self, node: SelectionNode, depth: int, limit: int, path: frozenset[str]
    ) -> int | None:
        if isinstance(node, FieldNode):
            if depth > limit:
                return limit
            if node.selection_set is None:
                return None
            if node.name.value in INTROSPECTION_ROOTS:
                limit = max(limit, self.introspection_depth)
            return self.exceeded(node.selection_set.selections, depth + 1, limit, path)
        if isinstance(node, InlineFragmentNode):
            return self.exceeded(node.selection_set.selections, depth, limit, path)
        assert isinstance(node, FragmentSpreadNode)
        name = node.name.value
        if name in path or name not in self.fragments:
            return None  # a cycle or an unknown fragment: other rules refuse the document
        key = (name, depth, limit)
        if key not in self.seen:
            selections = self.fragments[name].selection_set.selections
            self.seen[key] = self.exceeded(selections, depth, limit, path | {name})
        return self.seen[key]


def depth_limit(max_depth: int) -> type[ValidationRule]:
    """A validation rule refusing an operation with a field deeper than ``max_depth`` (root
    fields are at 0), introspection's fields included (held to ``max(max_depth, 14)``)."""

    class DepthLimit(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            depth = _Depth(_fragments(node.definitions), STANDARD_INTROSPECTION_DEPTH)
            for operation in node.definitions:
                if not isinstance(operation, OperationDefinitionNode):
                    continue
                limit = depth.exceeded(
                    operation.selection_set.selections, 0, max_depth, frozenset()
                )
                if limit is not None:
                    name = operation.name.value if operation.name else "anonymous"
                    kind = "operation" if limit == max_depth else "introspection"
                    self.report_error(
                        GraphQLError(f"'{name}' exceeds maximum {kind} depth of {limit}", operation)
                    )

    return DepthLimit


# --- cost -----------------------------------------------------------------------------------------


@dataclass
class _Cost:
    """The cost of one operation: see the module's docstring and docs/graphql.md."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    spreads: dict[tuple[str, int], int] = field(default_factory=dict)

    def of(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.get_root_type(operation.operation)
        fields = operation.selection_set.selections
        cost = self.selection(fields, root, 1, frozenset())
        if operation.operation is OperationType.MUTATION:
            cost += MUTATION_COST * sum(1 for _ in _root_fields(fields, self.fragments))
        return cost

    def selection(
        self,
        selections: Sequence[SelectionNode],
        parent: GraphQLNamedType | None,
        page: int,
        path: frozenset[str],
    ) -> int:
        total = 0
        for node in selections:
            if isinstance(node, FieldNode):
                total += self.field(node, parent, page, path)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection(node.selection_set.selections, on, page, path)
            elif isinstance(node, FragmentSpreadNode):
                total += self.spread(node.name.value, page, path)
        return total

    def field(
        self, node: FieldNode, parent: GraphQLNamedType | None, page: int, path: frozenset[str]
    ) -> int:
        if node.selection_set is None:
            return 0  # a scalar or an enum
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 1
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 1  # __schema, __type: introspection, off in production
        if PAGE_ARGUMENT in definition.args:
            page = self.first(node, definition.args[PAGE_ARGUMENT].default_value)
        elif IDS_ARGUMENT in definition.args:
            page = self.count(node, IDS_ARGUMENT)
        named = get_named_type(definition.type)
        selections = node.selection_set.selections
        if is_list_type(get_nullable_type(definition.type)):
            return page * (1 + self.selection(selections, named, 1, path))
        return 1 + self.selection(selections, named, page, path)

    def spread(self, name: str, page: int, path: frozenset[str]) -> int:
        fragment = self.fragments.get(name)
        if fragment is None or name in path:
            return 0
        key = (name, page)
        if key not in self.spreads:
            on = self.schema.get_type(fragment.type_condition.name.value)
            selections = fragment.selection_set.selections
            self.spreads[key] = self.selection(selections, on, page, path | {name})
        return self.spreads[key]

    def count(self, node: FieldNode, name: str) -> int:
        """The items of the list argument ``name`` (``nodes(ids:)``), at least one."""
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            if isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
            else:
                value = value_from_ast_untyped(argument.value, self.variables)
            return max(len(value), 1) if isinstance(value, list) else 1
        return 1

    def first(self, node: FieldNode, default: Any) -> int:
        value = default
        for argument in node.arguments or ():
            if argument.name.value != PAGE_ARGUMENT:
                continue
            if isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value, default)
            else:
                value = value_from_ast_untyped(argument.value)
        if isinstance(value, bool) or not isinstance(value, int):
            return 1  # not a number: the request is refused as it is read
        return max(value, 0)


def _root_fields(
    selections: Sequence[SelectionNode], fragments: dict[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    for node in selections:
        if isinstance(node, FieldNode):
            yield node
        elif isinstance(node, InlineFragmentNode):
            yield from _root_fields(node.selection_set.selections, fragments)
        elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments:
            yield from _root_fields(fragments[node.name.value].selection_set.selections, {})


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> int | None:
    """The cost of the operation the request runs, with its variables (their defaults where
    not given); ``None`` when the document names no such operation."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    given = dict(variables or {})
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in given and definition.default_value is not None:
            given[name] = value_from_ast_untyped(definition.default_value)
    return _Cost(schema, _fragments(document.definitions), given).of(operation)


def too_costly(cost: int, limit: int) -> GraphQLError:
    return GraphQLError(
        f"The query costs {cost}, more than the limit of {limit}: ask for fewer items "
        "('first') or fewer fields, or split it",
        extensions={"code": QUERY_TOO_COSTLY, "cost": cost, "limit": limit},
    )


class QueryCost(SchemaExtension):
    """Refuses, before anything runs, an operation costing more than ``limit`` (one error,
    ``QUERY_TOO_COSTLY``, with the cost and the limit); reports ``{"cost": {"requested": ...,
    "limit": ...}}`` in the ``extensions`` of every response to a document that parsed."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.cost: int | None = None

    def _cost(self) -> int | None:
        context = self.execution_context
        if self.cost is None and context.graphql_document is not None:
            self.cost = operation_cost(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
            )
        return self.cost

    def on_execute(self) -> Iterator[None]:
        cost = self._cost()
        if cost is not None and cost > self.limit:
            self.execution_context.result = GraphQLExecutionResult(
                data=None, errors=[too_costly(cost, self.limit)]
            )
        yield

    def get_results(self) -> dict[str, Any]:
        cost = self._cost()
        if cost is None:
            return {}
        return {"cost": {"requested": cost, "limit": self.limit}}


# --- suggestions ----------------------------------------------------------------------------------


def hide_suggestions(errors: list[GraphQLError]) -> None:
    """Removes graphql-core's "Did you mean 'wallet'?" (fields, arguments, types, enum values,
    input fields, inline fragments) from each message, in place."""
    for error in errors:
        error.message = _SUGGESTION.sub("", error.message)
