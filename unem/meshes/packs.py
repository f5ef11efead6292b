"""Packs: many cached meshes in one file, as `mesh_all` writes them.

Creating a file costs ~0.5 ms on the workspaces' disks, mkdir as much again: writing every
segment's mesh to a file of its own took longer than meshing them. A pack is two files in
`<cache>/packs/`: `<name>.meshes`, the meshes' `Mesh.to_bytes()` one after the other, and
`<name>.index`, one `INDEX` record per mesh (its key and where its bytes are). The index is
written last, by rename, so a pack without one is not there yet. Packs are never appended
to; `forget_in_packs` rewrites the index without a segment's records.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import BinaryIO

import numpy as np

from unem.meshes.mesh import HEADER, Mesh

INDEX = np.dtype(
    [
        ("segment", "<i8"),
        ("version", "<i8"),
        ("lod", "<i8"),
        ("smooth", "<i8"),
        ("offset", "<i8"),
        ("size", "<i8"),
    ]
)
Key = tuple[int, int, int, int]  # segment, version, lod, smooth

# index path → (its mtime and size when read, key → (offset, size)): read once per process
_indexes: dict[Path, tuple[tuple[int, int], dict[Key, tuple[int, int]]]] = {}


class PackWriter:
    """A new pack in `folder`, filled by `add` (from one thread), published by `close`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        self.folder = folder
        self.name = uuid.uuid4().hex[:16]
        self.partial = folder / f".{self.name}.meshes.partial"
        self.file: BinaryIO = open(self.partial, "wb")  # noqa: SIM115 (closed by close/abort)
        self.rows: list[tuple[int, int, int, int, int, int]] = []
        self.offset = 0

    def add(self, mesh: Mesh) -> None:
        mesh.write(self.file)
        size = HEADER.size + 12 * (len(mesh.vertices) + len(mesh.faces))
        self.rows.append((mesh.segment, mesh.version, mesh.lod, mesh.smooth, self.offset, size))
        self.offset += size

    def close(self) -> Path:
        """Publish the pack and remove the older ones (it holds every segment they do, as of
        now); returns its index."""
        self.file.close()
        os.replace(self.partial, self.folder / f"{self.name}.meshes")
        index = self.folder / f"{self.name}.index"
        write_index(index, np.array(self.rows, INDEX))
        for old in pack_indexes(self.folder):
            if old != index:
                remove_pack(old)
        return index

    def abort(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


def pack_indexes(folder: Path) -> list[Path]:
    """The published packs' indexes in `folder`."""
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.name.endswith(".index")]
    except FileNotFoundError:
        return []


def read_index(index: Path) -> dict[Key, tuple[int, int]] | None:
    """Key → (offset, size) of a pack's meshes; None if the pack is gone."""
    try:
        stat = index.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        known = _indexes.get(index)
        if known is not None and known[0] == stamp:
            return known[1]
        rows = np.frombuffer(index.read_bytes(), INDEX)
    except FileNotFoundError:
        _indexes.pop(index, None)
        return None
    keys = zip(*(rows[f].tolist() for f in ("segment", "version", "lod", "smooth")), strict=True)
    where = zip(rows["offset"].tolist(), rows["size"].tolist(), strict=True)
    table = dict(zip(keys, where, strict=True))
    _indexes[index] = (stamp, table)
    return table


def load_packed(folder: Path, key: Key) -> Mesh | None:
    """The mesh of `key` from a pack in `folder`, None if no pack has it."""
    for index in pack_indexes(folder):
        where = (read_index(index) or {}).get(key)
        if where is None:
            continue
        try:
            with open(index.with_suffix(".meshes"), "rb") as file:
                file.seek(where[0])
                data = file.read(where[1])
        except FileNotFoundError:  # removed by a newer pack meanwhile
            continue
        return Mesh.from_bytes(data, *key)
    return None


def packed_segments(folder: Path) -> set[int]:
    return {key[0] for index in pack_indexes(folder) for key in read_index(index) or {}}


def forget_in_packs(folder: Path, segment: int) -> None:
    """Rewrite the indexes that list `segment` without it."""
    for index in pack_indexes(folder):
        try:
            rows = np.frombuffer(index.read_bytes(), INDEX)
        except FileNotFoundError:
            continue
        keep = rows["segment"] != segment
        if not keep.all():
            write_index(index, rows[keep])


def write_index(index: Path, rows: np.ndarray) -> None:
    partial = index.with_name(f".{index.name}.{uuid.uuid4().hex[:8]}.partial")
    partial.write_bytes(rows.astype(INDEX, copy=False).tobytes())
    os.replace(partial, index)


def remove_pack(index: Path) -> None:
    index.unlink(missing_ok=True)  # first: readers never find an index without its meshes
    index.with_suffix(".meshes").unlink(missing_ok=True)
    _indexes.pop(index, None)
