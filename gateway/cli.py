"""The ``credit-gateway`` command.

Other packages add subcommands through the ``credit_gateway.commands``
entry-point group: each entry is a function taking the subparsers object
(the demo registers ``demo`` and ``token`` so; the gateway imports no demo).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from core.errors import ConfigurationError

DEFAULT_DATA_DIR = Path("demo-data")  # where `credit-gateway demo` writes its configuration
COMMAND_PLUGINS = "credit_gateway.commands"


def serve(config_path: Path, host: str, port: int,
          partners: list[tuple[str, object, int]] = ()) -> int:
    """Serve the gateway of ``config_path`` (and any ``(name, app, port)`` beside it)."""
    import asyncio

    import uvicorn

    from gateway.app import create_app
    from gateway.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = load_settings(config_path)
    servers = [uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port,
                                             log_level="info", access_log=False))]
    for _, app, partner_port in partners:
        servers.append(uvicorn.Server(uvicorn.Config(app, host=host, port=partner_port,
                                                     log_level="warning", access_log=False)))

    async def serve_all() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(serve_all())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(args.config, args.host, args.port)


def cmd_export_schema(args: argparse.Namespace) -> int:
    from gateway.schema import export_sdl

    sys.stdout.write(export_sdl())
    return 0


def _settings(args: argparse.Namespace):
    from gateway.settings import load_settings

    return load_settings(args.config)


def cmd_clients(args: argparse.Namespace) -> int:
    from gateway.catalog import load_catalog
    from gateway.clients import load_clients

    settings = _settings(args)
    catalog = load_catalog(settings.policy_file or None)
    for client in load_clients(settings.auth.clients_file, catalog.purposes).values():
        columns = [client.id, client.kind.value, client.city, client.organization,
                   ", ".join(sorted(client.purposes)) or "(no purposes)"]
        if client.rejects_denied:
            columns.append("(operations with a denied field are rejected whole)")
        if client.persisted_only:
            columns.append("(persisted operations only)")
        print("\t".join(columns))
    return 0


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

    settings = _settings(args)
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
    settings = _settings(args)
    stored = _stored_operations(_operations_file(settings, args.config))
    for operation in sorted(stored.values(), key=lambda o: (o.name, o.sha256)):
        print(f"{operation.name}\t{operation.document_id}\t"
              f"{', '.join(operation.clients) or '(any client)'}")
    return 0


def cmd_operations_remove(args: argparse.Namespace) -> int:
    from gateway.operations import matching, write_operations

    settings = _settings(args)
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


def _policy(args: argparse.Namespace):
    from gateway.catalog import load_catalog
    from gateway.schema import build_policy

    path = args.catalog
    if path is None and args.config is not None and Path(args.config).exists():
        path = _settings(args).policy_file or None
    return build_policy(load_catalog(path))


def cmd_policy_check(args: argparse.Namespace) -> int:
    policy = _policy(args)
    fields = sum(len(item.fields) for item in policy.catalog.items.values())
    print(f"policy catalog OK: {len(policy.catalog.purposes)} purposes, "
          f"{len(policy.catalog.items)} items covering all {fields} fields of the schema, "
          f"{len(policy.catalog.rows)} row rules, {len(policy.catalog.masks)} masks")
    return 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from gateway.policy import explain

    policy = _policy(args)
    if args.purpose not in policy.decisions:
        print(f"credit-gateway: unknown purpose {args.purpose!r}; valid: "
              f"{', '.join(policy.catalog.purposes)}", file=sys.stderr)
        return 2
    decision = policy.decisions[args.purpose]
    print(f"Purpose {decision.purpose.code} ({decision.purpose.name})\n")
    rows = explain(policy.catalog, decision)
    width = max(len(row.coordinate) for row in rows)
    for row in rows:
        notes = []
        if row.authorization_category:
            notes.append(f"needs the subject's authorization for {row.authorization_category}")
        if row.masked:
            notes.append("masked")
        print(f"{row.coordinate:<{width}}  {row.access:<22}  {row.item} ({row.disclosure_class})"
              + (f"  [{'; '.join(notes)}]" if notes else ""))
    print("\nRow rules:")
    for record_type, row_filter in sorted(decision.row_filters.items()):
        print(f"  {record_type}: {', '.join(row_filter.rules)}")
    if not decision.row_filters:
        print("  (none: every record of an allowed list is shown)")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.audit import AuditStore, AuditUnavailable

    settings = _settings(args)

    async def verify():
        store = AuditStore(settings.audit.url)
        try:
            return await store.verify()
        finally:
            await store.aclose()

    try:
        report = asyncio.run(verify())
    except AuditUnavailable as exc:
        print(f"credit-gateway: the audit trail cannot be read: {exc}", file=sys.stderr)
        return 2
    if report.ok:
        print(f"audit trail OK: {report.records} records, hash chain intact")
        return 0
    print(f"audit trail TAMPERED at record {report.seq}: {report.problem} "
          f"({report.records} records checked before it)")
    return 1


def cmd_audit_prune(args: argparse.Namespace) -> int:
    """Remove the records older than ``retention_days`` (``--dry-run``: only
    count them), after verifying the trail: a tampered trail is not pruned (exit 1)."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from gateway.audit import AuditStore, AuditUnavailable

    settings = _settings(args)
    cutoff = datetime.now(UTC) - timedelta(days=settings.audit.retention_days)

    async def prune():
        store = AuditStore(settings.audit.url)
        try:
            report = await store.verify()
            if not report.ok:
                return report, None
            return report, await store.prune(cutoff, dry_run=args.dry_run)
        finally:
            await store.aclose()

    try:
        verified, pruned = asyncio.run(prune())
    except AuditUnavailable as exc:
        print(f"credit-gateway: the audit trail cannot be pruned: {exc}", file=sys.stderr)
        return 2
    if pruned is None:
        print(f"audit trail TAMPERED at record {verified.seq}: {verified.problem}; "
              f"nothing was pruned")
        return 1
    when = f"recorded before {cutoff.isoformat(timespec='seconds')}"
    if not pruned.removed:
        print(f"nothing to prune: no record {when} ({settings.audit.retention_days} days)")
        return 0
    first = pruned.anchor_seq - pruned.removed + 1
    print(f"{'would remove' if args.dry_run else 'removed'} {pruned.removed} records "
          f"({first}..{pruned.anchor_seq}) {when}; "
          f"{'the anchor would be' if args.dry_run else 'anchor now'} record "
          f"{pruned.anchor_seq}, hash {pruned.anchor_hash}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credit-gateway",
        description="GraphQL gateway for Huizhou's shared public credit information.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the sources of a configuration file")
    serve.add_argument(
        "--config", type=Path, default=os.environ.get("CREDIT_GATEWAY_CONFIG"),
        required="CREDIT_GATEWAY_CONFIG" not in os.environ,
        help="TOML configuration (default: $CREDIT_GATEWAY_CONFIG)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=cmd_serve)

    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.set_defaults(handler=cmd_export_schema)

    default_config = os.environ.get("CREDIT_GATEWAY_CONFIG", str(DEFAULT_DATA_DIR / "gateway.toml"))
    clients = commands.add_parser("clients", help="list the registered clients and their purposes")
    clients.add_argument("--config", type=Path, default=default_config)
    clients.set_defaults(handler=cmd_clients)

    audit = commands.add_parser("audit", help="the access audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="walk the hash chain and report the first altered, inserted or "
        "deleted record (exit 1)")
    verify.add_argument("--config", type=Path, default=default_config)
    verify.set_defaults(handler=cmd_audit_verify)
    prune = audit_commands.add_parser(
        "prune", help="remove the records older than retention_days (the oldest first, "
        "recorded in the trail); --dry-run only counts them")
    prune.add_argument("--config", type=Path, default=default_config)
    prune.add_argument("--dry-run", action="store_true", help="change nothing, report only")
    prune.set_defaults(handler=cmd_audit_prune)

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

    policy = commands.add_parser("policy", help="check or explain the purpose-of-use policy")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    for name, handler, help_text in (
        ("check", cmd_policy_check, "validate the policy catalog against the schema"),
        ("explain", cmd_policy_explain, "what a purpose may see, field by field"),
    ):
        sub = policy_commands.add_parser(name, help=help_text)
        sub.add_argument("--catalog", type=Path, default=None,
                         help="policy catalog (default: the configuration's, else the packaged one)")
        sub.add_argument("--config", type=Path, default=default_config)
        if name == "explain":
            sub.add_argument("--purpose", required=True, help="purpose code, e.g. FINANCING")
        sub.set_defaults(handler=handler)
    for plugin in entry_points(group=COMMAND_PLUGINS):
        plugin.load()(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigurationError as exc:
        print(f"credit-gateway: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
