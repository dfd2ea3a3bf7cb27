"""Enforcing the purpose-of-use decision on a GraphQL operation.

Before execution, ``plan_operation`` walks the operation (through aliases,
named and inline fragments, fragments on interfaces, ``@skip``/``@include``)
and finds every selected field the purpose may not use. The document is then
executed without those fields, so a denied field is never resolved and its
source never called. Afterwards each denied field is put back as ``null``,
in its place, with a ``FORBIDDEN_FOR_PURPOSE`` error at its path. A list
merged from several sources, some of which failed, keeps the records of the
others and gets an error at its path with ``extensions.partial = true``.

An introspection operation (``Admitted.introspection_only``) is executed
against the schema of the caller's purpose (``gateway.purpose_schema``,
``Services.purpose_schemas``): what GraphiQL and schema tools see is what
the purpose may use. ``denied_fields`` checks a stored document (a saved
view) against a decision whatever the variables it will run with.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
)
from graphql import ExecutionResult, execute_sync, parse, validate
from strawberry.extensions import SchemaExtension

from gateway.admission import CACHE_TEXT_BUDGET, CACHED_TEXT_LENGTH
from core.errors import ForbiddenForPurpose
from gateway.policy import Decision

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeniedField:
    parent_path: Path  # response keys from the root to the parent object
    key: str  # response key (alias or name)
    coordinate: str
    node: FieldNode


@dataclass
class Plan:
    """What to execute, and which denied fields to put back as null."""

    document: DocumentNode
    denied: list[DeniedField] = field(default_factory=list)
    order: dict[Path, list[str]] = field(default_factory=dict)  # response keys per parent
    selected: set[str] = field(default_factory=set)  # permitted coordinates the operation uses
    # Every permitted field the operation selects: (parent path, response key,
    # its coordinates, whether it selects sub-fields), for ``released``.
    fields: list[tuple[Path, str, frozenset[str], bool]] = field(default_factory=list)
    # Names of the permitted fields selected directly beneath each response path
    # (no list indices), fragments and @skip/@include applied: what prefetch reads.
    children: dict[Path, set[str]] = field(default_factory=dict)
    reusable: bool = False  # the same for every request with this text, operation and purpose
    # Compiled completions of plain record values (gateway.compiled), kept
    # with a reusable plan: its document's nodes stay alive with it.
    projections: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def denied_coordinates(self) -> list[str]:
        return sorted({d.coordinate for d in self.denied})

    def released(self, data: dict[str, Any] | None) -> set[str]:
        """The permitted coordinates ``data`` holds a value of: a field
        selecting sub-fields counts where it is not null in at least one
        place, any other field where its parent object was returned. Costs a
        walk of the objects of ``data``: call it when some field failed."""
        if data is None:
            return set()
        released: set[str] = set()
        objects_at: dict[Path, list[dict]] = {}
        for parent, key, coordinates, is_object in self.fields:
            objects = objects_at.get(parent)
            if objects is None:
                objects = objects_at[parent] = [obj for obj, _ in _objects_at(data, parent, [])]
            if any(obj.get(key) is not None if is_object else key in obj for obj in objects):
                released |= coordinates
        return released


def _included(node: Any, variables: Mapping[str, Any],
              defaults: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether ``node`` is kept, and whether that depended on a variable."""
    by_variable = False
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        (argument,) = [a for a in directive.arguments if a.name.value == "if"]
        value = argument.value
        if isinstance(value, VariableNode):
            by_variable = True
            flag = variables.get(value.name.value, defaults.get(value.name.value))
        else:
            flag = isinstance(value, BooleanValueNode) and value.value
        if (name == "skip") == bool(flag):
            return False, by_variable
    return True, by_variable


