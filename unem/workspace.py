"""The workspace: one folder holding the database, volumes, jobs, meshes and models.

Nothing outside it is written. Every path a user names (an import source, an export
target) is resolved here, so no request can reach outside the workspace or the folders
the admin allowed for imports.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

from sqlite_utils import Database

from unem.db import open_database
from unem.errors import PathRefused

FOLDERS = ("volumes", "jobs", "meshes", "models", "exports", "tmp")
TMP_PREFIX = ".tmp-"


class Workspace:
    """A workspace folder; `db` gives each thread its own connection to the same database."""

    def __init__(self, root: Path, import_roots: Iterable[Path] = ()) -> None:
        self.root = Path(root).expanduser().resolve()
        self.import_roots = tuple(Path(p).expanduser().resolve() for p in import_roots)
        for folder in FOLDERS:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.db  # create and migrate at once, so errors surface at start-up

    @property
    def db(self) -> Database:
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            db = open_database(self.root / "unem.sqlite")
            self._local.db = db
        return db

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def dataset_dir(self, dataset_id: str) -> Path:
        return self.volumes / dataset_id

    def new_tmp_dir(self, parent: Path | None = None) -> Path:
        """A fresh folder for work that becomes visible only when renamed into place."""
        path = (parent or self.root / "tmp") / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def secret_key(self) -> bytes:
        """The key that signs session cookies; kept so logins survive a restart."""
        path = self.root / "secret.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())

    def recover(self, known_datasets: Iterable[str]) -> list[Path]:
        """Remove what a crash left half-done: temporary folders and unregistered volumes."""
        known = set(known_datasets)
        leftovers = [p for p in (self.root / "tmp").iterdir() if p.name.startswith(TMP_PREFIX)]
        leftovers += [p for p in self.volumes.iterdir() if p.is_dir() and p.name not in known]
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        return leftovers

    def resolve(self, user_path: str | Path, *, allow_import_roots: bool = True) -> Path:
        """Resolve a path a user named; refuse it unless it lies inside an allowed folder.

        Relative paths are taken from the workspace. Symbolic links are followed before the
        check, so a link pointing out of the workspace is refused too.
        """
        raw = Path(user_path).expanduser()
        candidate = (raw if raw.is_absolute() else self.root / raw).resolve()
        roots = (self.root, *self.import_roots) if allow_import_roots else (self.root,)
        if any(candidate == root or candidate.is_relative_to(root) for root in roots):
            return candidate
        allowed = ", ".join(str(r) for r in roots)
        raise PathRefused(f"{user_path} is outside the folders this server may read ({allowed}).")
