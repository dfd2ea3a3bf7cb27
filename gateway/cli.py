"""The ``credit-gateway`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gateway.errors import ConfigurationError

DEFAULT_DATA_DIR = Path("demo-data")


def _serve(config_path: Path, host: str, port: int) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import load_settings

    settings = load_settings(config_path)
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from demo.generate import create_demo_data

    print(f"Preparing demo databases in {args.data_dir} ({args.size} enterprises)...", flush=True)
    config_path = create_demo_data(args.data_dir, size=args.size, persons=args.persons)
    print(f"Configuration: {config_path}")
    print(f"GraphQL (with GraphiQL): http://{args.host}:{args.port}/graphql", flush=True)
    return _serve(config_path, args.host, args.port)


def cmd_serve(args: argparse.Namespace) -> int:
    return _serve(args.config, args.host, args.port)


def cmd_export_schema(args: argparse.Namespace) -> int:
    from resolvers.schema import export_sdl

    sys.stdout.write(export_sdl())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credit-gateway",
        description="GraphQL gateway for Huizhou's shared public credit information.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="create the demo departmental databases if absent and serve them"
    )
    demo.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    demo.add_argument("--size", type=int, default=2000, help="number of enterprises")
    demo.add_argument("--persons", type=int, default=500, help="number of natural persons")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(handler=cmd_demo)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigurationError as exc:
        print(f"credit-gateway: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