class _Planner:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode,
                 operation: OperationDefinitionNode, variables: Mapping[str, Any],
                 decision: Decision, every_condition: bool = False) -> None:
        self.schema = schema
        self.decision = decision
        self.every_condition = every_condition  # every @skip/@include counted as included
        self.variables = variables
        self.defaults = {
            d.variable.name.value: getattr(d.default_value, "value", None)
            for d in operation.variable_definitions or ()
        }
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.plan = Plan(document)
        self.touched: set[Path] = set()
        self.used_variables = False  # the plan depends on the request's variables

    def _possible_types(self, type_: Any) -> list[GraphQLObjectType]:
        if is_abstract_type(type_):
            return list(self.schema.get_possible_types(type_))
        return [type_]

    def _denied(self, type_: Any, name: str) -> str | None:
        """The first coordinate the purpose may not use for field ``name`` on ``type_``."""
        for object_type in self._possible_types(type_):
            coordinate = f"{object_type.name}.{name}"
            if not self.decision.permits(coordinate):
                return coordinate
        return None

    def walk(self, selection_set: SelectionSetNode, type_: Any, path: Path,
             included: bool) -> SelectionSetNode:
        """Record denied fields under ``path``; return the selection set without them."""
        if type_.name.startswith("__"):
            return selection_set  # introspection (a fragment on __Type...): not data, never denied
        kept, changed = [], False
        order = self.plan.order.setdefault(path, []) if included else []
        for selection in selection_set.selections:
            kept_here, by_variable = (True, False) if self.every_condition else _included(
                selection, self.variables, self.defaults)
            self.used_variables |= by_variable
            visible = included and kept_here
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                if visible and key not in order:
                    order.append(key)
                if selection.name.value.startswith("__"):
                    kept.append(selection)  # introspection: not data, never denied
                    continue
                denied = self._denied(type_, selection.name.value)
                if visible and denied is None:
                    coordinates = frozenset(
                        f"{t.name}.{selection.name.value}" for t in self._possible_types(type_)
                        if selection.name.value in t.fields
                    )
                    self.plan.selected.update(coordinates)
                    self.plan.fields.append(
                        (path, key, coordinates, selection.selection_set is not None))
                    self.plan.children.setdefault(path, set()).add(selection.name.value)
                if denied is not None:
                    changed = True
                    if visible:
                        self.plan.denied.append(DeniedField(path, key, denied, selection))
                        self.touched.add(path)
                    continue
                if selection.selection_set is not None:
                    field_type = self._field_type(type_, selection.name.value)
                    inner = self.walk(selection.selection_set, field_type, path + (key,), visible)
                    if inner is not selection.selection_set:
                        selection = FieldNode(**{**_attrs(selection), "selection_set": inner})
                        changed = True
                kept.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = (self.schema.get_type(selection.type_condition.name.value)
                             if selection.type_condition else type_)
                inner = self.walk(selection.selection_set, _narrow(type_, condition), path, visible)
                if inner is not selection.selection_set:
                    selection = InlineFragmentNode(**{**_attrs(selection), "selection_set": inner})
                    changed = True
                kept.append(selection)
            else:  # FragmentSpreadNode: walked here for the paths, rewritten once in rewrite()
                fragment = self.fragments[selection.name.value]
                condition = self.schema.get_type(fragment.type_condition.name.value)
                self.walk(fragment.selection_set, _narrow(type_, condition), path, visible)
                kept.append(selection)
        if not changed:
            return selection_set
        return SelectionSetNode(selections=tuple(kept))

    def _field_type(self, type_: Any, name: str) -> Any:
        for object_type in self._possible_types(type_):
            field_def = object_type.fields.get(name)
            if field_def is not None:
                return get_named_type(field_def.type)
        return None

    def rewrite_fragments(self) -> dict[str, FragmentDefinitionNode]:
        rewritten = {}
        for name, fragment in self.fragments.items():
            condition = self.schema.get_type(fragment.type_condition.name.value)
            inner = self.walk(fragment.selection_set, condition, (), False)
            if inner is not fragment.selection_set:
                rewritten[name] = FragmentDefinitionNode(**{**_attrs(fragment), "selection_set": inner})
        return rewritten


