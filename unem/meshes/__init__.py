"""Per-segment surface meshes of the current segmentation, cached, kept up to date, exported.

- `get_mesh(ws, dataset_id, segment, lod=0, smooth=0) -> Mesh`: one segment's surface,
  mapping applied, voxel size respected, from the cache or made now from its box.
- `segment_versions`, `touched_segments`: which edit version each mesh reflects, and which
  segments edits after a version touched (see `unem.meshes.versions`).
- `remesh(ws, dataset_id, segments, progress)`: bring those segments' meshes up to date.
- `mesh_all(ws, dataset_id, lod=0, progress)`: every segment, by block-wise multi-label
  marching cubes (zmesh); the `mesh` job kind runs it (`unem.meshes.jobs`).
- `object_table(ws, dataset_id)`: per segment, size, volume, area, centroid, box.
- `export_meshes(ws, dataset_id, segments, format, out_dir)`: OBJ, STL, PLY or GLB.
- `delete_meshes(ws, dataset_id)`: drop a deleted dataset's cache.

Coordinates are nm in (x, y, z) order (three.js'); voxel (z, y, x) fills
[x, x+1)·size_x × [y, y+1)·size_y × [z, z+1)·size_z, so the volume spans [0, shape·size].
`Mesh.to_bytes` is the binary the browser reads (format in `unem.meshes.mesh`); the cache
layout is described in `unem.meshes.cache`.
"""

from __future__ import annotations

from unem.meshes.build import get_mesh, mesh_all, remesh
from unem.meshes.cache import delete_meshes
from unem.meshes.exporting import EXPORT_FORMATS, export_meshes
from unem.meshes.mesh import Mesh
from unem.meshes.objects import object_table
from unem.meshes.surface import LODS, MAX_SMOOTH
from unem.meshes.versions import segment_version, segment_versions, touched_segments

__all__ = [
    "EXPORT_FORMATS",
    "LODS",
    "MAX_SMOOTH",
    "Mesh",
    "delete_meshes",
    "export_meshes",
    "get_mesh",
    "mesh_all",
    "object_table",
    "remesh",
    "segment_version",
    "segment_versions",
    "touched_segments",
]
