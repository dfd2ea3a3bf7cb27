"""The demo's subcommands of ``credit-gateway`` (entry point ``credit_gateway.commands``):
``demo`` creates the demo databases if absent and serves them with the partner
simulators (and names the persisted operations the demo's banks run; the first
run fetches GraphiQL's files into the data directory);
``token`` prints a demo access token for a registered client (the banks'
tokens run only those operations)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.cli import DEFAULT_DATA_DIR, serve


def cmd_demo(args: argparse.Namespace) -> int:
    from demo.federation import prepare_federation
    from demo.generate import create_demo_data, demo_operations

    print(f"Preparing demo databases in {args.data_dir} ({args.size} enterprises)...", flush=True)
    config_path = create_demo_data(args.data_dir, size=args.size, persons=args.persons)
    partners = []
    if not args.no_partners:
        federation = prepare_federation(args.data_dir, config_path, args.host, args.port,
                                        args.size, args.persons)
        config_path, partners = federation.config, federation.partners
        for name, _, port in partners:
            print(f"Partner {name}: http://{args.host}:{port}")
    print(f"Configuration: {config_path}")
    ensure_graphiql_assets(config_path)
    for operation in demo_operations():
        print(f"Persisted operation {operation.name} ({', '.join(operation.clients)}): "
              f'{{"documentId": "{operation.document_id}"}}')
    print(f"GraphQL (with GraphiQL): http://{args.host}:{args.port}/graphql", flush=True)
    return serve(config_path, args.host, args.port, partners)


def ensure_graphiql_assets(config_path: Path) -> None:
    """On the first run, GraphiQL's files (gateway/graphiql.py) into the
    configuration's ``graphiql_assets`` directory (``<data-dir>/graphiql-assets``),
    from the npm registry (or npm's ``$NPM_CONFIG_REGISTRY``). Without them the
    demo still serves, and its GraphiQL page says how to get them."""
    from gateway.graphiql import AssetsError, assets_problem, fetch_assets
    from gateway.settings import load_settings

    settings = load_settings(config_path)
    if not settings.graphiql or assets_problem(settings.graphiql_assets) is None:
        return
    print(f"Fetching GraphiQL's files into {settings.graphiql_assets} (once)...", flush=True)
    try:
        fetch_assets(settings.graphiql_assets)
    except AssetsError as exc:
        print(f"warning: GraphiQL's files could not be fetched ({exc}); the GraphiQL page "
              f"says how to provide them (`credit-gateway graphiql-assets --help`)",
              file=sys.stderr, flush=True)


def cmd_token(args: argparse.Namespace) -> int:
    from demo.issuer import ensure_signing_key, issue_token
    from gateway.catalog import load_catalog
    from gateway.clients import load_clients
    from gateway.settings import load_settings

    settings = load_settings(args.config)
    clients = load_clients(settings.auth.clients_file,
                           load_catalog(settings.policy_file or None).purposes)
    if args.client not in clients:
        print(f"credit-gateway: no client {args.client!r}; see `credit-gateway clients`",
              file=sys.stderr)
        return 2
    key, _ = ensure_signing_key(Path(settings.auth.jwks_file).parent)
    print(issue_token(key, client_id=args.client, issuer=settings.auth.issuer,
                      audience=settings.auth.audience, lifetime_seconds=args.lifetime))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="create the demo databases if absent and serve them, with the "
        "Shenzhen and Dongguan partner simulators on loopback"
    )
    demo.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    demo.add_argument("--size", type=int, default=2000, help="number of enterprises")
    demo.add_argument("--persons", type=int, default=500, help="number of natural persons")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000,
                      help="Huizhou's port; Shenzhen's is port+1, Dongguan's port+2")
    demo.add_argument("--no-partners", action="store_true",
                      help="serve Huizhou's own databases only (no partner cities)")
    demo.set_defaults(handler=cmd_demo)

    default_config = os.environ.get("CREDIT_GATEWAY_CONFIG", str(DEFAULT_DATA_DIR / "gateway.toml"))
    token = commands.add_parser("token", help="print a demo access token for a registered client")
    token.add_argument("--client", required=True, help="client id, see `credit-gateway clients`")
    token.add_argument("--config", type=Path, default=default_config)
    token.add_argument("--lifetime", type=int, default=3600, help="seconds (default 3600)")
    token.set_defaults(handler=cmd_token)