class PlanCache:
    """The plans of operations seen before, by (query text, operation name,
    purpose), for one policy; at most ``size`` of them and ``text_budget``
    characters of query text in all (a plan's memory grows with its text),
    the oldest dropped first. Plans that depend on variables (``@skip(if:
    $x)``) are not kept, nor those of texts over ``CACHED_TEXT_LENGTH``."""

    def __init__(self, size: int = 1024, text_budget: int = CACHE_TEXT_BUDGET) -> None:
        self._plans: dict[tuple[Any, ...], Plan] = {}
        self._denied: dict[tuple[str, str], tuple[str, ...] | None] = {}
        self._size = size
        self._text_budget = text_budget
        self._text = 0

    def get(self, key: tuple[Any, ...]) -> Plan | None:
        return self._plans.get(key)

    def plan(self, schema: GraphQLSchema, admitted: Any, decision: Decision) -> Plan | None:
        """The plan of an admitted request's operation (``gateway.admission.Admitted``),
        from the cache where it does not depend on the request's variables."""
        key = (admitted.query, admitted.operation_name, decision.purpose.code)
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_operation(schema, admitted.document, admitted.operation_name,
                                  admitted.variables, decision)
            if plan is not None and plan.reusable:
                self.put(key, plan)
        return plan

    def denied_fields(self, schema: GraphQLSchema, text: str,
                      decision: Decision) -> tuple[str, ...] | None:
        """``denied_fields`` of a stored document (a saved view), kept per
        (text, purpose) beside the plans (one per text and purpose)."""
        key = (text, decision.purpose.code)
        if key not in self._denied:
            if len(self._denied) >= self._size:
                self._denied.clear()
            self._denied[key] = denied_fields(schema, text, decision)
        return self._denied[key]

    def put(self, key: tuple[Any, ...], plan: Plan) -> None:
        if len(key[0]) > CACHED_TEXT_LENGTH or key in self._plans:
            return
        self._plans[key] = plan
        self._text += len(key[0])
        while len(self._plans) > self._size or self._text > self._text_budget:
            oldest = next(iter(self._plans))
            del self._plans[oldest]
            self._text -= len(oldest[0])


def _attrs(node: Any) -> dict[str, Any]:
    return {key: getattr(node, key) for key in node.keys}


def _narrow(enclosing: Any, condition: Any) -> Any:
    """A fragment on an interface inside a concrete type applies to that type."""
    if condition is not None and is_abstract_type(condition) and not is_abstract_type(enclosing):
        return enclosing
    return condition


def plan_operation(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
    variables: Mapping[str, Any] | None, decision: Decision, every_condition: bool = False,
) -> Plan | None:
    """The plan for the operation to be executed: the document without denied
    fields (the same document when nothing is denied). ``None`` when the
    operation cannot be determined: nothing is executed then.
    ``every_condition``: count every field under ``@skip``/``@include`` as
    selected, whatever the variables (for checking a stored document)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return None
    operation = operations[0]
    root = schema.get_root_type(operation.operation)
    planner = _Planner(schema, document, operation, variables or {}, decision, every_condition)
    selection_set = planner.walk(operation.selection_set, root, (), True)
    fragments = planner.rewrite_fragments()
    plan = planner.plan
    plan.reusable = not planner.used_variables
    if selection_set is operation.selection_set and not fragments:
        return plan
    definitions = []
    for definition in document.definitions:
        if definition is operation:
            definition = OperationDefinitionNode(
                **{**_attrs(operation), "selection_set": selection_set}
            )
        elif isinstance(definition, FragmentDefinitionNode):
            definition = fragments.get(definition.name.value, definition)
        definitions.append(definition)
    plan.document = DocumentNode(definitions=tuple(definitions))
    plan.order = {p: keys for p, keys in plan.order.items() if p in planner.touched}
    return plan


def denied_fields(schema: GraphQLSchema, text: str, decision: Decision) -> tuple[str, ...] | None:
    """The coordinates of the fields a stored document's operation (one, with
    its fragments) selects that ``decision`` denies, whatever the variables it
    runs with: what enforcement would deny. ``None`` when the document does
    not parse or validate against ``schema`` (it could not run at all)."""
    try:
        document = parse(text)
    except GraphQLError:
        return None
    if validate(schema, document):
        return None
    plan = plan_operation(schema, document, None, {}, decision, every_condition=True)
    return None if plan is None else tuple(plan.denied_coordinates())


def _objects_at(value: Any, path: Path, concrete: list[Any]) -> Iterator[tuple[dict, list[Any]]]:
    """The result objects at a response-key path, with their concrete paths."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _objects_at(item, path, concrete + [index])
    elif isinstance(value, dict):
        if not path:
            yield value, concrete
        else:
            yield from _objects_at(value.get(path[0]), path[1:], concrete + [path[0]])


