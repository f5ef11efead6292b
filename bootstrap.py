"""Set up UNEM on a fresh machine, then run the app or the whole test suite.

    python3 bootstrap.py run [main.py options]   # install what is missing, start the app
    python3 bootstrap.py test [pytest options]   # install what is missing, run every check

Only the standard library is used here, because nothing else is installed yet. The
virtual environment lives in `.venv/`, front-end packages in `node_modules/` (from
`package-lock.json`). Both steps are skipped when their inputs have not changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def digest(*paths: Path, extra: str = "") -> str:
    """Hash the inputs of an install step so it reruns only when they change."""
    h = hashlib.sha256(extra.encode())
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


def run(*command: str | Path) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT)


def ensure_python_packages(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on whatever python3 is
        sys.exit(f"UNEM needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        print(f"Creating the virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".unem-installed"
    wanted = digest(ROOT / "pyproject.toml", extra=extras)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    run(PYTHON, "-m", "pip", "install", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "-e", f".{extras}")
    stamp.write_text(wanted)


def ensure_web_packages() -> None:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("UNEM needs Node.js and npm to install its browser packages (https://nodejs.org).")
    stamp = ROOT / "node_modules" / ".unem-installed"
    wanted = digest(ROOT / "package-lock.json")
    if stamp.exists() and stamp.read_text() == wanted:
        return
    run(npm, "ci", "--no-audit", "--no-fund")
    stamp.write_text(wanted)


def run_app(args: list[str]) -> int:
    ensure_python_packages("")
    ensure_web_packages()
    return subprocess.call([str(PYTHON), str(ROOT / "main.py"), *args], cwd=ROOT)


def run_tests(args: list[str]) -> int:
    ensure_python_packages("[dev]")
    ensure_web_packages()
    checks = [
        [PYTHON, "-m", "ruff", "check", "."],
        [PYTHON, "-m", "mypy"],
        [BIN / "lint-imports"],
        [PYTHON, "-m", "pytest", "--run-slow", *args],
    ]
    for check in checks:
        print("+", " ".join(str(c) for c in check), flush=True)
        code = subprocess.call([str(c) for c in check], cwd=ROOT)
        if code != 0:
            return code
    return 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        print(__doc__)
        return 2
    command, args = sys.argv[1], sys.argv[2:]
    return run_app(args) if command == "run" else run_tests(args)


if __name__ == "__main__":
    raise SystemExit(main())
