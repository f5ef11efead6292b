"""Segment meshes: closed and true to the voxels, scaled by the voxel size, the mapping
applied, cached until an edit touches the segment, simplified per level of detail, block-wise
meshing equal to meshing each segment alone, the object table and the exports."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import unem.meshes.build as build
from tests.jobs_support import wait_for
from unem import meshes
from unem.errors import BadInput, NotFound
from unem.jobs.kinds import discover_kinds
from unem.jobs.runner import JobRunner
from unem.meshes import Mesh
from unem.meshes.cache import MeshCache
from unem.meshes.surface import mask_surface
from unem.proofread import tools
from unem.proofread.edits import Proofreader, forget_proofreader
from unem.proofread.segments import rename_segment
from unem.volumes.datasets import Dataset, get_dataset
from unem.workspace import Workspace

from .test_proofread_common import make_dataset, open_proofreader

ISOTROPIC = (8.0, 8.0, 8.0)
ANISOTROPIC = (40.0, 4.0, 4.0)  # z, y, x in nm: serial sections 10× thicker than pixels


def ball(
    shape: tuple[int, int, int], centre: tuple[float, float, float], radius: float
) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    inside: np.ndarray = (
        (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
    ) <= radius**2
    return inside


def several() -> np.ndarray:
    """Segments 1-5 of different shapes crossing each other's boxes; 6 and 7 touch."""
    labels = np.zeros((24, 30, 34), np.uint32)
    labels[ball(labels.shape, (11, 14, 15), 8)] = 1
    labels[2:20, 3:6, 2:31] = 2  # a slab crossing the ball's box
    labels[20:23, 20:29, 1:9] = 3
    labels[5, 25, 30] = 4  # a single voxel
    labels[1:4, 1:4, 28:33] = 5
    labels[15:22, 24:28, 20:26] = 6
    labels[15:22, 24:28, 26:32] = 7
    return labels


@pytest.fixture
def editors(workspace: Workspace) -> Iterator[list[Proofreader]]:
    opened: list[Proofreader] = []
    yield opened
    for editor in opened:
        forget_proofreader(workspace, editor.dataset_id)


def dataset_of(
    workspace: Workspace,
    labels: np.ndarray,
    voxel_size: tuple[float, float, float] = ISOTROPIC,
    name: str = "cells",
) -> Dataset:
    return make_dataset(workspace, labels, voxel_size=voxel_size, name=name)


def editor_of(workspace: Workspace, editors: list[Proofreader], dataset: Dataset) -> Proofreader:
    editor = open_proofreader(workspace, dataset)
    editors.append(editor)
    return editor


