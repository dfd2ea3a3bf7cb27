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

The subjects themselves (``Entity``, ``Person``) are completed the same
way when every field selected is their key or a source-backed field
(``resolvers.entity.from_source``) whose answer is in
(``Loaders.settled``: prefetched, no source failed) and needs no subject's
authorization: exactly the value its resolver would return, then projected.

What it accepts is only what it can complete exactly as graphql-core does:
object types whose selected fields are all attribute fields (no resolver, no
field extension but ``MaskedIdentifier``, no arguments) or such
source-backed fields, of leaf, list, non-null or such object types; no
abstract types, no ``@defer``/``@stream``,
no middleware. Anything else, and any value the projection does not
expect (a null where the type is non-null, a leaf that does not coerce, an
object of another type, something not a list where a list is due, an
answer not in or failed, a field gated by authorization), is
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

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    Undefined,
    is_leaf_type,
)
from graphql.type.scalars import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    serialize_boolean,
    serialize_float,
    serialize_id,
    serialize_int,
    serialize_string,
)

from core.masking import MaskedIdentifier
from gateway.loaders import NOT_SETTLED
from gateway.strawberry_internals import (cast_mark, isoformat_serializer, plain_instance_class,
                                          strawberry_executor, strawberry_field_of)
from resolvers.entity import FROM_SOURCE

# Kinds of a projected field.
_TYPENAME, _LEAF, _LEAF_NON_NULL, _VALUE, _VALUE_NON_NULL, _SOURCE = range(6)


class _Unexpected(Exception):
    """A value the projection does not complete: graphql-core completes it."""


_UNEXPECTED = _Unexpected()


