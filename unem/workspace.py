"""The workspace: one folder holding the database, volumes, jobs, meshes and models.

Nothing outside it is written. Every path a user names (an import source, an export
target) is resolved here, so no request can reach outside the workspace or the folders
the admin allowed for imports.
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import threading
import uuid
import weakref
from collections.abc import Iterable
from pathlib import Path

from sqlite_utils import Database

from unem.db import open_database
from unem.errors import BadInput, PathRefused

FOLDERS = ("volumes", "jobs", "meshes", "models", "exports", "tmp")
TMP_PREFIX = ".tmp-"
MAX_LISTED = 500  # entries of one folder shown when browsing for an import


class Workspace:
    """A workspace folder; `db` gives each thread its own connection to the same database."""

    def __init__(self, root: Path, import_roots: Iterable[Path] = ()) -> None:
        self.root = Path(root).expanduser().resolve()
        self.import_roots = tuple(Path(p).expanduser().resolve() for p in import_roots)
        for folder in FOLDERS:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._idle: queue.SimpleQueue[Database] = queue.SimpleQueue()
        self._migrated = False
        _ = self.db  # create and migrate at once, so errors surface at start-up

    @property
    def db(self) -> Database:
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            db = self._idle_or_new_connection()
            self._local.db = db
            # The server runs each request and socket event on a new thread: hand the
            # connection back when the thread ends instead of opening one per request.
            weakref.finalize(threading.current_thread(), self._idle.put, db)
        return db

    def _idle_or_new_connection(self) -> Database:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            db = open_database(self.root / "unem.sqlite", migrate=not self._migrated)
            self._migrated = True
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
        try:
            raw = Path(user_path).expanduser()
            candidate = (raw if raw.is_absolute() else self.root / raw).resolve()
        except (OSError, RuntimeError, ValueError) as error:
            # a NUL byte, an unknown ~user, a symlink loop: none of these names a readable path
            raise PathRefused(f"{user_path!r} is not a usable path: {error}") from error
        roots = self.readable_roots if allow_import_roots else (self.root,)
        if any(candidate == root or candidate.is_relative_to(root) for root in roots):
            return candidate
        allowed = ", ".join(str(r) for r in roots)
        raise PathRefused(f"{user_path} is outside the folders this server may read ({allowed}).")

    @property
    def readable_roots(self) -> tuple[Path, ...]:
        """The folders users may name paths in: the workspace, then the import roots."""
        return (self.root, *self.import_roots)

    def list_folder(self, user_path: str | Path) -> list[Path]:
        """Entries of an allowed folder, folders first; hidden ones and links out are left out."""
        folder = self.resolve(user_path)
        if not folder.is_dir():
            raise BadInput(f"{user_path} is not a folder.")
        try:
            children = [p for p in folder.iterdir() if not p.name.startswith(".")]
        except OSError as error:
            raise BadInput(f"{user_path} cannot be read: {error.strerror}") from error
        allowed = [p for p in children if self.allows(p)]
        allowed.sort(key=lambda p: (not p.is_dir(), p.name.lower()))
        return allowed[:MAX_LISTED]

    def allowed_parent(self, folder: Path) -> Path | None:
        """The parent of `folder` if users may browse it, else None (the top of a root)."""
        return folder.parent if self.allows(folder.parent) else None

    def allows(self, user_path: str | Path) -> bool:
        try:
            self.resolve(user_path)
        except PathRefused:
            return False
        return True
