"""Admitting a GraphQL request before any work: limits, parsing, validation.

``Admission.admit`` takes the request's text, operation name and variables
and either returns the parsed, validated document or raises ``Refused``
with a stable code, the limit and its value. The order is the cheapest
first: the text's length before it is parsed, the parser stops at
``max_tokens``, the operation's shape (depth, aliases, root fields,
directives) before validation, the subjects and the cost (from list sizes
and the record types each subject reads) before execution.

An operation whose root selects only ``__schema``, ``__type`` and
``__typename`` is admitted as an introspection operation
(``Admitted.introspection_only``): it is executed against the schema of the
caller's purpose (``gateway.purpose_schema``), not the gateway's whole one.

Parsed documents, their measures and their validation results are kept per
query text in a cache bounded by the total length of the texts it holds (a
document's memory grows with its text); texts longer than
``CACHED_TEXT_LENGTH`` are not kept at all.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    VariableNode,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension

from gateway.settings import Settings

CACHED_TEXT_LENGTH = 16_384  # longer texts are parsed for each request, never kept
CACHE_TEXT_BUDGET = 4_000_000  # characters of query text the cache holds at most
MAX_VALIDATION_ERRORS = 20
# What a validation message tells of the schema beyond the client's own text:
# suggestions, and the name of the type a field was looked up on.
_SCHEMA_HINTS = re.compile(r"\s*Did you mean [^?]*\?| on type '[^']*'")

# Root fields -> how many subjects they ask about (see ``_subjects``).
SINGLE_SUBJECT_FIELDS = frozenset({"entity", "person", "financingProfile"})
LIST_SUBJECT_FIELDS = {"entities": "usccs", "financingProfiles": "usccs"}
PAGED_SUBJECT_FIELDS = {"searchEntities": ("first", 20)}
# The root fields of an introspection operation: nothing else is executed there.
INTROSPECTION_ROOT_FIELDS = frozenset({"__schema", "__type", "__typename"})


class Refused(Exception):
    """A request refused before execution; ``code`` is stable, ``status`` its HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400, **extensions: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extensions = {"code": code, **extensions}

    def error(self) -> dict[str, Any]:
        return {"message": self.message, "extensions": self.extensions}


def _over(code: str, what: str, limit: int, found: int | None = None,
          status: int = 400) -> Refused:
    counted = f" (got {found})" if found is not None else ""
    return Refused(code, f"{what} exceeds the limit of {limit}{counted}", status, limit=limit)


@dataclass(frozen=True, slots=True)
class RootField:
    name: str
    arguments: tuple[Any, ...]  # its ArgumentNodes
    source_fields: int  # source-backed fields beneath it: record types read per subject


@dataclass(slots=True)
class Shape:
    """What one operation of a document asks, measured once per text."""

    depth: int = 0
    aliases: int = 0
    directives: int = 0  # the most on one field or fragment
    roots: list[RootField] = field(default_factory=list)


