"""Export segments' meshes as one OBJ, STL, PLY or GLB file, in nm, through trimesh."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from unem.errors import BadInput
from unem.meshes.build import get_mesh
from unem.proofread.segments import segment_names
from unem.workspace import Workspace

# obj: one `o segment-<id>[-name]` object per segment; glb: one named node and mesh per
# segment; stl, ply: the formats hold a single mesh, so the segments' surfaces are joined.
EXPORT_FORMATS = ("obj", "stl", "ply", "glb")
MAX_EXPORTED = 1000


def object_name(segment: int, name: str | None) -> str:
    """`segment-<id>`, followed by the segment's name made file-format safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "").strip("_")
    return f"segment-{segment}" + (f"-{safe}" if safe else "")


def export_meshes(
    ws: Workspace,
    dataset_id: str,
    segments: Iterable[int],
    format: str,
    out_dir: Path,
    lod: int = 0,
    smooth: int = 0,
) -> Path:
    """Write the meshes of `segments` (nm, x y z) into one file in `out_dir`; its path.
    Meshes missing from the cache are made first."""
    import trimesh

    if format not in EXPORT_FORMATS:
        raise BadInput(f"Export meshes as one of {', '.join(EXPORT_FORMATS)}, not {format!r}.")
    wanted = list(dict.fromkeys(int(s) for s in segments))
    if not wanted or len(wanted) > MAX_EXPORTED:
        raise BadInput(f"Export 1 to {MAX_EXPORTED} segments.")
    names = segment_names(ws.db, dataset_id)
    scene = trimesh.Scene()
    for segment in wanted:
        label = object_name(segment, names.get(segment))
        mesh = get_mesh(ws, dataset_id, segment, lod, smooth).to_trimesh()
        scene.add_geometry(mesh, node_name=label, geom_name=label)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = (
        object_name(wanted[0], names.get(wanted[0]))
        if len(wanted) == 1
        else (f"{dataset_id}-{len(wanted)}-segments")
    )
    path = out_dir / f"{stem}.{format}"
    options = {"include_texture": False, "include_normals": False} if format == "obj" else {}
    scene.export(str(path), file_type=format, **options)  # type: ignore[no-untyped-call]
    return path
