"""Surfaces of label volumes with zmesh, in voxel units, and what is done to them after.

Everything here works on `Surface`s whose vertices are in voxel units of the whole volume,
(x, y, z) order, with voxel centres at integer positions. Marching cubes on labels puts
every vertex halfway between two voxel centres, so coordinates are multiples of ½ and exact
in float32: surfaces meshed in neighbouring blocks share their seam vertices bit for bit,
and zmesh's simplifier (which packs half-voxel integers) takes them as they are. They become
nm (`to_nm`) only at the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LODS = (0, 1, 2)
# Per level of detail: zmesh's reduction factor (faces ÷ this, a target it may miss or pass)
# and the error bound of its quadric edge collapse (zmesh's internal units, once it has
# divided `max_error` by |voxel size|). Measured on the FlyEM medulla bodies: lod 1 has
# ~3.9× and lod 2 ~11× fewer faces; flat surfaces go further, round ones less far.
REDUCTION = {1: (4, 2), 2: (16, 36)}
MIN_FACES = 128  # a surface is not simplified below this many faces (small objects keep shape)
MAX_SMOOTH = 50  # Taubin iterations
TAUBIN = (0.5, -0.53)  # λ (shrink) and μ (inflate) of Taubin's λ|μ smoothing


@dataclass(frozen=True, eq=False)
class Surface:
    """A triangle mesh in voxel units (see the module docstring)."""

    vertices: np.ndarray  # float32 (n, 3), x y z
    faces: np.ndarray  # uint32 (m, 3)

    @property
    def empty(self) -> bool:
        return len(self.faces) == 0


def block_surfaces(labels: np.ndarray, origin: Sequence[int]) -> Iterator[tuple[int, Surface]]:
    """Every non-zero label's surface in one block of labels, by multi-label marching cubes.

    Parameters
    ----------
    labels : (z, y, x) integer array
        The block. Surfaces are left open where a label touches the block's faces: pad
        with zeros where the block meets the volume's faces, overlap blocks by one voxel
        elsewhere (then each marching cube lies in exactly one block).
    origin : (z, y, x)
        The volume voxel of `labels[0, 0, 0]` (-1 along an axis padded at the volume's start).
    """
    import zmesh

    mesher = zmesh.Mesher((1.0, 1.0, 1.0))
    mesher.mesh(labels.T)  # a view in x, y, z order (Fortran-contiguous: no copy)
    offset = np.array(origin[::-1], np.float32)
    for label in mesher.ids():
        part = mesher.get(label)
        if part.faces is None or len(part.faces) == 0:
            continue
        vertices = part.vertices  # a new array: shifted in place
        vertices += offset
        yield int(label), Surface(vertices, part.faces.astype(np.uint32, copy=False))


def mask_surface(mask: np.ndarray, origin: Sequence[int]) -> Surface:
    """The surface of a boolean (z, y, x) mask whose voxel [0, 0, 0] is volume voxel
    `origin`; closed, since the mask is padded by one voxel of background first."""
    as_bytes = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    padded = np.pad(as_bytes, 1)
    shifted = [o - 1 for o in origin]
    for _, surface in block_surfaces(padded, shifted):
        return surface
    return Surface(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32))


def weld(parts: Sequence[Surface]) -> Surface:
    """One surface from parts meshed in neighbouring blocks: their seam vertices (equal
    coordinates) become one vertex."""
    if len(parts) == 1:
        return parts[0]
    vertices = np.concatenate([p.vertices for p in parts])
    starts = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    faces = np.concatenate(
        [p.faces.astype(np.int64) + s for p, s in zip(parts, starts, strict=True)]
    )
    halves = np.rint(vertices * 2).astype(np.int64)  # exact: coordinates are multiples of ½
    halves -= halves.min(axis=0)
    # 21 bits per axis: volumes up to a million voxels along each
    keys = (halves[:, 0] << 42) | (halves[:, 1] << 21) | halves[:, 2]
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    del unique
    return Surface(vertices[first], inverse.reshape(-1)[faces].astype(np.uint32))


def simplify(surface: Surface, lod: int) -> Surface:
    """Fewer faces for level of detail `lod` (0: unchanged), with zmesh's quadric edge
    collapse, which keeps a closed surface closed and vertices on the half-voxel grid.
    Works in voxel units, so the error bound is in voxels whatever the anisotropy."""
    if lod == 0 or surface.empty:
        return surface
    import zmesh

    factor, error = REDUCTION[lod]
    factor = min(factor, len(surface.faces) // MIN_FACES)
    if factor < 2:
        return surface
    mesher = zmesh.Mesher((1.0, 1.0, 1.0))
    # zmesh floor-divides max_error by |voxel size|, √3 here: undo that.
    simpler = mesher.simplify(
        zmesh.Mesh(surface.vertices, surface.faces.astype(np.uint32), None),
        reduction_factor=factor,
        max_error=error * np.sqrt(3) + 1e-3,
    )
    if simpler.faces is None or len(simpler.faces) == 0:
        return surface
    return Surface(np.asarray(simpler.vertices, np.float32), simpler.faces.astype(np.uint32))


def to_nm(surface: Surface, voxel_size: Sequence[float]) -> np.ndarray:
    """Vertices in nm, (x, y, z): voxel (z, y, x) fills [x, x+1)·size_x etc., so a voxel
    centre at index i lies at (i + ½)·size. `voxel_size` is the dataset's (z, y, x)."""
    # float32 throughout: a half-integer times a float32 size is rounded once either way
    size = np.array(voxel_size[::-1], np.float32)
    nm: np.ndarray = surface.vertices + np.float32(0.5)
    nm *= size
    return nm


def to_voxels(vertices: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """The inverse of `to_nm` for unsmoothed vertices (snapped back to exact halves)."""
    size = np.array(voxel_size[::-1], np.float64)
    halves = np.rint((vertices / size - 0.5) * 2)
    voxels: np.ndarray = (halves / 2).astype(np.float32)
    return voxels


def smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Taubin λ|μ smoothing (alternate shrink and inflate steps toward the neighbours'
    mean), which removes the voxel staircase without the shrinking of plain Laplacian
    smoothing. Returns new float32 vertices; the inputs are not modified."""
    if iterations <= 0 or len(faces) == 0:
        return vertices
    neighbours = mean_of_neighbours(faces, len(vertices))
    moved = vertices.astype(np.float64)
    for _ in range(iterations):
        for factor in TAUBIN:
            moved = moved + factor * (neighbours @ moved - moved)
    result: np.ndarray = moved.astype(np.float32)
    return result


def mean_of_neighbours(faces: np.ndarray, n_vertices: int) -> Any:
    """The sparse (n, n) matrix averaging each vertex's edge neighbours."""
    from scipy import sparse

    f = faces.astype(np.int64)
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adjacency = sparse.coo_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices)
    ).tocsr()
    adjacency.data[:] = 1.0  # each edge is shared by two faces: count it once
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return sparse.diags(1.0 / np.maximum(degree, 1)) @ adjacency
