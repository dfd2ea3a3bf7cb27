"""Set-up entry point: ``python3 -m demo`` runs the demo gateway, ``python3 -m demo test`` the tests.

Standard library only. On first use (and whenever pyproject.toml changes) it
creates ``.venv`` beside the project and installs the project with its test
dependencies there, then runs the command inside it:

    python3 -m demo [demo options]   ->  credit-gateway demo [demo options]
    python3 -m demo test [pytest options]  ->  python -m pytest [pytest options]
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / "credit-gateway-installed"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment() -> Path:
    """Create the virtual environment and install the project if needed."""
    if sys.version_info < (3, 11):
        sys.exit(f"credit-gateway needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return python
    if not python.exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    print("Installing credit-gateway and its dependencies ...", flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-e", f"{ROOT}[test]"],
        check=True,
    )
    STAMP.write_text(wanted)
    return python


def main(argv: list[str]) -> int:
    python = ensure_environment()
    os.chdir(ROOT)
    if argv[:1] == ["test"]:
        command = [str(python), "-m", "pytest", *argv[1:]]
    else:
        command = [str(python), "-m", "gateway.cli", "demo", *argv]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
