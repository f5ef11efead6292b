"""Build the standalone bundle: `python packaging/build.py` → `dist/unem/` (one folder).

It installs what is missing (the app's `.venv` through bootstrap.py, PyInstaller from the
`bundle` extra, the npm packages from package-lock.json), runs PyInstaller on
`packaging/unem.spec`, and prints the bundle's size. Only the standard library is used, as
in bootstrap.py: this runs on whatever `python3` is. Build on each OS for that OS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bootstrap  # noqa: E402 - the repository root is on the path only now

SPEC = ROOT / "packaging" / "unem.spec"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"
BUNDLE = DIST / "unem"
MB = 10**6


def executable(bundle: Path = BUNDLE) -> Path:
    """The bundle's one program: the server, and the job worker with `--run-module`."""
    return bundle / ("unem.exe" if os.name == "nt" else "unem")


def folder_size(folder: Path) -> int:
    """Bytes of the files under `folder`; links count as links, not as what they point to."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def has_bundle_tools() -> bool:
    check = "import PyInstaller, unem"
    return subprocess.call([str(bootstrap.PYTHON), "-c", check], stderr=subprocess.DEVNULL) == 0


def ensure_packages() -> None:
    """The app's dependencies, PyInstaller and the npm packages, installed if missing."""
    if not bootstrap.PYTHON.exists():
        bootstrap.ensure_python_packages("")
    if not has_bundle_tools():
        # Not through bootstrap's stamp: `bootstrap.py test` keeps its `[dev]` install.
        bootstrap.run(bootstrap.PYTHON, "-m", "pip", "install", "-e", ".[bundle]")
    bootstrap.ensure_web_packages()


def build() -> Path:
    """Run PyInstaller on the spec; the bundle's folder."""
    ensure_packages()
    bootstrap.run(
        bootstrap.PYTHON, "-m", "PyInstaller", SPEC, "--noconfirm",
        "--distpath", DIST, "--workpath", WORK, "--log-level", "WARN",
    )  # fmt: skip
    if not executable().is_file():
        raise SystemExit(f"PyInstaller finished but {executable()} is missing")
    return BUNDLE


def main() -> int:
    started = time.monotonic()
    bundle = build()
    minutes = (time.monotonic() - started) / 60
    print(f"Built {bundle} in {minutes:.1f} min: {folder_size(bundle) / MB:.0f} MB")
    print(f"Run it: {executable(bundle)} [--workspace W] [--port P] (the options of main.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
