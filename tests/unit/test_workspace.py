"""The workspace folder: its layout, the session key, crash recovery and path checks."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from unem.errors import BadInput, PathRefused
from unem.workspace import FOLDERS, Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "roots" / "data" / "stack").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return Workspace(tmp_path / "ws", import_roots=[tmp_path / "roots" / "data"])


def test_the_layout_is_created(ws: Workspace) -> None:
    assert all((ws.root / folder).is_dir() for folder in FOLDERS)
    assert (ws.root / "unem.sqlite").is_file()
    assert {"datasets", "layers", "users"} <= set(ws.db.table_names())


def test_each_thread_has_its_own_connection(ws: Workspace) -> None:
    connections = []
    thread = threading.Thread(target=lambda: connections.append(ws.db))
    thread.start()
    thread.join()
    assert connections[0] is not ws.db and ws.db is ws.db


def test_the_session_key_is_private_and_kept(ws: Workspace) -> None:
    key = ws.secret_key()
    assert len(key) == 32 and Workspace(ws.root).secret_key() == key
    assert stat.S_IMODE((ws.root / "secret.key").stat().st_mode) == 0o600


def test_recovery_removes_what_a_crash_left(ws: Workspace) -> None:
    half = ws.new_tmp_dir()
    (half / "image.zarr").mkdir()
    (ws.volumes / "orphan").mkdir()
    (ws.volumes / "kept").mkdir()
    removed = ws.recover(["kept"])
    assert sorted(p.name for p in removed) == sorted([half.name, "orphan"])
    assert sorted(p.name for p in ws.volumes.iterdir()) == ["kept"]
    assert list((ws.root / "tmp").iterdir()) == []


def test_paths_inside_are_resolved(ws: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "roots" / "data"
    assert ws.resolve("volumes") == ws.volumes
    assert ws.resolve(".") == ws.root
    assert ws.resolve(str(data / "stack")) == data / "stack"
    assert ws.resolve(data / "stack" / ".." / "stack") == data / "stack"
    assert ws.resolve("volumes/../exports") == ws.exports
    (ws.root / "link").symlink_to(data / "stack")
    assert ws.resolve("link") == data / "stack"


def test_paths_outside_are_refused(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (ws.root / "out").symlink_to(outside)
    (ws.volumes / "loop").symlink_to(ws.volumes / "loop")
    for path in (
        "..",
        "../outside",
        str(outside),
        "/",
        "/etc/passwd",
        "out",
        "out/x",
        str(tmp_path / "roots"),
        str(tmp_path / "roots" / "data2"),
        f"{tmp_path}/roots/data/../../outside",
        "a\0b",
        "volumes/loop",
    ):
        with pytest.raises(PathRefused):
            ws.resolve(path)
        assert not ws.allows(path)


def test_import_roots_can_be_excluded(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(PathRefused):
        ws.resolve(tmp_path / "roots" / "data", allow_import_roots=False)
    assert ws.resolve("exports", allow_import_roots=False) == ws.exports


def test_listing_a_folder_leaves_out_links_out_and_hidden_entries(
    ws: Workspace, tmp_path: Path
) -> None:
    (ws.root / "out").symlink_to(tmp_path / "outside")
    (ws.root / "in").symlink_to(ws.volumes)
    (ws.root / ".hidden").mkdir()
    (ws.root / "a.npy").write_bytes(b"")
    entries = ws.list_folder(ws.root)
    names = [p.name for p in entries]
    folders = sorted(["in", *FOLDERS])
    assert names[: len(folders)] == folders  # folders first, by name
    assert names[len(folders)] == "a.npy" and not any(p.is_dir() for p in entries[len(folders) :])
    assert "out" not in names and ".hidden" not in names
    with pytest.raises(BadInput):
        ws.list_folder("a.npy")
    with pytest.raises(PathRefused):
        ws.list_folder("out")


def test_the_top_of_each_root_has_no_parent(ws: Workspace, tmp_path: Path) -> None:
    assert ws.allowed_parent(ws.root) is None
    assert ws.allowed_parent(tmp_path / "roots" / "data") is None
    assert ws.allowed_parent(ws.volumes) == ws.root
    assert ws.allowed_parent(tmp_path / "roots" / "data" / "stack") == tmp_path / "roots" / "data"


def test_an_unreadable_folder_is_refused_with_a_message(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    # chmod cannot lock root out, and tests may run as root: simulate the refusal instead
    monkeypatch.setattr(Path, "iterdir", refuse)
    with pytest.raises(BadInput, match="cannot be read: Permission denied"):
        ws.list_folder(ws.volumes)
