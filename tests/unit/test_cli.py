"""The command line, run in-process: import, export, datasets and users; errors exit 2."""

from __future__ import annotations

import io
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.conftest import ISBI_IMAGES
from tests.unit.test_datasets import snapshot
from unem import auth
from unem.cli import main
from unem.workspace import Workspace


@pytest.fixture
def ws_dir(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def run(  # type: ignore[no-untyped-def]
    ws_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """Run `main.py ARGS --workspace WS`; return (exit code, stdout, the error line or "")."""

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*args, "--workspace", str(ws_dir)])
        out, err = capsys.readouterr()
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        return code, out, errors[0] if errors else ""

    return run


def stack_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 255, (5, 40, 30), np.uint8)
    labels = rng.integers(0, 100000, (5, 40, 30), np.uint32)
    folder = tmp_path / "image"
    folder.mkdir()
    for z, plane in enumerate(image):
        Image.fromarray(plane).save(folder / f"{z}.png")
    tifffile.imwrite(tmp_path / "labels.tif", labels, photometric="minisblack")
    return folder, tmp_path / "labels.tif", image, labels


def test_import_then_manage_and_export(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, labels_path, image, labels = stack_files(tmp_path)
    code, out, error = run(
        "import", "My stack", str(folder), "--segmentation", str(labels_path),
        "--voxel-size", "40", "4", "4",
    )  # fmt: skip
    assert (code, error) == (0, "")
    assert out == "Imported 'My stack' as dataset my-stack (5, 40, 30)\n"

    code, out, _ = run("datasets", "list")
    assert code == 0
    assert out.split() == ["my-stack", "My", "stack", "5×40×30", "image,", "segmentation"]

    code, out, _ = run("datasets", "show", "my-stack")
    assert code == 0
    assert "voxel_size   [40.0, 4.0, 4.0]" in out
    assert "segmentation   segmentation   uint32" in out

    code, out, _ = run("datasets", "rename", "my-stack", "Better name")
    assert (code, out) == (0, "Renamed dataset my-stack to 'Better name'\n")
    assert "Better name" in run("datasets")[1]  # list is the default action

    target = tmp_path / "labels.npz"
    code, out, _ = run("export", "my-stack", "segmentation", str(target), "--format", "npz")
    assert (code, out) == (0, f"Wrote {target}\n")
    np.testing.assert_array_equal(np.load(target)["stack"], labels)
    code, _, _ = run("export", "my-stack", "image", str(tmp_path / "image.tif"))  # default format
    assert code == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "image.tif"), image)

    code, out, _ = run("datasets", "delete", "my-stack")
    assert (code, out) == (0, "Deleted dataset my-stack\n")
    assert run("datasets", "list")[1] == ""


