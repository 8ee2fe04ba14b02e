"""One rule for every string a request gives: no control characters, no lone surrogates.

A string argument may arrive as a literal in the document or in a variable, at any depth of an
input object or list, and under any type that travels as a string (``String``, ``ID``, the
custom scalars). :class:`CleanInputStrings` reads them all before execution, so no resolver
sees one that PostgreSQL would refuse (a NUL byte) or could not encode (a lone surrogate), and
the caller gets ``BAD_USER_INPUT`` naming the field at fault (``input.reason``).

Tab, line feed and carriage return are allowed: a reason may run over several lines.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    ObjectFieldNode,
    StringValueNode,
    VariableNode,
    Visitor,
    visit,
)
from graphql.execution import ExecutionResult
from strawberry.extensions import SchemaExtension

from schema.errors import BAD_USER_INPUT

ALLOWED_CONTROLS = frozenset("\t\n\r")


def unclean_character(text: str) -> str | None:
    """The first character ``text`` may not hold (a control character other than tab, line
    feed and carriage return, or a lone surrogate), or ``None`` when it is clean."""
    if text.isprintable():
        return None
    for character in text:
        if character in ALLOWED_CONTROLS:
            continue
        if unicodedata.category(character) in ("Cc", "Cs"):
            return character
    return None


@dataclass(frozen=True, slots=True)
class Fault:
    field: str
    character: str

    def error(self) -> GraphQLError:
        return GraphQLError(
            f"'{self.field}' holds U+{ord(self.character):04X}: strings may not hold control "
            "characters (tab, line feed and carriage return aside) or lone surrogates",
            extensions={"code": BAD_USER_INPUT, "field": self.field},
        )


class _ArgumentWalk(Visitor):
    """Walks a document's arguments, keeping the path of argument and input field names to
    each string literal and each variable."""

    def __init__(self) -> None:
        super().__init__()
        self.path: list[str] = []
        self.fault: Fault | None = None
        self.uses: dict[str, str] = {}

    def enter_argument(self, node: ArgumentNode, *_: object) -> None:
        self.path.append(node.name.value)

    def leave_argument(self, node: ArgumentNode, *_: object) -> None:
        self.path.pop()

    def enter_object_field(self, node: ObjectFieldNode, *_: object) -> None:
        self.path.append(node.name.value)

    def leave_object_field(self, node: ObjectFieldNode, *_: object) -> None:
        self.path.pop()

    def enter_variable(self, node: VariableNode, *_: object) -> None:
        if self.path:
            self.uses.setdefault(node.name.value, ".".join(self.path))

    def enter_string_value(self, node: StringValueNode, *_: object) -> Any:
        character = unclean_character(node.value)
        if character is not None and self.fault is None:
            self.fault = Fault(".".join(self.path) or "(a default value)", character)
            return Visitor.BREAK
        return None


def _strings_in(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings_in(key, path)
            yield from _strings_in(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item, path)


def first_fault(document: DocumentNode, variables: Mapping[str, Any]) -> Fault | None:
    """The first string of the request, literal or variable, that breaks the rule."""
    walk = _ArgumentWalk()
    visit(document, walk)
    if walk.fault is not None:
        return walk.fault
    for name, value in variables.items():
        for path, text in _strings_in(value, walk.uses.get(name, f"${name}")):
            character = unclean_character(text)
            if character is not None:
                return Fault(path, character)
    return None


class CleanInputStrings(SchemaExtension):
    """Refuses a request holding an unclean string before anything is executed."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            fault = first_fault(document, context.variables or {})
            if fault is not None:
                context.result = ExecutionResult(data=None, errors=[fault.error()])
        yield
