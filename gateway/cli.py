"""The ``credit-gateway`` command.

Other packages add subcommands through the ``credit_gateway.commands``
entry-point group: each entry is a function taking the subparsers object
(the demo registers ``demo`` and ``token`` so; the gateway imports no demo).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from core.errors import ConfigurationError
from gateway.cli_audit import register_audit_commands
from gateway.cli_operations import register_operation_commands, stale_views

DEFAULT_DATA_DIR = Path("demo-data")  # where `credit-gateway demo` writes its configuration
COMMAND_PLUGINS = "credit_gateway.commands"


def serve(config_path: Path, host: str, port: int,
          partners: list[tuple[str, object, int]] = (), workers: int = 1,
          graceful_seconds: float | None = None) -> int:
    """Serve the gateway of ``config_path`` (and any ``(name, app, port)`` beside it);
    ``workers`` > 1: that many processes of the packaged factory (``gateway.server``,
    no partners beside them). On SIGTERM, requests in flight get ``graceful_seconds``."""
    import asyncio

    import uvicorn

    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.server import DEFAULT_GRACEFUL_SECONDS, serve_workers
    from gateway.settings import load_settings

    configure_logging()  # JSON lines (gateway.logs); uvicorn's loggers go through it too
    graceful = DEFAULT_GRACEFUL_SECONDS if graceful_seconds is None else graceful_seconds
    if workers > 1:
        if partners:
            raise ValueError("partner simulators run beside one worker only")
        return serve_workers(config_path, host, port, workers, graceful)
    settings = load_settings(config_path)
    servers = [uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port,
                                             log_level="info", access_log=False,
                                             timeout_graceful_shutdown=graceful,
                                             log_config=None))]
    for _, app, partner_port in partners:
        servers.append(uvicorn.Server(uvicorn.Config(app, host=host, port=partner_port,
                                                     log_level="warning", access_log=False,
                                                     log_config=None)))

    async def serve_all() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(serve_all())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(args.config, args.host, args.port, workers=args.workers,
                 graceful_seconds=args.graceful_timeout)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def cmd_export_schema(args: argparse.Namespace) -> int:
    """The SDL of the gateway's schema, or (``--purpose``) of the view that
    purpose's callers introspect (``gateway.purpose_schema``)."""
    if args.purpose is None:
        if args.full:
            print("credit-gateway: --full needs --purpose", file=sys.stderr)
            return 2
        from gateway.schema import export_sdl

        sys.stdout.write(export_sdl())
        return 0
    from gateway.purpose_schema import purpose_schemas

    policy = _policy(args)
    if args.purpose not in policy.decisions:
        print(f"credit-gateway: unknown purpose {args.purpose!r}; valid: "
              f"{', '.join(policy.catalog.purposes)}", file=sys.stderr)
        return 2
    sys.stdout.write(purpose_schemas(policy).sdl(args.purpose, args.full))
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


def _policy(args: argparse.Namespace):
    from gateway.catalog import load_catalog
    from gateway.schema import build_policy

    path = args.catalog
    if path is None and args.config is not None and Path(args.config).exists():
        path = _settings(args).policy_file or None
    return build_policy(load_catalog(path))


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gateway.purpose_schema import purpose_schemas

    policy = _policy(args)
    purpose_schemas(policy).build_all()  # what introspection answers, for every purpose
    fields = sum(len(item.fields) for item in policy.catalog.items.values())
    print(f"policy catalog OK: {len(policy.catalog.purposes)} purposes, "
          f"{len(policy.catalog.items)} items covering all {fields} fields of the schema, "
          f"{len(policy.catalog.rows)} row rules, {len(policy.catalog.masks)} masks")
    views = stale_views(args, policy)
    if views is None:
        return 0
    checked, stale, lines = views
    for line in lines:
        print(line)
    if stale:
        print(f"{stale} stored view(s) can no longer "
              f"run under any purpose their client is granted: change them (`credit-gateway "
              f"views`) or the catalog")
        return 1
    print(f"stored views OK: each of the {checked} stored operations runs under a purpose "
          f"of its clients")
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