def restore_denied(plan: Plan, data: dict[str, Any] | None, purpose: str) -> list[GraphQLError]:
    """Put each denied field back into ``data`` as null, in request order, and
    return one error per concrete path."""
    if data is None:
        return []
    errors = []
    by_parent: dict[Path, list[DeniedField]] = {}
    for denied in plan.denied:
        by_parent.setdefault(denied.parent_path, []).append(denied)
    for parent_path, denied_fields in by_parent.items():
        order = plan.order[parent_path]
        keys = {d.key: d for d in denied_fields}
        for obj, concrete in _objects_at(data, parent_path, []):
            for key, denied in keys.items():
                if key in obj:  # the same key also selected where it is allowed
                    continue
                obj[key] = None
                errors.append(GraphQLError(
                    f"{denied.coordinate} may not be used for purpose {purpose}",
                    nodes=[denied.node], path=concrete + [key],
                    original_error=ForbiddenForPurpose(
                        f"{denied.coordinate} may not be used for purpose {purpose}", purpose,
                    ),
                ))
            reordered = {k: obj[k] for k in order if k in obj}
            reordered.update((k, v) for k, v in obj.items() if k not in reordered)
            obj.clear()
            obj.update(reordered)
    return errors


class PurposePolicy(SchemaExtension):
    """Applies the request's purpose-of-use decision to the whole operation."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        plan = context.plan  # made with the context, before execution (gateway.app)
        if document is not None and plan is None:  # never run what was not checked
            execution.result = ExecutionResult(data=None, errors=[GraphQLError(
                "the operation to run cannot be determined: name one of the document's operations",
                extensions={"code": "OPERATION_NAME_REQUIRED"},
            )])
            yield
            return
        if plan is not None and plan.denied and context.client.rejects_denied:
            context.rejected = True
            context.response.status_code = 403
            denied = plan.denied_coordinates()
            execution.result = ExecutionResult(data=None, errors=[GraphQLError(
                f"operation rejected: purpose {context.purpose} may not use {', '.join(denied)}",
                original_error=ForbiddenForPurpose(
                    "operation rejected", context.purpose, fields=denied,
                ),
            )])
            context.denied_fields.extend(denied)
            yield
            return
        if plan is not None:
            execution.graphql_document = plan.document
        admitted = context.admitted
        purpose_schemas = context.services.purpose_schemas
        if (admitted is not None and admitted.introspection_only and purpose_schemas is not None
                and execution.graphql_document is not None):
            # What the purpose may use, not the gateway's whole schema; only
            # introspection's own resolvers run (strawberry executes nothing then).
            execution.result = execute_sync(
                purpose_schemas.get(context.purpose, context.client.full_schema),
                execution.graphql_document, context_value=context,
                variable_values=execution.variables, operation_name=execution.operation_name)
        yield
        result = execution.result
        if not isinstance(result, ExecutionResult):
            return
        if plan is not None:  # some field failed: only what came back with data was released
            context.released = plan.released(result.data) if result.errors else plan.selected
        if plan is not None and plan.denied:
            errors = restore_denied(plan, result.data, context.purpose)
            result.errors = [*(result.errors or []), *errors]
            context.denied_fields.extend(plan.denied_coordinates())
        if context.loaders.partial_failures and result.data is not None:
            partial = {}  # one error per place and failing source
            for path, failure in context.loaders.partial_failures:
                where = tuple(path.as_list()) if path else None
                partial.setdefault((where, failure.code, failure.source), GraphQLError(
                    failure.message, path=list(where) if where else None,
                    extensions={**failure.extensions, "partial": True}))
            result.errors = [*(result.errors or []), *partial.values()]

    def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        return {"policy": {
            "purpose": context.purpose,
            "withheldRecords": dict(sorted(context.withheld.items())),
        }}