@pytest.fixture
def meshed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the masks meshed from the volume (each call is one mesh computed)."""
    calls: list[int] = []

    def counting(mask: np.ndarray, origin: tuple[int, int, int]) -> object:
        calls.append(int(mask.sum()))
        return mask_surface(mask, origin)

    monkeypatch.setattr(build, "mask_surface", counting)
    return calls


# ---- geometry ----

# Marching cubes puts the surface halfway between inside and outside voxel centres, on
# the voxels' faces, and cuts the staircase's corners there: the enclosed volume is a little
# below voxel count × voxel volume, never above. The loss is about 1/8 of a voxel per voxel
# edge on the surface: 0.5 % for a ball of radius 10 voxels, 1.6 % for a 10³ cube (its 12
# edges are 10 voxels long). 3 % covers both with a margin and still fails for a surface
# off by one voxel layer (a 10-voxel ball's volume changes by ~30 % per layer).
VOLUME_TOLERANCE = 0.03


@pytest.mark.parametrize("shape_name", ["ball", "cube"])
def test_a_closed_object_gives_a_watertight_mesh_enclosing_its_voxel_volume(
    workspace: Workspace, shape_name: str
) -> None:
    labels = np.zeros((26, 27, 28), np.uint32)
    if shape_name == "ball":
        labels[ball(labels.shape, (13, 13, 14), 10)] = 9
    else:
        labels[8:18, 8:18, 8:18] = 9
    dataset = dataset_of(workspace, labels)
    mesh = meshes.get_mesh(workspace, dataset.id, 9)
    assert (mesh.segment, mesh.lod, mesh.version) == (9, 0, 0)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.uint32
    assert mesh.is_watertight and mesh.to_trimesh().is_watertight
    voxel_volume = int((labels == 9).sum()) * 8.0**3
    assert voxel_volume * (1 - VOLUME_TOLERANCE) < mesh.volume <= voxel_volume
    assert mesh.volume == pytest.approx(mesh.to_trimesh().volume, rel=1e-6)
    assert mesh.surface_area == pytest.approx(mesh.to_trimesh().area, rel=1e-6)


def test_an_object_touching_the_volume_faces_is_closed_there(workspace: Workspace) -> None:
    labels = np.zeros((6, 7, 8), np.uint32)
    labels[:, :4, :] = 3  # fills the whole volume in z and x
    dataset = dataset_of(workspace, labels)
    mesh = meshes.get_mesh(workspace, dataset.id, 3)
    assert mesh.is_watertight
    np.testing.assert_array_equal(mesh.bounds, [[0, 0, 0], [64, 32, 48]])


def test_anisotropic_voxels_scale_the_mesh_along_each_axis(workspace: Workspace) -> None:
    labels = np.zeros((12, 16, 20), np.uint32)
    labels[2:8, 3:13, 4:9] = 1  # 6 slices, 10 rows, 5 columns
    isotropic = meshes.get_mesh(workspace, dataset_of(workspace, labels, (1, 1, 1), "iso").id, 1)
    stretched = meshes.get_mesh(workspace, dataset_of(workspace, labels, ANISOTROPIC).id, 1)
    # x y z order; voxel i fills [i, i+1) · size: the faces lie on the voxels' faces
    np.testing.assert_array_equal(
        stretched.bounds, [[4 * 4, 3 * 4, 2 * 40], [9 * 4, 13 * 4, 8 * 40]]
    )
    np.testing.assert_array_equal(isotropic.bounds, [[4, 3, 2], [9, 13, 8]])
    assert stretched.volume == pytest.approx(isotropic.volume * 40 * 4 * 4, rel=1e-6)
    assert stretched.is_watertight


def test_unknown_and_empty_segments_are_not_found(workspace: Workspace) -> None:
    dataset = dataset_of(workspace, several())
    for segment in (0, 99, -1):
        with pytest.raises(NotFound):
            meshes.get_mesh(workspace, dataset.id, segment)
    with pytest.raises(NotFound):
        meshes.get_mesh(workspace, "no-such-dataset", 1)
    with pytest.raises(BadInput):
        meshes.get_mesh(workspace, dataset.id, 1, lod=3)
    with pytest.raises(BadInput):
        meshes.get_mesh(workspace, dataset.id, 1, smooth=-1)


# ---- the mapping, versions and the cache ----


def test_merged_fragments_give_one_mesh_covering_both(
    workspace: Workspace, editors: list[Proofreader]
) -> None:
    dataset = dataset_of(workspace, several())
    apart = [meshes.get_mesh(workspace, dataset.id, s) for s in (6, 7)]
    editor = editor_of(workspace, editors, dataset)
    edit = editor.commit("ann", "merge", {}, tools.merge([6, 7]))
    merged = meshes.get_mesh(workspace, dataset.id, 6)
    assert merged.version == edit.version
    assert merged.is_watertight
    np.testing.assert_array_equal(merged.bounds[0], apart[0].bounds[0])
    np.testing.assert_array_equal(merged.bounds[1], apart[1].bounds[1])
    # one surface around both, the one a volume holding them as one label gives
    labels = several()
    labels[labels == 7] = 6
    union = meshes.get_mesh(workspace, dataset_of(workspace, labels, name="union").id, 6)
    assert len(merged.faces) == len(union.faces)
    np.testing.assert_array_equal(merged.bounds, union.bounds)
    assert merged.volume == pytest.approx(union.volume, rel=1e-9)
    assert merged.surface_area == pytest.approx(union.surface_area, rel=1e-9)
    assert merged.surface_area < sum(m.surface_area for m in apart) - 2 * 5 * 2 * 64
    with pytest.raises(NotFound):
        meshes.get_mesh(workspace, dataset.id, 7)
    assert meshes.touched_segments(workspace, dataset.id, 0) == {6, 7}
    assert meshes.segment_versions(workspace, dataset.id)[6] == edit.version
    assert 7 not in meshes.segment_versions(workspace, dataset.id)


def test_the_cache_is_reused_until_an_edit_touches_that_segment_only(
    workspace: Workspace, editors: list[Proofreader], meshed: list[int]
) -> None:
    dataset = dataset_of(workspace, several())
    first = {s: meshes.get_mesh(workspace, dataset.id, s) for s in (1, 3, 5)}
    cache = MeshCache(workspace, get_dataset(workspace, dataset.id))
    files = {s: cache.path(s, 0) for s in first}
    stamps = {s: p.stat().st_mtime_ns for s, p in files.items()}
    assert len(meshed) == 3
    again = meshes.get_mesh(workspace, dataset.id, 1)
    assert len(meshed) == 3 and files[1].stat().st_mtime_ns == stamps[1]
    np.testing.assert_array_equal(again.vertices, first[1].vertices)

    editor = editor_of(workspace, editors, dataset)
    paint = editor.commit("ann", "paint", {}, tools.paint(21, [(22, 10)], 2, 3))
    assert meshes.touched_segments(workspace, dataset.id, 0) == {3}
    painted = meshes.get_mesh(workspace, dataset.id, 3)
    assert len(meshed) == 4 and painted.version == paint.version
    assert painted.volume > first[3].volume
    assert not files[3].exists()  # the older version of segment 3 is gone
    for segment in (1, 5):  # not touched: still cached
        assert meshes.get_mesh(workspace, dataset.id, segment).version == 0
        assert files[segment].stat().st_mtime_ns == stamps[segment]
    assert len(meshed) == 4

    merge = editor.commit("ann", "merge", {}, tools.merge([5, 4]))
    assert meshes.touched_segments(workspace, dataset.id, paint.version) == {4, 5}
    remeshed = meshes.remesh(workspace, dataset.id, [4, 5])
    assert [(m.segment, m.version) for m in remeshed] == [(5, merge.version)]
    assert len(meshed) == 5  # only segment 5; segment 4 merged away
    assert meshes.get_mesh(workspace, dataset.id, 1).version == 0 and len(meshed) == 5
    meshes.delete_meshes(workspace, dataset.id)
    assert not (workspace.root / "meshes" / dataset.id).exists()


def test_undo_touches_the_segments_again(workspace: Workspace, editors: list[Proofreader]) -> None:
    dataset = dataset_of(workspace, several())
    editor = editor_of(workspace, editors, dataset)
    before = meshes.get_mesh(workspace, dataset.id, 6)
    editor.commit("ann", "merge", {}, tools.merge([6, 7]))
    undo = editor.undo("ann")
    restored = meshes.get_mesh(workspace, dataset.id, 6)
    assert restored.version == undo.version
    np.testing.assert_array_equal(restored.bounds, before.bounds)
    assert restored.volume == pytest.approx(before.volume)
    assert meshes.get_mesh(workspace, dataset.id, 7).version == undo.version


# ---- levels of detail and smoothing ----


def test_levels_of_detail_reduce_faces_and_stay_closed(workspace: Workspace) -> None:
    labels = np.zeros((44, 44, 44), np.uint32)
    labels[ball(labels.shape, (22, 21, 22), 19)] = 1
    dataset = dataset_of(workspace, labels, ANISOTROPIC)
    full, lod1, lod2 = (meshes.get_mesh(workspace, dataset.id, 1, lod=lod) for lod in (0, 1, 2))
    assert len(lod1.faces) < len(full.faces) / 3
    assert len(lod2.faces) < len(lod1.faces) / 2.5  # ~×12-16 in all
    for simpler in (lod1, lod2):
        assert simpler.is_watertight and simpler.lod in (1, 2)
        assert simpler.volume == pytest.approx(full.volume, rel=0.03)
    smooth = meshes.get_mesh(workspace, dataset.id, 1, lod=1, smooth=10)
    assert smooth.is_watertight and smooth.smooth == 10
    assert smooth.volume == pytest.approx(full.volume, rel=0.03)  # Taubin barely shrinks
    assert not np.array_equal(smooth.vertices, lod1.vertices)


# ---- meshing everything ----


def test_block_wise_meshing_equals_meshing_each_segment_alone(
    workspace: Workspace, editors: list[Proofreader], meshed: list[int]
) -> None:
    dataset = dataset_of(workspace, several(), ANISOTROPIC)
    editor = editor_of(workspace, editors, dataset)
    editor.commit("ann", "merge", {}, tools.merge([6, 7]))
    assert meshes.mesh_all(workspace, dataset.id, block=(5, 7, 9)) == 6
    assert meshed == []
    cache = MeshCache(workspace, get_dataset(workspace, dataset.id))
    blocked = {
        s: cache.load(s, meshes.segment_version(workspace, dataset.id, s))
        for s in (1, 2, 3, 4, 5, 6)
    }
    alone = {}
    for segment in blocked:
        cache.forget(segment)
        alone[segment] = meshes.get_mesh(workspace, dataset.id, segment)
    assert len(meshed) == 6
    for segment, mesh in blocked.items():
        assert mesh is not None and mesh.is_watertight, segment
        assert len(mesh.faces) == len(alone[segment].faces), segment
        assert len(mesh.vertices) == len(alone[segment].vertices), segment
        assert mesh.volume == pytest.approx(alone[segment].volume, rel=1e-6)
        assert mesh.surface_area == pytest.approx(alone[segment].surface_area, rel=1e-6)
        np.testing.assert_array_equal(mesh.bounds, alone[segment].bounds)


def test_mesh_all_fills_the_cache_at_each_level(workspace: Workspace, meshed: list[int]) -> None:
    dataset = dataset_of(workspace, several())
    steps: list[tuple[int, int]] = []
    assert (
        meshes.mesh_all(
            workspace, dataset.id, lod=1, progress=lambda s, t, m="": steps.append((s, t))
        )
        == 7
    )
    assert steps[-1][0] == steps[-1][1]
    for segment in range(1, 8):
        full = meshes.get_mesh(workspace, dataset.id, segment)
        simpler = meshes.get_mesh(workspace, dataset.id, segment, lod=1)
        assert len(simpler.faces) <= len(full.faces)
    assert meshed == []


def test_the_mesh_job_meshes_everything(workspace: Workspace) -> None:
    kind = discover_kinds().get("mesh")
    assert kind.resource == "cpu"
    with pytest.raises(BadInput):
        kind.validate({"dataset": "x", "lod": 5})
    dataset = dataset_of(workspace, several())
    runner = JobRunner(workspace)
    runner.start()
    try:
        job = runner.submit("mesh", {"dataset": dataset.id, "lod": 1}, "admin")
        done = wait_for(
            lambda: (j := runner.get(job.id)).state not in ("queued", "running") and j, timeout=60
        )
        with pytest.raises(BadInput):
            runner.submit("mesh", {"dataset": "nope"}, "admin")
    finally:
        runner.stop()
    assert done.state == "done", (done.error, done.last_lines)
    assert done.result == {"dataset": dataset.id, "segments": 7, "lod": 1, "smooth": 0}
    cache = MeshCache(workspace, get_dataset(workspace, dataset.id))
    assert cache.cached_segments() == set(range(1, 8))
    simpler = cache.load(2, 0, 1)
    assert simpler is not None and simpler.lod == 1


def test_mesh_all_writes_one_pack_that_the_next_run_replaces(
    workspace: Workspace, editors: list[Proofreader], meshed: list[int]
) -> None:
    dataset = dataset_of(workspace, several())
    meshes.get_mesh(workspace, dataset.id, 3)  # a mesh of its own, kept beside the pack
    assert meshes.mesh_all(workspace, dataset.id) == 7 and len(meshed) == 1
    cache = MeshCache(workspace, get_dataset(workspace, dataset.id))
    packs = cache.root / "packs"
    first = sorted(p.name for p in packs.iterdir())
    assert [p.rsplit(".", 1)[1] for p in first] == ["index", "meshes"]
    assert sorted(p.name for p in cache.root.iterdir() if p.is_dir()) == ["3", "packs"]
    assert cache.cached_segments() == set(range(1, 8))
    assert meshes.get_mesh(workspace, dataset.id, 5).is_watertight and len(meshed) == 1

    editor = editor_of(workspace, editors, dataset)
    merge = editor.commit("ann", "merge", {}, tools.merge([6, 7]))
    cache.forget(7)  # what remesh does for a segment merged away
    assert cache.load(7, 0) is None and 7 not in cache.cached_segments()
    assert cache.load(6, 0) is not None  # the old version stays, found by its old key only
    assert meshes.get_mesh(workspace, dataset.id, 6).version == merge.version
    assert len(meshed) == 2

    paint = editor.commit("ann", "paint", {}, tools.paint(21, [(22, 10)], 2, 3))
    assert cache.path(3, 0).exists()
    assert meshes.mesh_all(workspace, dataset.id) == 6
    second = sorted(p.name for p in packs.iterdir())
    assert len(second) == 2 and not set(first) & set(second)  # the older pack is gone
    assert cache.load(1, 0) is not None and cache.load(6, merge.version) is not None
    assert cache.load(6, 0) is None
    assert cache.load(3, paint.version) is not None and not cache.path(3, 0).exists()
    assert cache.path(6, merge.version).exists()  # as new as the pack's: kept


def test_a_failed_mesh_all_leaves_no_pack(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = dataset_of(workspace, several())

    def broken(*args: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(build, "derive", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        meshes.mesh_all(workspace, dataset.id, lod=1)
    cache = MeshCache(workspace, get_dataset(workspace, dataset.id))
    assert list((cache.root / "packs").iterdir()) == [] and cache.cached_segments() == set()


# ---- the binary form ----


def test_to_bytes_round_trips_with_the_documented_layout() -> None:
    vertices = np.array([[0, 0, 0], [1.5, 0, 0], [0, 2, 0], [0, 0, 3]], np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.uint32)
    mesh = Mesh(vertices, faces, segment=4, version=2)
    data = mesh.to_bytes()
    assert data[:4] == b"UNEM" and struct.unpack_from("<II", data, 4) == (4, 4)
    assert len(data) == 12 + 4 * 12 + 4 * 12
    np.testing.assert_array_equal(np.frombuffer(data, "<f4", 12, 12).reshape(4, 3), vertices)
    back = Mesh.from_bytes(data, 4, 2)
    np.testing.assert_array_equal(back.vertices, vertices)
    np.testing.assert_array_equal(back.faces, faces)
    assert back.is_watertight and back.volume == pytest.approx(1.5 * 2 * 3 / 6)
    with pytest.raises(BadInput):
        Mesh.from_bytes(b"NOPE" + data[4:])
    with pytest.raises(BadInput):
        Mesh.from_bytes(data[:-4])
    assert not Mesh(vertices, faces[:3], 4, 2).is_watertight  # a face missing


# ---- the object table ----


def expected_rows(labels: np.ndarray, size: tuple[float, float, float]) -> dict[int, dict]:
    rows = {}
    for segment in np.unique(labels[labels > 0]).tolist():
        where = np.argwhere(labels == segment)
        rows[segment] = {
            "voxels": len(where),
            "volume": len(where) * float(np.prod(size)),
            "centroid": ((where.mean(axis=0) + 0.5) * size)[::-1].tolist(),
            "box": [*where.min(axis=0).tolist(), *(where.max(axis=0) + 1).tolist()],
        }
    return rows


def check_table(table: list[dict], labels: np.ndarray, size: tuple[float, float, float]) -> None:
    expected = expected_rows(labels, size)
    assert [row["id"] for row in table] == sorted(expected)
    for row in table:
        want = expected[row["id"]]
        assert row["voxels"] == want["voxels"] and row["box"] == want["box"], row
        assert row["volume"] == pytest.approx(want["volume"])
        assert row["centroid"] == pytest.approx(want["centroid"])


def test_the_object_table_on_a_known_volume(
    workspace: Workspace, editors: list[Proofreader]
) -> None:
    labels = several()
    dataset = dataset_of(workspace, labels, ANISOTROPIC)
    rename_segment(workspace.db, dataset.id, 3, "soma")
    table = meshes.object_table(workspace, dataset.id)
    check_table(table, labels, ANISOTROPIC)
    three = next(row for row in table if row["id"] == 3)
    assert three["voxels"] == 3 * 9 * 8 and three["volume"] == 3 * 9 * 8 * 640.0
    assert three["centroid"] == pytest.approx([5 * 4, 24.5 * 4, 21.5 * 40])  # x: 1-8
    assert three["box"] == [20, 20, 1, 23, 29, 9]
    assert three["name"] == "soma" and three["surface_area"] is None
    assert three["colour"] is None

    mesh = meshes.get_mesh(workspace, dataset.id, 3)
    table = meshes.object_table(workspace, dataset.id)
    three = next(row for row in table if row["id"] == 3)
    assert three["surface_area"] == pytest.approx(mesh.surface_area)

    # merges only regroup; paint, erase and fill are applied from their patches
    editor = editor_of(workspace, editors, dataset)
    editor.commit("ann", "merge", {}, tools.merge([6, 7]))
    editor.commit("ann", "paint", {}, tools.paint(12, [(14, 15), (14, 25)], 3, 2))
    for z in (20, 21, 22):  # erase columns 0-2 (segment 3 starts at column 1)
        editor.commit("ann", "erase", {}, tools.paint(z, [(20, 1), (28, 1)], 1, 0))
    current = np.asarray(editor.labels_level0[:])
    current[current == 7] = 6
    check_table(meshes.object_table(workspace, dataset.id), current, ANISOTROPIC)
    three = next(row for row in meshes.object_table(workspace, dataset.id) if row["id"] == 3)
    assert three["box"] == [20, 20, 3, 23, 29, 9]  # the erase shrank the box
    assert three["surface_area"] is None  # its mesh is of an older version


def test_the_object_table_is_computed_once_then_kept_up_to_date(
    workspace: Workspace, editors: list[Proofreader], monkeypatch: pytest.MonkeyPatch
) -> None:
    import unem.meshes.objects as objects

    labels = several()
    dataset = dataset_of(workspace, labels)
    scans: list[str] = []
    original = objects.scan
    monkeypatch.setattr(objects, "scan", lambda s: scans.append(s.id) or original(s))
    meshes.object_table(workspace, dataset.id)
    meshes.object_table(workspace, dataset.id)
    editor = editor_of(workspace, editors, dataset)
    editor.commit("ann", "fill", {}, tools.fill(10, 28, 2, 3))
    check_table(
        meshes.object_table(workspace, dataset.id), np.asarray(editor.labels_level0[:]), ISOTROPIC
    )
    assert scans == [dataset.id]


# ---- exports ----


@pytest.mark.parametrize("fmt", meshes.EXPORT_FORMATS)
def test_exports_reload_with_trimesh_in_nm(workspace: Workspace, tmp_path: Path, fmt: str) -> None:
    import trimesh

    dataset = dataset_of(workspace, several(), ANISOTROPIC)
    rename_segment(workspace.db, dataset.id, 3, "soma cell")
    wanted = [meshes.get_mesh(workspace, dataset.id, s) for s in (1, 3)]
    path = meshes.export_meshes(workspace, dataset.id, [1, 3], fmt, tmp_path / "out")
    assert path.parent == tmp_path / "out" and path.suffix == f".{fmt}"
    loaded = trimesh.load_scene(path, process=False, split_objects=True)
    parts = list(loaded.geometry.values())
    if fmt in ("obj", "glb"):  # named objects, one per segment
        assert sorted(loaded.geometry) == ["segment-1", "segment-3-soma_cell"]
    else:
        assert len(parts) == 1
    if fmt != "stl":  # STL stores each triangle's corners: vertices are not shared
        assert sum(len(p.vertices) for p in parts) == sum(len(m.vertices) for m in wanted)
    assert sum(len(p.faces) for p in parts) == sum(len(m.faces) for m in wanted)
    bounds = np.array([m.bounds for m in wanted])
    lo, hi = bounds[:, 0].min(axis=0), bounds[:, 1].max(axis=0)
    together = trimesh.util.concatenate(parts)
    np.testing.assert_allclose(together.bounds, [lo, hi], rtol=1e-6)
    assert together.volume == pytest.approx(sum(m.volume for m in wanted), rel=1e-5)
    with pytest.raises(BadInput):
        meshes.export_meshes(workspace, dataset.id, [1], "vrml", tmp_path)