def test_key_names_the_array_inside_a_file(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with h5py.File(tmp_path / "both.h5", "w") as file:
        file["raw"] = np.zeros((2, 8, 8), np.uint16)
        file["ids"] = np.ones((2, 8, 8), np.int32)
    code, out, error = run("import", "h5", str(tmp_path / "both.h5"))
    assert (code, out) == (2, "")
    both = tmp_path / "both.h5"
    assert error == f"error: {both} holds several arrays (ids, raw); name one as key."
    code, out, _ = run(
        "import", "h5", str(tmp_path / "both.h5"), "--key", "raw",
        "--segmentation", str(tmp_path / "both.h5"), "--segmentation-key", "ids",
    )  # fmt: skip
    assert code == 0
    code, out, _ = run("datasets", "show", "h5")
    assert "image          image          uint16" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "x", "{tmp}/missing"], r"error: .*missing does not exist\."),
        (["import", "x", "{tmp}/notes.txt"], r"error: notes\.txt: unsupported file type \.txt\."),
        (
            ["import", "x", "{isbi}", "--segmentation", "{isbi}/../label"],
            r"error: The segmentation has 24 slices but the image has 30",
        ),
        (
            ["import", "x", "{isbi}", "--voxel-size", "0", "4", "4"],
            r"error: Voxel size must be three positive numbers",
        ),
        (["export", "nope", "image", "{tmp}/out.tif"], r"error: No dataset 'nope'\."),
        (["datasets", "show", "nope"], r"error: No dataset 'nope'\."),
        (["datasets", "delete", "nope"], r"error: No dataset 'nope'\."),
        (["datasets", "rename", "nope", "x"], r"error: No dataset 'nope'\."),
    ],
)
def test_errors_exit_2_and_change_nothing(
    run,
    ws_dir: Path,
    tmp_path: Path,
    data: Path,
    args: list[str],
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    (tmp_path / "notes.txt").write_text("not a stack")
    ws = Workspace(ws_dir)
    before = snapshot(ws)
    argv = [a.format(tmp=tmp_path, isbi=ISBI_IMAGES) for a in args]
    code, out, error = run(*argv)
    assert (code, out) == (2, "")
    assert error
    assert re.match(message, error), error
    assert snapshot(ws) == before


def test_bad_import_does_not_even_create_the_workspace(run, ws_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, error = run("import", "x", str(empty))
    assert (code, error) == (2, f"error: {empty} holds no PNG, TIFF or JPEG slices.")
    assert not ws_dir.exists()


def test_export_errors(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, labels_path, _, _ = stack_files(tmp_path)
    run("import", "s", str(folder), "--segmentation", str(labels_path))
    (tmp_path / "taken.tif").write_bytes(b"keep me")
    code, out, error = run("export", "s", "image", str(tmp_path / "taken.tif"))
    assert (code, out) == (2, "")
    assert error == f"error: {tmp_path / 'taken.tif'} already exists; choose another name."
    code, _, error = run("export", "s", "segmentation", str(tmp_path / "png"), "--format", "png")
    assert code == 2 and "ids up to" in error and "Export it as TIFF" in error
    code, _, error = run("export", "s", "image", str(tmp_path / "c"), "--format", "png-colour")
    assert code == 2 and "Colour PNG export is for label layers" in error
    code, _, error = run("export", "s", "prediction", str(tmp_path / "p.tif"))
    assert (code, error) == (2, "error: Dataset 's' has no layer 'prediction'.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image", "labels.tif", "taken.tif", "ws"]


def test_workspace_flag_before_or_after_the_action(
    ws_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = tmp_path / "other"
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough\n"))
    argv = ["users", "--workspace", str(other), "add", "eve", "--workspace", str(ws_dir)]
    assert main([*argv, "--password-stdin"]) == 0
    assert not other.exists()  # the flag after the action wins
    assert main(["users", "--workspace", str(ws_dir), "list"]) == 0  # before it works too
    out = capsys.readouterr().out
    assert out.split() == ["Added", "eve", "(proofreader)", "eve", "proofreader"]


def test_unknown_format_is_a_usage_error(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_info:
        run("export", "d", "image", str(tmp_path / "x"), "--format", "jpeg")
    assert exit_info.value.code == 2


def test_users(run, ws_dir: Path) -> None:  # type: ignore[no-untyped-def]
    def add(name: str, password: str, *flags: str) -> tuple[int, str, str]:
        result: tuple[int, str, str] = run(
            "users", "add", name, *flags, "--password-stdin", stdin=password + "\n"
        )
        return result

    assert add("alice", "correct horse", "--role", "viewer")[:2] == (0, "Added alice (viewer)\n")
    assert add("bob", "battery staple", "--role", "admin")[0] == 0
    code, out, _ = run("users", "list")
    assert (code, out.split()) == (0, ["alice", "viewer", "bob", "admin"])
    db = Workspace(ws_dir).db
    assert auth.authenticate(db, "alice", "correct horse") is not None
    assert auth.authenticate(db, "alice", "wrong horse!") is None

    assert add("alice", "another one")[::2] == (2, "error: A user named 'alice' already exists.")
    assert add("carol", "short")[::2] == (2, "error: A password has at least 8 characters.")
    assert add("no spaces", "long enough")[0] == 2
    assert run("users", "list")[1].split() == ["alice", "viewer", "bob", "admin"]

    assert run("users", "role", "alice", "proofreader")[:2] == (0, "alice is now proofreader\n")
    code, _, error = run("users", "role", "bob", "viewer")
    assert (code, error) == (2, "error: At least one admin must remain.")
    assert run("users", "passwd", "alice", "--password-stdin", stdin="new password\n")[0] == 0
    assert auth.authenticate(db, "alice", "new password") is not None
    assert run("users", "remove", "alice")[:2] == (0, "Removed alice\n")
    assert run("users", "remove", "alice")[::2] == (2, "error: No user named 'alice'.")
    assert run("users")[1].split() == ["bob", "admin"]
