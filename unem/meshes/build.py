"""Meshing segments: one on demand (`get_mesh`), the edited ones (`remesh`), all (`mesh_all`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Sequence

from unem.errors import BadInput, NotFound
from unem.meshes.cache import MeshCache
from unem.meshes.mesh import Mesh
from unem.meshes.packs import PackWriter
from unem.meshes.segmentation import Blocks, Segmentation, open_segmentation, plan_blocks
from unem.meshes.surface import (
    LODS,
    MAX_SMOOTH,
    Surface,
    block_surfaces,
    mask_surface,
    simplify,
    smooth,
    to_nm,
    to_voxels,
    weld,
)
from unem.meshes.versions import replaced_at, segment_version, segment_versions, wait_until_settled
from unem.progress import Progress, no_progress
from unem.workspace import Workspace


def check_options(lod: int, smooth: int) -> None:
    if lod not in LODS:
        raise BadInput(f"The level of detail is one of {', '.join(map(str, LODS))}.")
    if not 0 <= smooth <= MAX_SMOOTH:
        raise BadInput(f"Smoothing is 0 to {MAX_SMOOTH} iterations.")


def get_mesh(ws: Workspace, dataset_id: str, segment: int, lod: int = 0, smooth: int = 0) -> Mesh:
    """The surface of `segment` in the current segmentation, from the cache or made now.

    lod 0 is the full marching-cubes surface; lod 1 and 2 are simplified from it (about 4×
    and 10× fewer faces on neurons, see `surface.REDUCTION`); `smooth` is the number of
    Taubin smoothing iterations, applied last. Only the segment's box is read. NotFound for
    a segment without voxels.
    """
    check_options(lod, smooth)
    segmentation = open_segmentation(ws, dataset_id)
    cache = MeshCache(ws, segmentation.dataset)
    version = segment_version(ws, dataset_id, segment)  # before anything is read
    found = cache.load(segment, version, lod, smooth)
    if found is not None:
        return found
    if lod or smooth:
        made = derive(get_mesh(ws, dataset_id, segment), lod, smooth, segmentation.voxel_size)
        return store(cache, made, version)
    settled = wait_until_settled(ws.db, dataset_id)
    mask, box = segmentation.segment_mask(segment)
    surface = mask_surface(mask, (box.z0, box.y0, box.x0))
    made = Mesh(to_nm(surface, segmentation.voxel_size), surface.faces, segment, version)
    return store(cache, made, version) if settled else made


def store(cache: MeshCache, mesh: Mesh, version: int) -> Mesh:
    """Cache `mesh` if it reflects `version` (a derived mesh comes from a lod-0 mesh
    that an edit meanwhile may have made newer)."""
    if mesh.version == version:
        cache.store(mesh)
    return mesh


def derive(base: Mesh, lod: int, iterations: int, voxel_size: Sequence[float]) -> Mesh:
    """A lod-0 unsmoothed mesh simplified to `lod`, then smoothed."""
    surface = simplify(Surface(to_voxels(base.vertices, voxel_size), base.faces), lod)
    vertices = smooth(to_nm(surface, voxel_size), surface.faces, iterations)
    return Mesh(vertices, surface.faces, base.segment, base.version, lod, iterations)


def remesh(
    ws: Workspace,
    dataset_id: str,
    segments: Iterable[int],
    progress: Progress = no_progress,
    lod: int = 0,
    smooth: int = 0,
) -> list[Mesh]:
    """Bring the meshes of `segments` up to date (after an edit: `touched_segments`).

    Returns the meshes of the segments that exist; the cached meshes of those that no
    longer do (merged into another, erased) are removed.
    """
    check_options(lod, smooth)
    wanted = sorted({int(s) for s in segments})
    cache = MeshCache(ws, open_segmentation(ws, dataset_id).dataset)
    made: list[Mesh] = []
    for done, segment in enumerate(wanted, 1):
        try:
            made.append(get_mesh(ws, dataset_id, segment, lod, smooth))
        except NotFound:
            cache.forget(segment)
        progress(done, len(wanted), f"meshing segment {segment}")
    return made


class Finisher:
    """Welds, simplifies and packs the surfaces `mesh_all` collects, on a thread of its own:
    zmesh holds the GIL while it meshes, but file writes and numpy release it, so on a
    machine with a spare core the cache is written while the next surfaces are made."""

    def __init__(
        self,
        segmentation: Segmentation,
        pack: PackWriter | None,
        lod: int,
        iterations: int,
        versions: dict[int, int],
    ) -> None:
        self.size = segmentation.voxel_size
        self.pack = pack  # None: nothing is cached
        self.lod, self.iterations = lod, iterations
        self.versions = versions
        self.base = replaced_at(segmentation.ws.db, segmentation.id)
        self.done = 0
        # bounded: the meshing thread waits rather than holding every surface in memory
        self.queue: queue.Queue[tuple[int, list[Surface]] | None] = queue.Queue(maxsize=16)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mesh-finisher", daemon=True)
        self.thread.start()

    def finish(self, segment: int, parts: list[Surface]) -> None:
        """Hand over a segment whose surface is complete."""
        if self.error is not None:
            raise self.error
        self.queue.put((segment, parts))

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self._finish(*item)
                except BaseException as error:  # raised again in the meshing thread
                    self.error = error

    def _finish(self, segment: int, parts: list[Surface]) -> None:
        surface = weld(parts)
        version = self.versions.get(segment, self.base)
        mesh = Mesh(to_nm(surface, self.size), surface.faces, segment, version)
        if self.pack is not None:
            self.pack.add(mesh)
            if self.lod or self.iterations:
                self.pack.add(derive(mesh, self.lod, self.iterations, self.size))
        self.done += 1

    def close(self, failed: bool = False) -> int:
        """Wait for every segment handed over and publish the pack (unless `failed`); how
        many were finished."""
        self.queue.put(None)
        self.thread.join()
        if self.pack is not None:
            if failed or self.error is not None:
                self.pack.abort()
            else:
                self.pack.close()
        if self.error is not None:
            raise self.error
        return self.done


def mesh_all(
    ws: Workspace,
    dataset_id: str,
    lod: int = 0,
    progress: Progress = no_progress,
    smooth: int = 0,
    block: tuple[int, int, int] | None = None,
) -> int:
    """Mesh every segment of the current segmentation into the cache; how many were meshed.

    zmesh's multi-label marching cubes runs over the volume in blocks (the whole volume at
    once up to ~3·10⁷ voxels): blocks overlap by one voxel so that each marching cube lies
    in exactly one block, and the parts of a segment from neighbouring blocks are welded at
    their shared seam vertices into the same surface the whole volume would give. A
    segment is finished (welded, simplified, cached) after the last block its box touches,
    so memory holds one block of labels and the surfaces of the segments crossing it.
    The meshes go into one pack (`unem.meshes.packs`): one file, not one per segment.
    `block` (z, y, x) overrides the block shape `plan_blocks` chooses.
    """
    check_options(lod, smooth)
    segmentation = open_segmentation(ws, dataset_id)
    versions = segment_versions(ws, dataset_id)  # before anything is read
    caching = wait_until_settled(ws.db, dataset_id)
    relabel = segmentation.mapping()
    blocks = Blocks(segmentation.shape, block) if block else plan_blocks(segmentation.shape)
    last = {
        segment: blocks.last_block(box) for segment, box in segmentation.segment_boxes().items()
    }
    cache = MeshCache(ws, segmentation.dataset)
    finisher = Finisher(segmentation, cache.pack() if caching else None, lod, smooth, versions)
    try:
        mesh_blocks(segmentation, blocks, relabel, last, finisher, progress)
    except BaseException:
        finisher.close(failed=True)
        raise
    done = finisher.close()
    if caching:
        cache.drop_older(versions)
    return done


def mesh_blocks(
    segmentation: Segmentation,
    blocks: Blocks,
    relabel: dict[int, int],
    last: dict[int, int],
    finisher: Finisher,
    progress: Progress,
) -> None:
    """Mesh block after block; hand each segment over once its last block is meshed.
    Progress counts segments done (about a hundred reports in all)."""
    parts: dict[int, list[Surface]] = {}
    array = segmentation.array()
    total, done = max(len(last), 1), 0
    every = max(1, total // 100)
    for index, start in enumerate(blocks):
        labels, origin = blocks.read(array, start, relabel)
        for segment, surface in block_surfaces(labels, origin):
            parts.setdefault(segment, []).append(surface)
            if last.get(segment) == index:  # complete
                finisher.finish(segment, parts.pop(segment))
                done += 1
                if done % every == 0:
                    progress(
                        min(done, total),
                        total,
                        f"meshing segments ({index + 1} of {len(blocks)} blocks)",
                    )
        del labels
    for segment in sorted(parts):  # not in the index (it is rebuilt on replace): last
        finisher.finish(segment, parts.pop(segment))
    progress(total, total, "meshed")
