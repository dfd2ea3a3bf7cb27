"""Compiled execution of plain record subtrees.

Once ``Query.entity``/``entities`` have prefetched what their selection
reads, every record below a subject is plain data: strawberry types whose
fields are attributes (``core.records``), without resolvers. graphql-core
would still resolve each of their fields one by one (resolve info, resolver
wrapper, completion: most of a 500-entity request's time).
``CompiledExecutor`` instead completes such a value with a projection
compiled once per (field type, collected field nodes): the response keys in
order, each read with ``getattr``, identifier masks applied from the
request's decision, leaves coerced by their own GraphQL types, ``__typename``
filled in, lists and nested plain objects projected the same way.

What it accepts is only what it can complete exactly as graphql-core does:
object types whose selected fields are all attribute fields (no resolver, no
field extension but ``MaskedIdentifier``, no arguments), of leaf, list,
non-null or such object types; no abstract types, no ``@defer``/``@stream``,
no middleware. Anything else, and any value the projection does not
expect (a null where the type is non-null, a leaf that does not coerce, an
object of another type, something not a list where a list is due), is
completed by graphql-core's own ``complete_value`` from the start of that
value, so errors, nulls and their paths are graphql-core's. Record
attributes have no side effects, so starting again is safe. Projections are
kept with the request's enforcement plan when it is reusable (no
``@skip``/``@include`` on variables), so a cached plan compiles once.

``Settings.compiled_execution = false`` turns it off (every field then goes
through graphql-core); ``tests/test_compiled_execution.py`` runs both on a
generated corpus of operations and compares the responses byte for byte.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    Undefined,
    is_leaf_type,
)

from core.masking import MaskedIdentifier
from gateway.strawberry_internals import strawberry_executor, strawberry_field_of

# Kinds of a projected field.
_TYPENAME, _LEAF, _LEAF_NON_NULL, _VALUE = range(4)


class _Unexpected(Exception):
    """A value the projection does not complete: graphql-core completes it."""


_UNEXPECTED = _Unexpected()


def _attribute(name: str, field_def: Any) -> tuple[str, str | None] | None:
    """(attribute, masked coordinate or ``None``) of the attribute field
    ``name``; ``None`` for a field with a resolver, arguments or extensions
    other than ``MaskedIdentifier`` (whose coordinate is the one its
    ``resolve`` looks the purpose's mask up by)."""
    definition = strawberry_field_of(field_def)
    if definition is None or definition.base_resolver is not None or field_def.args:
        return None
    if definition.default_resolver is not getattr:
        return None
    masks = [e for e in definition.extensions if isinstance(e, MaskedIdentifier)]
    if len(masks) != len(definition.extensions):
        return None
    return definition.python_name, f"{masks[0].type_name}.{name}" if masks else None


class _Compiler:
    """Compiles completions with one executor's field collection."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def value(self, type_: Any, field_details: Any) -> Any:
        """A completion ``(value, info) -> result`` of ``type_`` for these
        field nodes, or ``None`` when it is not a plain record value."""
        if isinstance(type_, GraphQLNonNull):
            inner = self.value(type_.of_type, field_details)
            if inner is None:
                return None

            def non_null(value: Any, info: Any) -> Any:
                value = inner(value, info)
                if value is None:
                    raise _UNEXPECTED
                return value
            return non_null
        if isinstance(type_, GraphQLList):
            item = self.value(type_.of_type, field_details)
            if item is None:
                return None

            def listed(value: Any, info: Any) -> Any:
                if value is None:
                    return None
                if type(value) is not list and type(value) is not tuple:
                    raise _UNEXPECTED
                return [item(v, info) for v in value]
            return listed
        if is_leaf_type(type_):
            coerce = type_.coerce_output_value

            def leaf(value: Any, info: Any) -> Any:
                return _leaf(coerce, value)
            return leaf
        if isinstance(type_, GraphQLObjectType):
            return self.object(type_, field_details)
        return None  # an interface or union

    def object(self, type_: GraphQLObjectType, field_details: Any) -> Any:
        grouped, defers, _ = self.executor.collect_subfields(type_, field_details)
        if defers:
            return None
        fields: list[tuple[str, Any, Any, int, Any]] = []
        for key, details in grouped.items():
            if any(d.fragment_variable_values is not None or d.defer_usage is not None
                   for d in details):
                return None
            name = details[0].node.name.value
            if name == "__typename":
                fields.append((key, None, None, _TYPENAME, type_.name))
                continue
            field_def = type_.fields.get(name)
            if field_def is None:  # not a field of the type: graphql-core leaves it out
                if name.startswith("__"):
                    return None
                continue
            if details[0].node.arguments:
                return None
            attribute = _attribute(name, field_def)
            if attribute is None:
                return None
            python_name, masked = attribute
            field_type = field_def.type
            named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
            if is_leaf_type(named):
                kind = _LEAF_NON_NULL if named is not field_type else _LEAF
                fields.append((key, python_name, masked, kind, named.coerce_output_value))
                continue
            complete = self.value(field_type, details)
            if complete is None:
                return None
            fields.append((key, python_name, masked, _VALUE, complete))
        return _projection(type_, tuple(fields))


def _leaf(coerce: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Exception):
        raise _UNEXPECTED
    coerced = coerce(value)
    if coerced is None or coerced is Undefined:
        raise _UNEXPECTED
    return coerced


def _projection(type_: GraphQLObjectType, fields: tuple[tuple[str, Any, Any, int, Any], ...]) -> Any:
    is_type_of = type_.is_type_of

    def project(value: Any, info: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, Exception) or (is_type_of is not None
                                            and not is_type_of(value, info)):
            raise _UNEXPECTED
        result = {}
        masks = None
        for key, attribute, masked, kind, how in fields:
            if kind == _TYPENAME:
                result[key] = how
                continue
            item = getattr(value, attribute)
            if masked is not None:
                if masks is None:
                    masks = info.context.decision.masks
                mask = masks.get(masked)
                if mask is not None:
                    item = mask.apply(item)
            if kind == _VALUE:
                result[key] = how(item, info)
            elif item is None:
                if kind == _LEAF_NON_NULL:
                    raise _UNEXPECTED
                result[key] = None
            else:
                if isinstance(item, Exception):
                    raise _UNEXPECTED
                coerced = how(item)
                if coerced is None or coerced is Undefined:
                    raise _UNEXPECTED
                result[key] = coerced
        return result
    return project


class CompiledExecutor(strawberry_executor()):
    """strawberry's executor completing plain record values with compiled
    projections (the module's docstring says which, and when it falls back)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        context = self.context_value
        services = getattr(context, "services", None)
        middleware = getattr(self.middleware_manager, "middlewares", None)
        self._compiled = (services is not None and services.settings.compiled_execution
                          and not middleware)  # strawberry passes a manager with none
        plan = getattr(context, "plan", None)
        # (type id, field node ids) -> completion, kept with a reusable plan
        self._shared = plan.projections if plan is not None and plan.reusable else {}
        # (type id, id of graphql-core's field details list) -> (the list, completion)
        self._completions: dict[tuple[int, int], tuple[Any, Any]] = {}

    def complete_value(self, return_type: Any, field_details_list: Any, info: Any, path: Any,
                       result: Any, position_context: Any) -> Any:
        if self._compiled:
            entry = self._completions.get((id(return_type), id(field_details_list)))
            if entry is None:
                entry = self._completion(return_type, field_details_list)
            complete = entry[1]
            if complete is not None:
                try:
                    return complete(result, info)
                except Exception:  # noqa: BLE001 - graphql-core completes it, errors and all
                    pass
        return super().complete_value(return_type, field_details_list, info, path, result,
                                      position_context)

    def _completion(self, return_type: Any, field_details_list: Any) -> tuple[Any, Any]:
        named = return_type
        while isinstance(named, (GraphQLNonNull, GraphQLList)):
            named = named.of_type
        complete = None
        if isinstance(named, GraphQLObjectType):
            key = (id(return_type), tuple(id(d.node) for d in field_details_list))
            complete = self._shared.get(key)
            if complete is None:
                complete = _Compiler(self).value(return_type, field_details_list) or False
                self._shared[key] = complete
        entry = (field_details_list, complete or None)  # the list kept alive with its id
        self._completions[(id(return_type), id(field_details_list))] = entry
        return entry
