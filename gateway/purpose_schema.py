"""A schema per purpose of use: what introspection shows a caller.

GraphiQL's docs, completion and linting are built from introspection, so a
developer is led to a query that will be allowed when introspection answers
with the schema of the caller's declared purpose: only the fields the
purpose may use (outright, or with the data subject's authorization), each
field's description extended with its data item and disclosure class,
whether it needs the subject's authorization (and for which category),
whether it is masked and which row rules withhold records of its list.
Types no longer reachable from the query root disappear; the arguments,
enums, scalars, input types and interfaces of what remains are those of
the gateway's schema.

``purpose_schema`` builds that view with graphql-core's public API (copies
of the object and interface types with a subset of their fields; scalars,
enums, input types and directives are the gateway's own objects) and
checks it with ``validate_schema``. ``full=True`` keeps every field, each
described for the purpose (a denied field says so): the view of a client
whose registry entry has ``full_schema = true``. The policy's ``Decision``
is the only source of what a purpose may use.

``PurposeSchemas`` keeps one view per (purpose, full), built on first use
and reused by every request; ``gateway.enforcement.PurposePolicy`` executes
introspection operations (only ``__schema``, ``__type`` and ``__typename``
at the root) against it, and ``credit-gateway export-schema --purpose CODE``
prints it as SDL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    print_schema,
    validate_schema,
)

from core.errors import ConfigurationError
from gateway.catalog import Catalog, Item, RowRule
from gateway.policy import Decision, Policy

def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _rule_text(rule: RowRule, purpose: str) -> str:
    """What ``rule`` withholds for ``purpose``, in a sentence."""
    o = rule.options
    if rule.kind == "publicity_window":
        months = ", ".join(f"{severity} {n}" for severity, n in o["max_months"].items())
        text = (f"only records within their publicity window (months from the decision: "
                f"{months}; a department's earlier end date counts) and not repaired")
        if purpose in o["public_purposes"] and o["not_public"]:
            text += f"; {', '.join(sorted(o['not_public']))} records are never disclosed"
        return text
    if rule.kind == "active_period":
        return "only entries not removed" + (" or expired" if o.get("expires") else "") + \
            " by today (in China)"
    allowed = ", ".join(sorted(o["allowed"][purpose]))
    return f"only records whose `{_camel(o['attribute'])}` is {allowed}"


def field_note(catalog: Catalog, decision: Decision, item: Item | None, coordinate: str,
               record_type: str | None) -> str:
    """What ``decision`` does with the field ``coordinate``, in Markdown (GraphiQL
    renders descriptions so), for the end of its description."""
    purpose = decision.purpose
    lines = [f"**Policy for {purpose.code}** ({purpose.name}):"]
    if item is not None:
        lines.append(f"- data item `{item.id}` ({item.name}), disclosure class "
                     f"`{item.disclosure_class}`")
    if coordinate in decision.allowed:
        lines.append("- allowed for this purpose")
    elif coordinate in decision.authorized:
        category_id = decision.authorized[coordinate]
        category = catalog.categories.get(category_id)
        named = f"`{category_id}`" + (f" ({category.name})" if category else "")
        lines.append(f"- needs the subject's authorization: released only for an enterprise "
                     f"that authorized your organization for data category {named}; "
                     f"otherwise withheld")
    else:
        lines.append("- DENIED for this purpose: selecting it answers null with a "
                     "`FORBIDDEN_FOR_PURPOSE` error (or rejects the operation, for clients "
                     "registered so)")
    if decision.permits(coordinate) and coordinate in decision.masks:
        mask = decision.masks[coordinate]
        lines.append(f"- masked: resident ID numbers keep only their first {mask.keep_start} "
                     f"and last {mask.keep_end} characters")
    row_filter = decision.row_filters.get(record_type) if record_type else None
    if row_filter is not None and decision.permits(coordinate):
        rules = "; ".join(f"`{rule_id}`: {_rule_text(catalog.rows[rule_id], purpose.code)}"
                          for rule_id in row_filter.rules)
        lines.append(f"- row rules: {rules}; withheld records are counted in "
                     f"`extensions.policy.withheldRecords`")
    return "\n".join(lines)


def _describe(description: str | None, note: str) -> str:
    return f"{description}\n\n{note}" if description else note


class _View:
    """Which fields of which types one view keeps (computed before any copy)."""

    def __init__(self, schema: GraphQLSchema, decision: Decision, full: bool) -> None:
        self.schema = schema
        self.objects = {name: t for name, t in schema.type_map.items()
                        if isinstance(t, GraphQLObjectType) and not name.startswith("__")}
        self.fields: dict[str, list[str]] = {
            name: [f for f in t.fields if full or decision.permits(f"{name}.{f}")]
            for name, t in self.objects.items()}
        while self._drop_dead_ends():
            pass
        self.interface_fields: dict[str, list[str]] = {}
        self.types = self._reachable()

    def _implementers(self, interface: GraphQLInterfaceType) -> list[str]:
        return [t.name for t in self.schema.get_possible_types(interface)
                if isinstance(t, GraphQLObjectType) and self.fields.get(t.name)]

    def _interface_fields(self, interface: GraphQLInterfaceType) -> list[str]:
        """The interface's fields every implementer still has (all of them
        where no implementer is left)."""
        implementers = self._implementers(interface)
        return [f for f in interface.fields
                if all(f in self.fields[name] for name in implementers)]

    def usable(self, type_: Any) -> bool:
        named = get_named_type(type_)
        if isinstance(named, GraphQLObjectType):
            return bool(self.fields.get(named.name))
        if isinstance(named, GraphQLInterfaceType):
            return bool(self._interface_fields(named))
        if isinstance(named, GraphQLUnionType):
            return any(self.fields.get(t.name) for t in named.types)
        return True

    def _drop_dead_ends(self) -> bool:
        """Drop fields leading to a type with nothing left; whether any was."""
        changed = False
        for name, kept in self.fields.items():
            usable = [f for f in kept if self.usable(self.objects[name].fields[f].type)]
            if usable != kept:
                self.fields[name] = usable
                changed = True
        return changed

    def _reachable(self) -> dict[str, GraphQLNamedType]:
        """The named types reachable from the root types through kept fields
        (with their arguments): their types, the interfaces an object type
        implements, and the possible types of an abstract type some field
        returns (an interface that is only implemented brings no others)."""
        found: dict[str, GraphQLNamedType] = {}
        expanded: set[str] = set()  # abstract types whose possible types are in
        roots = [self.schema.query_type, self.schema.mutation_type, self.schema.subscription_type]
        pending: list[tuple[Any, bool]] = [  # (type, whether a field returns it)
            (t, True) for t in roots if t is not None and self.fields.get(t.name)]
        for directive in self.schema.directives:
            pending.extend((arg.type, True) for arg in directive.args.values())

        def field_types(field: GraphQLField) -> list[tuple[Any, bool]]:
            return [(field.type, True), *((arg.type, True) for arg in field.args.values())]

        while pending:
            type_, returned = pending.pop()
            named = get_named_type(type_)
            if returned and named.name not in expanded and isinstance(
                    named, (GraphQLInterfaceType, GraphQLUnionType)):
                expanded.add(named.name)
                possible = (self._implementers(named) if isinstance(named, GraphQLInterfaceType)
                            else [t.name for t in named.types if self.fields.get(t.name)])
                pending.extend((self.objects[name], True) for name in possible)
            if named.name in found:
                continue
            found[named.name] = named
            if isinstance(named, GraphQLObjectType):
                for name in self.fields[named.name]:
                    pending.extend(field_types(named.fields[name]))
                pending.extend((i, False) for i in named.interfaces if self.usable(i))
            elif isinstance(named, GraphQLInterfaceType):
                names = self.interface_fields[named.name] = self._interface_fields(named)
                for name in names:
                    pending.extend(field_types(named.fields[name]))
                pending.extend((i, False) for i in named.interfaces if self.usable(i))
            elif isinstance(named, GraphQLInputObjectType):
                pending.extend((field.type, True) for field in named.fields.values())
        return found


def purpose_schema(schema: GraphQLSchema, catalog: Catalog, decision: Decision,
                   record_types: Mapping[str, str], full: bool = False) -> GraphQLSchema:
    """The view of ``schema`` for ``decision``'s purpose (see the module's
    docstring); ``record_types`` maps source-backed coordinates to the record
    type they load (which row rules apply). ``ConfigurationError`` when the
    view would not be a valid schema."""
    view = _View(schema, decision, full)
    item_of = catalog.item_of()
    copies: dict[str, GraphQLNamedType] = {}

    def ref(type_: Any) -> Any:
        if isinstance(type_, GraphQLNonNull):
            return GraphQLNonNull(ref(type_.of_type))
        if isinstance(type_, GraphQLList):
            return GraphQLList(ref(type_.of_type))
        return copies[type_.name]

    def copy_field(field: GraphQLField, description: str | None) -> GraphQLField:
        args = {name: GraphQLArgument(**{**arg.to_kwargs(), "type_": ref(arg.type)})
                for name, arg in field.args.items()}
        return GraphQLField(**{**field.to_kwargs(), "type_": ref(field.type), "args": args,
                               "description": description})

    def object_fields(original: GraphQLObjectType) -> Any:
        def thunk() -> dict[str, GraphQLField]:
            fields = {}
            for name in view.fields[original.name]:
                coordinate = f"{original.name}.{name}"
                field = original.fields[name]
                fields[name] = copy_field(field, _describe(field.description, field_note(
                    catalog, decision, item_of.get(coordinate), coordinate,
                    record_types.get(coordinate))))
            return fields
        return thunk

    def interfaces(original: Any) -> Any:
        return lambda: [copies[i.name] for i in original.interfaces if i.name in copies]

    for name, original in view.types.items():
        if isinstance(original, GraphQLObjectType):
            description = original.description
            if original is schema.query_type:
                description = _describe(description, (
                    f"The schema for purpose {decision.purpose.code} ({decision.purpose.name}): "
                    + ("every field, each described with what this purpose may do with it."
                       if full else "only the fields this purpose may use, each described "
                       "with what the policy does with it.")))
            copies[name] = GraphQLObjectType(**{
                **original.to_kwargs(), "fields": object_fields(original),
                "interfaces": interfaces(original), "description": description,
                "ast_node": None, "extension_ast_nodes": ()})
        elif isinstance(original, GraphQLInterfaceType):
            names = view.interface_fields[name]
            copies[name] = GraphQLInterfaceType(**{
                **original.to_kwargs(),
                "fields": (lambda o=original, n=names: {
                    f: copy_field(o.fields[f], o.fields[f].description) for f in n}),
                "interfaces": interfaces(original), "ast_node": None,
                "extension_ast_nodes": ()})
        elif isinstance(original, GraphQLUnionType):
            copies[name] = GraphQLUnionType(**{
                **original.to_kwargs(),
                "types": (lambda o=original: [copies[t.name] for t in o.types
                                              if t.name in copies]),
                "ast_node": None, "extension_ast_nodes": ()})
        else:  # scalars, enums and input types are not filtered: the gateway's own
            copies[name] = original

    def root(type_: Any) -> Any:
        return copies.get(type_.name) if type_ is not None else None

    filtered = GraphQLSchema(
        query=root(schema.query_type), mutation=root(schema.mutation_type),
        subscription=root(schema.subscription_type),
        # In the full schema's order (the query root's fields as written: GraphiQL's
        # docs and introspection list the record types first).
        types=[copies[name] for name in schema.type_map
               if name in copies and not name.startswith("__")],
        directives=schema.directives, description=schema.description,
        extensions=schema.extensions)
    errors = validate_schema(filtered)
    if errors:
        raise ConfigurationError(
            f"the schema for purpose {decision.purpose.code} is not a valid GraphQL schema: "
            + "; ".join(error.message for error in errors[:5]))
    return filtered


class PurposeSchemas:
    """One view of ``schema`` per (purpose, full), built on first use and kept
    for the process (every request of that purpose gets the same object)."""

    def __init__(self, schema: GraphQLSchema, policy: Policy,
                 record_types: Mapping[str, str]) -> None:
        self.schema = schema
        self.policy = policy
        self.record_types = dict(record_types)
        self._views: dict[tuple[str, bool], GraphQLSchema] = {}

    def get(self, purpose: str, full: bool = False) -> GraphQLSchema:
        """The view for ``purpose`` (``KeyError`` for a purpose the catalog lacks)."""
        key = (purpose, full)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = purpose_schema(
                self.schema, self.policy.catalog, self.policy.decisions[purpose],
                self.record_types, full)
        return view

    def sdl(self, purpose: str, full: bool = False) -> str:
        """The view as SDL, descriptions included (``export-schema --purpose``)."""
        return print_schema(self.get(purpose, full)) + "\n"

    def build_all(self, purposes: Iterable[str] | None = None) -> None:
        """Build every view now (``ConfigurationError`` for one that is not valid)."""
        for purpose in purposes if purposes is not None else self.policy.decisions:
            self.get(purpose, False)
            self.get(purpose, True)


def purpose_schemas(policy: Policy) -> PurposeSchemas:
    """The views of the gateway's schema under ``policy``."""
    from gateway.schema import graphql_schema, source_record_types

    return PurposeSchemas(graphql_schema(), policy, source_record_types())
