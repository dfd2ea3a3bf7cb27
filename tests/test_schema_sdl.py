"""``schema.graphql`` at the project root is the exported SDL of the code."""

from pathlib import Path

from gateway.cli import main
from gateway.schema import export_sdl

SDL_PATH = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_graphql_is_identical_to_the_code():
    assert SDL_PATH.read_text(encoding="utf-8") == export_sdl(), (
        "schema.graphql is stale: run `credit-gateway export-schema > schema.graphql`"
    )


def test_export_schema_command_prints_the_sdl(capsys):
    assert main(["export-schema"]) == 0
    assert capsys.readouterr().out == export_sdl()