def cmd_graphiql_assets(args: argparse.Namespace) -> int:
    """Fetch GraphiQL's files (pinned npm packages, integrity-checked) into the
    configured ``graphiql_assets`` directory or ``--dir`` (``gateway.graphiql``)."""
    from gateway.graphiql import PACKAGES, AssetsError, assets_problem, fetch_assets

    directory = args.dir
    if directory is None:
        if not Path(args.config).exists():
            print(f"credit-gateway: no configuration {args.config}: name one with --config, "
                  f"or the directory with --dir", file=sys.stderr)
            return 2
        directory = Path(_settings(args).graphiql_assets)
    versions = ", ".join(f"{p.name} {p.version}" for p in PACKAGES)
    problem = assets_problem(directory)
    if args.check:
        if problem is None:
            print(f"GraphiQL's files are in {directory} ({versions})")
            return 0
        print(f"credit-gateway: {directory}: {problem}", file=sys.stderr)
        return 1
    if problem is None and not args.force:
        print(f"GraphiQL's files are already in {directory} ({versions}); --force fetches "
              f"them again")
        return 0
    try:
        fetch_assets(directory, registry=args.registry, tarballs=args.tarballs, log=print)
    except AssetsError as exc:
        print(f"credit-gateway: GraphiQL's files were not installed: {exc}", file=sys.stderr)
        return 1
    print(f"GraphiQL's files are in {directory} ({versions}), every tarball's integrity checked")
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
    serve.add_argument("--workers", type=_at_least_one, default=1, metavar="N",
                       help="worker processes on the one port (default 1); with more than "
                       "one, set [limits] storage_url to share the rate limits")
    serve.add_argument("--graceful-timeout", type=_seconds, default=None, metavar="SECONDS",
                       help="on SIGTERM, how long requests in flight may take to finish "
                       "before they are cancelled (default 25)")
    serve.set_defaults(handler=cmd_serve)

    default_config = os.environ.get("CREDIT_GATEWAY_CONFIG", str(DEFAULT_DATA_DIR / "gateway.toml"))
    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--purpose", metavar="CODE",
                        help="the schema that purpose's callers introspect: only the fields it "
                        "may use, each described with what the policy does with it")
    export.add_argument("--full", action="store_true",
                        help="with --purpose: every field, each described for the purpose "
                        "(what a client with full_schema = true introspects)")
    export.add_argument("--catalog", type=Path, default=None,
                        help="policy catalog (default: the configuration's, else the packaged one)")
    export.add_argument("--config", type=Path, default=default_config)
    export.set_defaults(handler=cmd_export_schema)

    clients = commands.add_parser("clients", help="list the registered clients and their purposes")
    clients.add_argument("--config", type=Path, default=default_config)
    clients.set_defaults(handler=cmd_clients)

    register_audit_commands(commands, default_config)
    register_operation_commands(commands, default_config)

    policy = commands.add_parser("policy", help="check or explain the purpose-of-use policy")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    for name, handler, help_text in (
        ("check", cmd_policy_check, "validate the policy catalog against the schema, and "
         "report the stored views (operations) no purpose of their client may run any more "
         "(exit 1)"),
        ("explain", cmd_policy_explain, "what a purpose may see, field by field"),
    ):
        sub = policy_commands.add_parser(name, help=help_text)
        sub.add_argument("--catalog", type=Path, default=None,
                         help="policy catalog (default: the configuration's, else the packaged one)")
        sub.add_argument("--config", type=Path, default=default_config)
        if name == "explain":
            sub.add_argument("--purpose", required=True, help="purpose code, e.g. FINANCING")
        sub.set_defaults(handler=handler)

    assets = commands.add_parser(
        "graphiql-assets", help="fetch GraphiQL's files (pinned npm packages, integrity "
        "checked) into the graphiql_assets directory, so the IDE needs no internet access")
    assets.add_argument("--config", type=Path, default=default_config,
                        help="whose graphiql_assets directory to fill (without --dir)")
    assets.add_argument("--dir", type=Path, default=None,
                        help="the directory (default: the configuration's graphiql_assets)")
    assets.add_argument("--registry", default=None, metavar="URL",
                        help="an npm registry or internal mirror (default: "
                        "$NPM_CONFIG_REGISTRY, else npm's own `npm config get registry`)")
    assets.add_argument("--from", dest="tarballs", type=Path, default=None, metavar="DIR",
                        help="take the tarballs from DIR instead (as `npm pack graphiql@3.8.3 "
                        "react@18.3.1 react-dom@18.3.1` writes them): no network")
    assets.add_argument("--check", action="store_true",
                        help="only say whether the directory holds them (exit 1 if not)")
    assets.add_argument("--force", action="store_true", help="fetch them even if present")
    assets.set_defaults(handler=cmd_graphiql_assets)
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