@dataclass(slots=True)
class Parsed:
    document: DocumentNode
    operations: dict[str | None, OperationDefinitionNode]
    shapes: dict[str | None, Shape] = field(default_factory=dict)
    validated: dict[bool, list[GraphQLError]] = field(default_factory=dict)  # by introspection


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request admitted for execution: its text, operation and variables,
    the parsed document and its validation errors (coded; when there are
    any, nothing is executed), and what it asks for."""

    query: str
    operation_name: str | None
    variables: Mapping[str, Any]
    document: DocumentNode
    errors: list[GraphQLError]
    subjects: int = 0
    cost: int = 0
    introspection_only: bool = False  # only __schema, __type, __typename at the root


class Admission:
    """The limits of ``settings`` over ``schema``, with the cache of parsed texts."""

    def __init__(self, schema: GraphQLSchema, settings: Settings,
                 source_fields: frozenset[str] = frozenset()) -> None:
        self.schema = schema
        self.settings = settings
        self.source_fields = source_fields  # names of fields read from a source (the cost)
        self._cache: OrderedDict[str, Parsed] = OrderedDict()
        self._cached_length = 0

    def admit(self, text: str, operation_name: str | None, variables: Mapping[str, Any],
              introspection: bool) -> Admitted:
        """The document to execute, or ``Refused``. ``introspection``: whether
        the caller may introspect the schema and be told "did you mean"."""
        s = self.settings
        if len(text) > s.max_query_length:
            raise _over("QUERY_TOO_LONG", "the query's length", s.max_query_length, len(text))
        parsed = self._parsed(text)
        operation = self._operation(parsed, operation_name)
        shape = parsed.shapes.get(operation_name)
        if shape is None:
            shape = parsed.shapes[operation_name] = _measure(
                parsed.document, operation, self.source_fields)
        if shape.depth > s.max_depth:
            raise _over("QUERY_TOO_DEEP", "the query's depth", s.max_depth, shape.depth)
        if shape.aliases > s.max_aliases:
            raise _over("TOO_MANY_ALIASES", "the number of aliases", s.max_aliases, shape.aliases)
        if len(shape.roots) > s.max_root_fields:
            raise _over("TOO_MANY_ROOT_FIELDS", "the number of root fields", s.max_root_fields,
                        len(shape.roots))
        if shape.directives > s.max_directives:
            raise _over("TOO_MANY_DIRECTIVES", "the number of directives on one field",
                        s.max_directives, shape.directives)
        errors = self._validated(parsed, introspection)
        if errors:
            return Admitted(text, operation_name, variables, parsed.document, errors)
        subjects = cost = 0
        for root in shape.roots:
            count = _subjects(root, variables)
            subjects += count
            cost += count * (1 + root.source_fields)
        if subjects > s.max_subjects_per_request:
            raise _over("TOO_MANY_SUBJECTS", "the number of subjects asked about",
                        s.max_subjects_per_request, subjects)
        if cost > s.max_cost:
            raise _over("QUERY_TOO_COSTLY", "the query's estimated cost", s.max_cost, cost)
        return Admitted(text, operation_name, variables, parsed.document, [], subjects, cost,
                        bool(shape.roots) and all(root.name in INTROSPECTION_ROOT_FIELDS
                                                  for root in shape.roots))

    def _parsed(self, text: str) -> Parsed:
        parsed = self._cache.get(text)
        if parsed is not None:
            self._cache.move_to_end(text)
            return parsed
        try:
            document = parse(text, max_tokens=self.settings.max_tokens, no_location=False)
        except GraphQLError as error:
            if "tokens" in error.message and "Parsing aborted" in error.message:
                raise _over("TOO_MANY_TOKENS", "the query's number of tokens",
                            self.settings.max_tokens) from None
            raise Refused("GRAPHQL_PARSE_FAILED", error.message,
                          locations=[loc._asdict() for loc in error.locations or ()]) from None
        operations = {
            (d.name.value if d.name else None): d
            for d in document.definitions if isinstance(d, OperationDefinitionNode)
        }
        parsed = Parsed(document, operations)
        if len(text) <= CACHED_TEXT_LENGTH:
            self._cache[text] = parsed
            self._cached_length += len(text)
            while self._cached_length > CACHE_TEXT_BUDGET:
                old, _ = self._cache.popitem(last=False)
                self._cached_length -= len(old)
        return parsed

    @staticmethod
    def _operation(parsed: Parsed, name: str | None) -> OperationDefinitionNode:
        if name is None:
            if len(parsed.operations) > 1:
                raise Refused("OPERATION_NAME_REQUIRED",
                              "Must provide operation name if query contains multiple operations.")
            if not parsed.operations:
                raise Refused("GRAPHQL_VALIDATION_FAILED", "the document holds no operation")
            return next(iter(parsed.operations.values()))
        operation = parsed.operations.get(name)
        if operation is None:
            raise Refused("UNKNOWN_OPERATION_NAME", f'Unknown operation named "{name}".')
        return operation

    def _validated(self, parsed: Parsed, introspection: bool) -> list[GraphQLError]:
        errors = parsed.validated.get(introspection)
        if errors is None:
            rules = specified_rules if introspection else (
                *specified_rules, NoSchemaIntrospectionCustomRule)
            found = validate(self.schema, parsed.document, rules,
                             max_errors=MAX_VALIDATION_ERRORS, hide_suggestions=not introspection)
            errors = parsed.validated[introspection] = [
                _coded(e, hide_suggestions=not introspection) for e in found]
        return errors


def _coded(error: GraphQLError, hide_suggestions: bool) -> GraphQLError:
    message = _SCHEMA_HINTS.sub("", error.message) if hide_suggestions else error.message
    return GraphQLError(message, nodes=error.nodes, source=error.source,
                        positions=error.positions,
                        extensions={**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"})


def _subjects(root: RootField, variables: Mapping[str, Any]) -> int:
    """How many subjects a root field asks about (``legalRepresentativeOf``
    and other nested lists are bounded by the data, not the request)."""
    if root.name in SINGLE_SUBJECT_FIELDS:
        return 1
    if root.name in LIST_SUBJECT_FIELDS:
        value = _argument(root, LIST_SUBJECT_FIELDS[root.name], variables)
        return len(value) if isinstance(value, (list, tuple)) else 1
    if root.name in PAGED_SUBJECT_FIELDS:
        name, default = PAGED_SUBJECT_FIELDS[root.name]
        value = _argument(root, name, variables)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
            else default
    return 0


def _argument(root: RootField, name: str, variables: Mapping[str, Any]) -> Any:
    for argument in root.arguments:
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, VariableNode):
            return variables.get(value.name.value)
        if isinstance(value, ListValueNode):
            return value.values
        if isinstance(value, IntValueNode):
            return int(value.value)
        return None
    return None


def _measure(document: DocumentNode, operation: OperationDefinitionNode,
             source_fields: frozenset[str]) -> Shape:
    """One walk over ``operation`` with its fragments expanded (a fragment
    spread inside itself is walked once: validation reports the cycle)."""
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    shape = Shape()

    def walk(selection_set: Any, depth: int, active: frozenset[str]) -> int:
        """The source-backed fields beneath, counted; updates ``shape``."""
        objects = 0
        for selection in selection_set.selections:
            shape.directives = max(shape.directives, len(selection.directives or ()))
            if isinstance(selection, FieldNode):
                shape.depth = max(shape.depth, depth)
                if selection.alias is not None:
                    shape.aliases += 1
                if selection.name.value in source_fields:
                    objects += 1
                if selection.selection_set is not None:
                    objects += walk(selection.selection_set, depth + 1, active)
            elif hasattr(selection, "selection_set"):  # an inline fragment
                objects += walk(selection.selection_set, depth, active)
            else:  # a fragment spread
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in active:
                    shape.directives = max(shape.directives, len(fragment.directives or ()))
                    objects += walk(fragment.selection_set, depth, active | {name})
        return objects

    def roots(selection_set: Any, active: frozenset[str]) -> None:
        for selection in selection_set.selections:
            shape.directives = max(shape.directives, len(selection.directives or ()))
            if isinstance(selection, FieldNode):
                shape.depth = max(shape.depth, 1)
                if selection.alias is not None:
                    shape.aliases += 1
                inner = walk(selection.selection_set, 2, active) if selection.selection_set else 0
                shape.roots.append(RootField(selection.name.value,
                                             tuple(selection.arguments or ()), inner))
            elif hasattr(selection, "selection_set"):
                roots(selection.selection_set, active)
            else:
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in active:
                    roots(fragment.selection_set, active | {name})

    shape.directives = len(operation.directives or ())
    roots(operation.selection_set, frozenset())
    return shape


class AdmittedDocument(SchemaExtension):
    """Hands execution the document ``Admission`` parsed and validated
    (``context.admitted``): strawberry parses and validates nothing again."""

    def on_parse(self) -> Any:
        execution = self.execution_context
        execution.graphql_document = execution.context.admitted.document
        yield

    def on_validate(self) -> Any:
        execution = self.execution_context
        execution.pre_execution_errors = list(execution.context.admitted.errors)  # [] : valid
        yield