def _from_source(field_def: Any) -> tuple[tuple[str, str], str, str] | None:
    """(authorization gate, record type, key attribute) of a subject's
    source-backed field (``resolvers.entity.from_source``) without
    arguments or extensions; ``None`` for any other field."""
    definition = strawberry_field_of(field_def)
    if definition is None or field_def.args or definition.extensions:
        return None
    declared = definition.metadata.get(FROM_SOURCE)
    if declared is None:
        return None
    owner, record_type, key_attribute = declared
    return (owner, record_type), record_type, key_attribute


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
            of_type = type_.of_type
            items_non_null = isinstance(of_type, GraphQLNonNull)
            item = self.value(of_type.of_type if items_non_null else of_type, field_details)
            if item is None:
                return None

            def listed(value: Any, info: Any) -> Any:
                if value is None:
                    return None
                if type(value) is not list and type(value) is not tuple:
                    raise _UNEXPECTED
                result = [item(v, info) for v in value]
                if items_non_null and None in result:
                    raise _UNEXPECTED
                return result
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
            field_type = field_def.type
            attribute = _attribute(name, field_def)
            if attribute is None:
                source = _from_source(field_def)
                complete = None if source is None else self.value(field_type, details)
                if complete is None:
                    return None
                fields.append((key, source, None, _SOURCE, complete))
                continue
            python_name, masked = attribute
            named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
            if is_leaf_type(named):
                kind = _LEAF_NON_NULL if named is not field_type else _LEAF
                fields.append((key, python_name, masked, kind, named))
                continue
            kind = _VALUE_NON_NULL if named is not field_type else _VALUE
            complete = self.value(named, details)
            if complete is None:
                return None
            fields.append((key, python_name, masked, kind, complete))
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
    """The completion of ``type_`` projecting ``fields``: a function generated
    for them (one statement per field, no loop, no dispatch on kinds), as
    graphql-jit does; each field completes as ``_leaf`` or its own
    completion would, and anything unexpected raises ``_UNEXPECTED``."""
    plain = plain_instance_class(type_)
    names: dict[str, Any] = {"_UNEXPECTED": _UNEXPECTED, "_leaf": _leaf, "Decimal": Decimal,
                             "date": date, "datetime": datetime, "NOT_SETTLED": NOT_SETTLED,
                             "is_type_of": type_.is_type_of, "plain": plain, "CAST": cast_mark()}
    body = ["def project(value, info):",
            "    if value is None:",
            "        return None"]
    if type_.is_type_of is None:
        body.append("    if isinstance(value, Exception):")
    elif plain is not None:  # its instances pass is_type_of: it need not be called
        body.append("    if (value.__class__ is not plain or CAST in value.__dict__) and ("
                    "isinstance(value, Exception) or not is_type_of(value, info)):")
    else:
        body.append("    if isinstance(value, Exception) or not is_type_of(value, info):")
    body.append("        raise _UNEXPECTED")
    if any(kind == _SOURCE for _, _, _, kind, _ in fields):
        body.append("    context = info.context")
    if any(masked is not None for _, _, masked, _, _ in fields):
        body.append("    masks = info.context.decision.masks")
    entries = []
    for index, (key, attribute, masked, kind, how) in enumerate(fields):
        if kind == _TYPENAME:
            entries.append(f"{key!r}: {how!r}")
            continue
        result = f"r{index}"
        entries.append(f"{key!r}: {result}")
        names[f"how{index}"] = how
        if kind == _SOURCE:  # what the field's resolver returns, when it is in
            gate, record_type, key_attribute = attribute
            names[f"gate{index}"], names[f"type{index}"] = gate, record_type
            body += [f"    if gate{index} in context.decision.authorization_by_field:",
                     "        raise _UNEXPECTED",  # the subject's authorization is checked first
                     f"    item = context.loaders.settled(type{index}, "
                     f"value.{_identifier(key_attribute)})",
                     "    if item is NOT_SETTLED:",
                     "        raise _UNEXPECTED",
                     f"    {result} = how{index}(item, info)"]
            continue
        body.append(f"    item = value.{_identifier(attribute)}")
        if masked is not None:
            names[f"coordinate{index}"] = masked
            body += [f"    mask = masks.get(coordinate{index})",
                     "    if mask is not None:",
                     "        item = mask.apply(item)"]
        if kind == _VALUE:
            body.append(f"    {result} = how{index}(item, info)")
            continue
        if kind == _VALUE_NON_NULL:
            body += [f"    {result} = how{index}(item, info)",
                     f"    if {result} is None:",
                     "        raise _UNEXPECTED"]
            continue
        names[f"coerce{index}"] = how.coerce_output_value
        body += ["    if item is None:",
                 "        raise _UNEXPECTED" if kind == _LEAF_NON_NULL else f"        {result} = None"]
        fast = _FAST_LEAVES.get(how.coerce_output_value)
        if fast is not None:  # values graphql-core's coercion returns unchanged
            body += [f"    elif {fast}:", f"        {result} = item"]
        elif how.coerce_output_value is str:  # scalars serialized by str(): a str always
            body += ["    elif item.__class__ is str:", f"        {result} = item",
                     "    elif item.__class__ is Decimal:", f"        {result} = str(item)"]
        elif how.coerce_output_value is _ISOFORMAT:  # strawberry's Date and DateTime
            body += ["    elif item.__class__ is date or item.__class__ is datetime:",
                     f"        {result} = item.isoformat()"]
        elif isinstance(how, GraphQLEnumType) and isinstance(getattr(how, "wrapped_cls", None), type):
            # strawberry's enums: a member's name, found once per member here
            names[f"members{index}"] = how.wrapped_cls
            names[f"enum{index}"] = {member: how.coerce_output_value(member)
                                     for member in how.wrapped_cls}
            body += [f"    elif item.__class__ is members{index}:",
                     f"        {result} = enum{index}[item]"]
        body += ["    else:", f"        {result} = _leaf(coerce{index}, item)"]
    body.append("    return {" + ", ".join(entries) + "}")
    exec("\n".join(body), names)  # noqa: S102 - generated from the schema's own names only
    return names["project"]


#: Output coercions of built-in scalars -> the condition on ``item`` under
#: which they return it unchanged.
_FAST_LEAVES = {
    serialize_string: "item.__class__ is str",
    serialize_id: "item.__class__ is str",
    serialize_boolean: "item.__class__ is bool",
    serialize_int: f"item.__class__ is int and {GRAPHQL_MIN_INT} <= item <= {GRAPHQL_MAX_INT}",
    serialize_float: "item.__class__ is float and item - item == 0.0",  # finite
}


_ISOFORMAT = isoformat_serializer()


def _identifier(name: str) -> str:
    if not name.isidentifier():  # never for a Python attribute name; refuse anything else
        raise ValueError(f"not an attribute name: {name!r}")
    return name


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
