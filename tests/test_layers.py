"""The production packages do not reach into the demo; the demo plugs into
the command line from its side."""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("gateway", "connectors", "resolvers")


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_production_module_imports_the_demo():
    offenders = sorted(str(path.relative_to(ROOT)) for package in PRODUCTION
                       for path in (ROOT / package).rglob("*.py")
                       if {"demo", "bench", "tests"} & imported_packages(path))
    assert offenders == []


def test_the_demo_adds_its_commands_through_the_entry_point():
    from demo.cli import cmd_demo, cmd_token

    parser = build_parser()
    assert parser.parse_args(["demo", "--no-partners"]).handler is cmd_demo
    assert parser.parse_args(["token", "--client", "x"]).handler is cmd_token
