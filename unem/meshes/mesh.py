"""A segment's surface mesh: its geometry, measures, and the binary form the browser reads.

Binary form (`Mesh.to_bytes`, the body of the annotator's mesh responses), little-endian:

    offset 0        4 bytes   magic b"UNEM"
    offset 4        uint32    n_vertices
    offset 8        uint32    n_faces
    offset 12       float32   vertices, n_vertices × (x, y, z) in nm
    offset 12+12n   uint32    faces, n_faces × (a, b, c) vertex indices, counter-clockwise
                              seen from outside (normals point out)

Both arrays start at a multiple of 4 bytes, so the client wraps the buffer without copying:
`new Float32Array(buf, 12, 3 * nv)` and `new Uint32Array(buf, 12 + 12 * nv, 3 * nf)`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from unem.errors import BadInput

if TYPE_CHECKING:
    import trimesh

MAGIC = b"UNEM"
HEADER = struct.Struct("<4sII")


@dataclass(frozen=True, eq=False)
class Mesh:
    """A surface in nm, (x, y, z) order (three.js'), of `segment` as of edit `version`.

    A voxel (z, y, x) fills [x, x+1) · size_x × [y, y+1) · size_y × [z, z+1) · size_z, so
    the whole volume spans [0, shape · voxel size] and slice z's centre is at (z + ½) · size_z.
    """

    vertices: np.ndarray  # float32 (n, 3)
    faces: np.ndarray  # uint32 (m, 3)
    segment: int
    version: int
    lod: int = 0
    smooth: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "vertices", _rows(self.vertices, np.float32))
        object.__setattr__(self, "faces", _rows(self.faces, np.uint32))

    def _edges(self, dtype: type[np.floating[Any]]) -> tuple[np.ndarray, ...]:
        """Each face's first corner and its two edges from it, in `dtype`, (m, 3) each."""
        vertices = self.vertices.astype(dtype, copy=False)
        first = vertices[self.faces[:, 0]]
        return first, vertices[self.faces[:, 1]] - first, vertices[self.faces[:, 2]] - first

    @property
    def surface_area(self) -> float:
        """nm². In float32, summed in float64: edges on the half-voxel grid are exact."""
        _, u, v = self._edges(np.float32)
        normals = np.cross(u, v)
        return float(np.sqrt(np.einsum("ij,ij->i", normals, normals, dtype=np.float64)).sum() / 2)

    @property
    def volume(self) -> float:
        """Signed enclosed volume in nm³ (divergence theorem): positive for a closed mesh
        with outward normals; meaningless for an open one."""
        first, u, v = self._edges(np.float64)
        first -= self.vertices.min(axis=0) if len(self.vertices) else 0  # less cancellation
        return float(np.einsum("ij,ij->i", first, np.cross(u, v)).sum() / 6)

    @property
    def is_watertight(self) -> bool:
        """Closed and consistently wound: every directed edge appears once, and so does its
        reverse (trimesh's `is_watertight` and `is_winding_consistent` together)."""
        if len(self.faces) == 0:
            return False
        f = self.faces.astype(np.int64)
        heads = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
        tails = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
        n = int(f.max()) + 1
        forward = np.sort(heads * n + tails)
        if np.any(forward[1:] == forward[:-1]):
            return False
        return bool(np.array_equal(forward, np.sort(tails * n + heads)))

    @property
    def bounds(self) -> np.ndarray:
        """float32 (2, 3): min and max corner in nm (x, y, z); zeros when empty."""
        if len(self.vertices) == 0:
            return np.zeros((2, 3), np.float32)
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    def to_bytes(self) -> bytes:
        """The binary form described in this module's docstring."""
        return b"".join(self._parts())

    def write(self, file: BinaryIO) -> None:
        """Write `to_bytes()` to an open file without joining it in memory first."""
        for part in self._parts():
            file.write(part)

    def _parts(self) -> tuple[bytes | memoryview, ...]:
        head = HEADER.pack(MAGIC, len(self.vertices), len(self.faces))
        vertices = np.ascontiguousarray(self.vertices, "<f4")  # no copy on little-endian hosts
        faces = np.ascontiguousarray(self.faces, "<u4")
        return head, vertices.data.cast("B"), faces.data.cast("B")

    @staticmethod
    def from_bytes(
        data: bytes, segment: int = 0, version: int = 0, lod: int = 0, smooth: int = 0
    ) -> Mesh:
        """Read `to_bytes` output back (the binary carries only the geometry)."""
        if len(data) < HEADER.size or data[:4] != MAGIC:
            raise BadInput("Not a UNEM mesh (bad magic).")
        _, nv, nf = HEADER.unpack_from(data)
        if len(data) != HEADER.size + 12 * (nv + nf):
            raise BadInput(f"A UNEM mesh of {nv} vertices and {nf} faces has the wrong size.")
        vertices = np.frombuffer(data, "<f4", 3 * nv, HEADER.size).reshape(nv, 3)
        faces = np.frombuffer(data, "<u4", 3 * nf, HEADER.size + 12 * nv).reshape(nf, 3)
        return Mesh(vertices, faces, segment, version, lod, smooth)

    def to_trimesh(self) -> trimesh.Trimesh:
        """The same surface as a `trimesh.Trimesh` (nm), for processing and export."""
        import trimesh  # ~1 s to import: only where a trimesh is wanted

        return trimesh.Trimesh(self.vertices.copy(), self.faces.astype(np.int64), process=False)


def _rows(array: np.ndarray, dtype: type[np.generic]) -> np.ndarray:
    """`array` as a C-ordered (n, 3) array of `dtype` (empty arrays become (0, 3))."""
    rows = np.ascontiguousarray(array, dtype=dtype)
    return rows.reshape(-1, 3)
