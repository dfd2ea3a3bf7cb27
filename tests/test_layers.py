"""The packages form layers without cycles: each imports only the layers
below it (lazy imports inside functions count; imports for type checkers
only, under ``if TYPE_CHECKING:``, do not), and the demo plugs into the
command line from its side.

    core  <-  connectors  <-  resolvers  <-  gateway  <-  demo  <-  bench
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "connectors", "resolvers", "gateway", "demo", "bench")


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports when it runs."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def package_graph() -> dict[str, set[str]]:
    """Each layer -> the other project packages its modules import."""
    ours = set(LAYERS) | {"tests"}
    return {
        package: {imported for path in (ROOT / package).rglob("*.py")
                  for imported in imported_packages(path) & ours} - {package}
        for package in LAYERS
    }


def test_every_package_imports_only_the_layers_below_it():
    graph = package_graph()
    offenders = {
        package: sorted(imported - set(LAYERS[:LAYERS.index(package)]))
        for package, imported in graph.items()
        if imported - set(LAYERS[:LAYERS.index(package)])
    }
    assert offenders == {}


def test_the_package_graph_has_no_cycle():
    try:
        order = list(TopologicalSorter(package_graph()).static_order())
    except CycleError as cycle:  # pragma: no cover - the assertion's message
        raise AssertionError(f"import cycle between packages: {cycle.args[1]}") from None
    assert order.index("core") < order.index("connectors") < order.index("gateway")


def test_the_checker_sees_lazy_imports_and_ignores_type_checking_ones(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from gateway.context import RequestContext\n"
        "else:\n    import connectors\n"
        "def f():\n    from demo import cli\n")
    assert imported_packages(module) == {"typing", "connectors", "demo"}


def test_the_demo_adds_its_commands_through_the_entry_point():
    from demo.cli import cmd_demo, cmd_token

    parser = build_parser()
    assert parser.parse_args(["demo", "--no-partners"]).handler is cmd_demo
    assert parser.parse_args(["token", "--client", "x"]).handler is cmd_token
