"""The ``credit-gateway operations`` and ``views`` subcommands: the
persisted-operation store (``gateway/operations.py``) from the command line,
and the stale-view report of ``policy check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import ConfigurationError


def load_settings(config: Path):
    from gateway.settings import load_settings as load

    return load(config)


def _operations_file(settings, config: Path) -> Path:
    if not settings.operations_file:
        raise ConfigurationError(f"{config}: no operations_file in [gateway]: set one (a path "
                                 f"relative to the configuration) to keep persisted operations")
    return Path(settings.operations_file)


def _stored_operations(path: Path, create: bool = False) -> dict:
    from gateway.operations import read_operations

    if create and not path.exists():
        return {}
    return read_operations(path)


def cmd_operations_add(args: argparse.Namespace) -> int:
    """Validate a document against the schema and register it in the
    configured operations file (created if absent)."""
    from graphql import GraphQLError, parse, validate

    from gateway.catalog import load_catalog
    from gateway.clients import load_clients
    from gateway.operations import added, operation_of, write_operations
    from gateway.schema import graphql_schema

    settings = load_settings(args.config)
    path = _operations_file(settings, args.config)
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"credit-gateway: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    clients = list(dict.fromkeys(args.client or ()))
    registry = load_clients(settings.auth.clients_file,
                            load_catalog(settings.policy_file or None).purposes)
    unknown = [c for c in clients if c not in registry]
    if unknown:
        print(f"credit-gateway: no client {', '.join(map(repr, unknown))} in the registry; "
              f"see `credit-gateway clients`", file=sys.stderr)
        return 1
    try:
        operation = operation_of(text, args.name, clients, where=str(args.file))
        errors = validate(graphql_schema(), parse(text))
    except (ConfigurationError, GraphQLError) as exc:
        print(f"credit-gateway: {exc}", file=sys.stderr)
        return 1
    if errors:
        for error in errors:
            where = ", ".join(f"line {loc.line}, column {loc.column}"
                              for loc in error.locations or ())
            print(f"{args.file}: {error.message}" + (f" ({where})" if where else ""),
                  file=sys.stderr)
        print(f"credit-gateway: {args.file} does not validate against the schema: not added",
              file=sys.stderr)
        return 1
    stored = _stored_operations(path, create=True)
    if stored.get(operation.sha256) == operation:
        print(f"already registered: {operation.name}\t{operation.document_id}")
        return 0
    try:
        updated = added(stored, operation)
    except ConfigurationError as exc:
        print(f"credit-gateway: {exc}", file=sys.stderr)
        return 1
    write_operations(path, updated.values())
    print(f"added {operation.name}\t{operation.document_id}\t"
          f"{', '.join(operation.clients) or '(any client)'}")
    return 0


def cmd_operations_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    stored = _stored_operations(_operations_file(settings, args.config))
    for operation in sorted(stored.values(), key=lambda o: (o.name, o.sha256)):
        print(f"{operation.name}\t{operation.document_id}\t"
              f"{', '.join(operation.clients) or '(any client)'}")
    return 0


def cmd_operations_remove(args: argparse.Namespace) -> int:
    from gateway.operations import matching, write_operations

    settings = load_settings(args.config)
    path = _operations_file(settings, args.config)
    stored = _stored_operations(path)
    found = matching(stored, args.operation)
    if not found:
        print(f"credit-gateway: no persisted operation {args.operation!r} in {path}",
              file=sys.stderr)
        return 1
    if len(found) > 1:
        print(f"credit-gateway: {len(found)} operations are named {args.operation!r} (for "
              f"different clients): remove one by its hash, "
              f"{', '.join(o.document_id for o in found)}", file=sys.stderr)
        return 1
    (operation,) = found
    write_operations(path, [o for o in stored.values() if o.sha256 != operation.sha256])
    print(f"removed {operation.name}\t{operation.document_id}")
    return 0


def _views_setting(args: argparse.Namespace):
    """(operations file, client registry, policy) of the configuration, for the views."""
    from gateway.catalog import load_catalog
    from gateway.clients import load_clients
    from gateway.schema import build_policy

    settings = load_settings(args.config)
    path = _operations_file(settings, args.config)
    catalog = load_catalog(settings.policy_file or None)
    return path, load_clients(settings.auth.clients_file, catalog.purposes), build_policy(catalog)


def _denied_per_purpose(policy, operation, purposes) -> dict[str, tuple[str, ...] | None]:
    """Purpose -> the fields of ``operation`` it denies (``None``: the document
    does not validate against the schema), for ``purposes`` in catalog order."""
    from gateway.enforcement import denied_fields
    from gateway.schema import graphql_schema

    return {purpose: denied_fields(graphql_schema(), operation.document, decision)
            for purpose, decision in policy.decisions.items() if purpose in purposes}


def _runs_under(denied: dict[str, tuple[str, ...] | None]) -> str:
    return ", ".join(p for p, fields in denied.items() if fields == ()) or \
        "(no granted purpose may run it)"


def cmd_views_list(args: argparse.Namespace) -> int:
    from gateway.operations import views_of

    path, registry, policy = _views_setting(args)
    if args.client is not None and args.client not in registry:
        print(f"credit-gateway: no client {args.client!r} in the registry; see "
              f"`credit-gateway clients`", file=sys.stderr)
        return 1
    stored = _stored_operations(path).values()
    client_ids = [args.client] if args.client else sorted({c for o in stored for c in o.clients})
    for client_id in client_ids:
        granted = registry[client_id].purposes if client_id in registry else frozenset()
        for view in views_of(stored, client_id):
            print(f"{view.name}\t{view.document_id}\t{client_id}\t"
                  f"{_runs_under(_denied_per_purpose(policy, view, granted))}")
    return 0


def cmd_views_add(args: argparse.Namespace) -> int:
    """Save each file's operation as a view of ``--client``: all of them, or
    (any file refused) none."""
    from gateway.operations import operation_of, schema_problems, with_view, write_operations
    from gateway.schema import graphql_schema

    path, registry, policy = _views_setting(args)
    client = registry.get(args.client)
    if client is None:
        print(f"credit-gateway: no client {args.client!r} in the registry; see "
              f"`credit-gateway clients`", file=sys.stderr)
        return 1
    stored = _stored_operations(path, create=True)
    updated, problems, saved = dict(stored), [], []
    for file in args.files:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"cannot read {file}: {exc}")
            continue
        try:
            operation = operation_of(text, None, (client.id,), where=str(file))
        except ConfigurationError as exc:
            problems.append(str(exc))
            continue
        invalid = schema_problems(graphql_schema(), operation)
        if invalid:
            problems += [f"{file}: {message}" for message in invalid]
            problems.append(f"{file} does not validate against the schema")
            continue
        denied = _denied_per_purpose(policy, operation, client.purposes)
        if () not in denied.values():
            problems.append(f"{file}: view {operation.name} could run under none of "
                            f"{client.id}'s purposes: " + ("; ".join(
                                f"{p} denies {', '.join(fields)}" for p, fields in denied.items())
                                or "it is granted none"))
            continue
        try:
            updated = with_view(updated, operation, client.id)
        except ConfigurationError as exc:
            problems.append(f"{file}: {exc}")
            continue
        saved.append((operation, _runs_under(denied)))
    if problems:
        for problem in problems:
            print(f"credit-gateway: {problem}", file=sys.stderr)
        print("credit-gateway: no view was added", file=sys.stderr)
        return 1
    if updated != stored:
        write_operations(path, updated.values())
    for operation, runs_under in saved:
        existing = stored.get(operation.sha256)
        done = "already saved" if existing is not None and (
            not existing.clients or client.id in existing.clients) else "added"
        print(f"{done} {operation.name}\t{operation.document_id}\t{client.id}\t{runs_under}")
    return 0


def cmd_views_remove(args: argparse.Namespace) -> int:
    from gateway.operations import without_view, write_operations

    settings = load_settings(args.config)
    path = _operations_file(settings, args.config)
    try:
        updated, view = without_view(_stored_operations(path), args.name, args.client)
    except ConfigurationError as exc:
        print(f"credit-gateway: {exc}", file=sys.stderr)
        return 1
    write_operations(path, updated.values())
    print(f"removed {view.name}\t{view.document_id}\t{args.client}")
    return 0


def stale_views(args: argparse.Namespace, policy) -> tuple[int, int, list[str]] | None:
    """(operations checked, views stale, a line per stale view and purpose) for the
    configuration's stored operations under ``policy``; ``None`` without a
    configuration or operations file. Stale: no purpose its client is granted
    may use all its fields (an operation for any client: no purpose of any
    registered client), or it no longer validates against the schema."""
    from gateway.clients import load_clients
    from gateway.operations import read_operations

    if args.config is None or not Path(args.config).exists():
        return None
    settings = load_settings(args.config)
    if not settings.operations_file:
        return None
    registry = load_clients(settings.auth.clients_file, policy.catalog.purposes)
    stored = read_operations(settings.operations_file, registry)
    lines, stale = [], 0
    for operation in sorted(stored.values(), key=lambda o: (o.name, o.sha256)):
        for client_id in operation.clients or (None,):
            granted = (registry[client_id].purposes if client_id is not None else
                       frozenset().union(*(c.purposes for c in registry.values())))
            denied = _denied_per_purpose(policy, operation, granted)
            if () in denied.values():
                continue
            stale += 1
            view = (f"stale view {operation.name} ({operation.document_id}) of client "
                    f"{client_id or '(any client)'}")
            if None in denied.values():
                lines.append(f"{view}: does not validate against the schema")
            elif not denied:
                lines.append(f"{view}: the client is granted no purpose")
            else:
                lines += [f"{view}: {purpose} denies {', '.join(fields)}"
                          for purpose, fields in denied.items()]
    return len(stored), stale, lines


def register_operation_commands(commands, default_config: str) -> None:
    """Add ``operations`` and ``views`` to the ``credit-gateway`` subparsers."""
    operations = commands.add_parser(
        "operations", help="the persisted operations of the configured operations_file")
    operation_commands = operations.add_subparsers(dest="operations_command", required=True)
    add = operation_commands.add_parser(
        "add", help="validate a GraphQL document against the schema and register it "
        "(the operations file is created if absent)")
    add.add_argument("file", type=Path, metavar="FILE.graphql",
                     help="one operation (and its fragments); its SHA-256 is of the file's text")
    add.add_argument("--client", action="append", metavar="ID",
                     help="a client allowed to run it (repeat for several; none: any client)")
    add.add_argument("--name", help="the operation's name (default: its own; required when "
                     "it is anonymous)")
    add.add_argument("--config", type=Path, default=default_config)
    add.set_defaults(handler=cmd_operations_add)
    listing = operation_commands.add_parser("list", help="name, hash and clients of each")
    listing.add_argument("--config", type=Path, default=default_config)
    listing.set_defaults(handler=cmd_operations_list)
    remove = operation_commands.add_parser("remove", help="unregister an operation")
    remove.add_argument("operation", metavar="NAME_OR_HASH",
                        help="its name, or its hash (sha256:<hex> or the hex alone)")
    remove.add_argument("--config", type=Path, default=default_config)
    remove.set_defaults(handler=cmd_operations_remove)

    views = commands.add_parser(
        "views", help="internal apps' saved views: named operations of one client in the "
        "operations_file, run by documentId")
    view_commands = views.add_subparsers(dest="views_command", required=True)
    view_list = view_commands.add_parser(
        "list", help="name, documentId, client and the client's purposes that may run each")
    view_list.add_argument("--client", metavar="ID", help="only this client's views")
    view_list.add_argument("--config", type=Path, default=default_config)
    view_list.set_defaults(handler=cmd_views_list)
    view_add = view_commands.add_parser(
        "add", help="save views of a client, each validated against the schema and run by a "
        "purpose of the client (all the files, or none)")
    view_add.add_argument("files", nargs="+", type=Path, metavar="FILE.graphql",
                          help="one named operation (and its fragments) each: the view's name "
                          "is the operation's")
    view_add.add_argument("--client", required=True, metavar="ID")
    view_add.add_argument("--config", type=Path, default=default_config)
    view_add.set_defaults(handler=cmd_views_add)
    view_remove = view_commands.add_parser("remove", help="remove a client's saved view")
    view_remove.add_argument("name", metavar="NAME")
    view_remove.add_argument("--client", required=True, metavar="ID")
    view_remove.add_argument("--config", type=Path, default=default_config)
    view_remove.set_defaults(handler=cmd_views_remove)
