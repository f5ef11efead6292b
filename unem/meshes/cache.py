"""The mesh cache of a dataset, on disk under `<workspace>/meshes/<dataset>/`.

Layout: `meshes/<dataset>/<volume tag>/<segment>/v<version>.l<lod>.s<smooth>.mesh`, each
file exactly `Mesh.to_bytes()` (a web server can send it as it is). The volume tag hashes
what identifies the segmentation volume and its voxel size (the layer's creation stamp, which
changes when the segmentation is replaced or re-imported): a new volume gets a new folder and
the old ones are removed. Within it a mesh is found by its key, (segment, version of the last
edit touching the segment, lod, smooth): an edit of a segment changes its key, so nothing is
ever invalidated by hand; storing a mesh removes the older versions of the same kind.
`mesh_all` writes its meshes into one pack instead (`packs/`, see `unem.meshes.packs`):
a mesh is looked up in its own file first, then in the packs.

`areas.json` keeps the surface areas of lod-0 unsmoothed meshes (segment:version → nm²),
computed when the object table first asks. `fragments.v<version>.npz` holds the object
table's per-fragment statistics (`unem.meshes.objects`). Files are written to a temporary
name and renamed into place, so readers (other processes too) see a whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from unem.meshes.mesh import Mesh
from unem.meshes.packs import PackWriter, forget_in_packs, load_packed, packed_segments
from unem.proofread.edits import layer_stamp
from unem.volumes.datasets import Dataset
from unem.workspace import Workspace

AREAS = "areas.json"
PACKS = "packs"


class MeshCache:
    """The cache folder of one dataset's current segmentation volume."""

    def __init__(self, ws: Workspace, dataset: Dataset) -> None:
        self.dataset_dir = ws.root / "meshes" / dataset.id
        stamp = f"{layer_stamp(ws.db, dataset.id)}|{list(dataset.voxel_size)}"
        self.root = self.dataset_dir / hashlib.sha1(stamp.encode()).hexdigest()[:16]
        if not self.root.is_dir():
            self._start_afresh()

    def _start_afresh(self) -> None:
        """A new volume: the folders of older ones hold nothing valid any more."""
        if self.dataset_dir.is_dir():
            for old in self.dataset_dir.iterdir():
                if old != self.root:
                    shutil.rmtree(old, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, segment: int, version: int, lod: int = 0, smooth: int = 0) -> Path:
        return self.root / str(segment) / f"v{version}.l{lod}.s{smooth}.mesh"

    def load(self, segment: int, version: int, lod: int = 0, smooth: int = 0) -> Mesh | None:
        try:
            data = self.path(segment, version, lod, smooth).read_bytes()
        except FileNotFoundError:
            return load_packed(self.root / PACKS, (segment, version, lod, smooth))
        return Mesh.from_bytes(data, segment, version, lod, smooth)

    def pack(self) -> PackWriter:
        """A new pack to `add` many meshes to; `close` publishes it and drops the older."""
        return PackWriter(self.root / PACKS)

    def store(self, mesh: Mesh) -> Path:
        """Write `mesh` under its key; older versions of the same lod and smoothing go."""
        path = self.path(mesh.segment, mesh.version, mesh.lod, mesh.smooth)
        try:
            os.mkdir(path.parent)
            fresh = True
        except FileExistsError:
            fresh = False
        partial = partial_name(path)
        with open(partial, "wb") as file:
            mesh.write(file)
        os.replace(partial, path)
        if not fresh:
            self._drop_older(path, mesh)
        return path

    @staticmethod
    def _drop_older(path: Path, mesh: Mesh) -> None:
        kind, current = f".l{mesh.lod}.s{mesh.smooth}.", f"v{mesh.version}."
        with os.scandir(path.parent) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("v") and kind in name and not name.startswith(current):
                    Path(entry.path).unlink(missing_ok=True)

    def drop_older(self, versions: dict[int, int]) -> None:
        """Remove the files of meshes older than `versions` (segment → version), as a new
        pack holding those versions makes them unreachable."""
        with os.scandir(self.root) as entries:
            folders = [(int(e.name), e.path) for e in entries if e.name.isdigit()]
        for segment, folder in folders:
            if segment not in versions:
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    version = entry.name[1:].split(".", 1)[0]
                    if version.isdigit() and int(version) < versions[segment]:
                        Path(entry.path).unlink(missing_ok=True)

    def forget(self, segment: int) -> None:
        """Drop every mesh of a segment (it no longer exists)."""
        shutil.rmtree(self.root / str(segment), ignore_errors=True)
        forget_in_packs(self.root / PACKS, segment)

    def cached_segments(self) -> set[int]:
        """Segments with a folder here or meshes in a pack (a listing and the indexes)."""
        with os.scandir(self.root) as entries:
            alone = {int(e.name) for e in entries if e.is_dir() and e.name.isdigit()}
        return alone | packed_segments(self.root / PACKS)

    def surface_areas(self, versions: dict[int, int]) -> dict[int, float]:
        """The surface areas (nm²) of the cached lod-0 unsmoothed meshes of `versions`
        (segment → version), for those that have one. Computed once per mesh and kept in
        `areas.json` (one file: reading thousands of meshes or sidecars is what is slow)."""
        index = self.root / AREAS
        try:
            known: dict[str, float] = json.loads(index.read_text())
        except (FileNotFoundError, ValueError):
            known = {}
        areas, changed = {}, False
        meshed = self.cached_segments()
        for segment, version in versions.items():
            key = f"{segment}:{version}"
            if key not in known and segment in meshed:
                mesh = self.load(segment, version)
                if mesh is not None:
                    known[key], changed = mesh.surface_area, True
            if key in known:
                areas[segment] = known[key]
        if changed:  # keep the current versions' areas only
            current = {f"{s}:{v}": a for s, a in areas.items() for v in (versions[s],)}
            write_atomically(index, json.dumps(current).encode())
        return areas


def delete_meshes(ws: Workspace, dataset_id: str) -> None:
    """Remove every cached mesh of a dataset (call it when the dataset is deleted)."""
    shutil.rmtree(ws.root / "meshes" / dataset_id, ignore_errors=True)


def partial_name(path: Path) -> Path:
    """A unique temporary name beside `path` (hidden: globs for meshes skip it)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")


def write_atomically(path: Path, data: bytes) -> None:
    partial = partial_name(path)
    partial.write_bytes(data)
    os.replace(partial, path)
