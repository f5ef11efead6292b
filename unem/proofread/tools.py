"""The proofreading tools: each turns a request into a `Change` (nothing is written here).

Every function returns a ChangeMaker, called by `Proofreader.commit` under the dataset's
edit lock, so what it reads is the state the edit is applied to. Coordinates are
full-resolution voxels (z, y, x); the browser converts from screen and zoom level.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.draw import line as draw_line
from skimage.segmentation import watershed

from unem.errors import BadInput
from unem.proofread.edits import Change, ChangeMaker, EditContext
from unem.proofread.voxels import Box, VoxelPatch

MAX_FILL_VOXELS = 16 * 2**20  # a fill larger than this is almost surely an unclosed contour
MAX_SPLIT_VOXELS = 64 * 2**20
MAX_OUTSIDE = 1024  # how far outside the volume a stroke's points may lie (voxels)
Point2 = tuple[int, int]
Point3 = tuple[int, int, int]


def _require_ids(ids: Sequence[int], minimum: int, what: str) -> list[int]:
    unique = list(dict.fromkeys(int(i) for i in ids))
    if len(unique) < minimum or any(i <= 0 for i in unique):
        raise BadInput(f"{what} needs at least {minimum} different non-zero segment ids.")
    return unique


def merge(segments: Sequence[int]) -> ChangeMaker:
    """Merge every segment into the first: only the mapping changes, no voxel is rewritten."""
    target, *others = _require_ids(segments, 2, "A merge")

    def make(ctx: EditContext) -> Change:
        if not ctx.fragments_of(target):
            raise BadInput(f"Segment {target} does not exist.")
        mapping = {}
        for segment in others:
            members = ctx.fragments_of(segment)
            if not members:
                raise BadInput(f"Segment {segment} does not exist.")
            mapping.update({f: (segment, target) for f in members})
        return Change(mapping)

    return make


def split_fragments(segment: int, seeds_a: Sequence[int], seeds_b: Sequence[int]) -> ChangeMaker:
    """Split a multi-fragment segment: fragments go to the seed group they are closest to
    on the fragment adjacency graph; group B becomes a new segment."""

    def make(ctx: EditContext) -> Change:
        members = set(ctx.fragments_of(segment))
        a, b = set(seeds_a), set(seeds_b)
        if not a or not b or a & b or not (a | b) <= members:
            raise BadInput(f"Pick seed fragments of segment {segment} in two separate groups.")
        graph = fragment_graph(ctx, segment, members)
        side_b = nearest_group(graph, a, b)
        new_segment = ctx.new_ids(1)[0]
        return Change({f: (segment, new_segment) for f in side_b})

    return make


def fragment_graph(ctx: EditContext, segment: int, members: set[int]) -> dict[int, set[int]]:
    """Which fragments of `segment` touch each other (6-connectivity) inside its box."""
    box = ctx.segment_box(segment)
    if box is None or int(np.prod(box.shape)) > MAX_SPLIT_VOXELS:
        raise BadInput(f"Segment {segment} is too large to split by fragments here.")
    labels = ctx.read(box)
    graph: dict[int, set[int]] = {f: set() for f in members}
    for axis in range(3):
        here = np.moveaxis(labels, axis, 0)[:-1].ravel()
        there = np.moveaxis(labels, axis, 0)[1:].ravel()
        pairs = np.unique(np.stack([here, there])[:, here != there], axis=1)
        for f, g in pairs.T.tolist():
            if f in members and g in members:
                graph[f].add(g)
                graph[g].add(f)
    return graph


def nearest_group(graph: dict[int, set[int]], a: set[int], b: set[int]) -> set[int]:
    """Fragments reached first from B than from A (breadth-first from both at once)."""
    owner = {f: "a" for f in a} | {f: "b" for f in b}
    queue = deque(sorted(a) + sorted(b))
    while queue:
        fragment = queue.popleft()
        for neighbour in sorted(graph.get(fragment, ())):
            if neighbour not in owner:
                owner[neighbour] = owner[fragment]
                queue.append(neighbour)
    return {f for f, side in owner.items() if side == "b"}


def _line_pixels(y0: int, x0: int, y1: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
    rr, cc = draw_line(y0, x0, y1, x1)  # type: ignore[no-untyped-call]
    return np.asarray(rr), np.asarray(cc)


def _watershed(relief: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.asarray(watershed(relief, markers, mask=mask))  # type: ignore[no-untyped-call]


def line_mask(shape: Sequence[int], points: Sequence[Point2]) -> np.ndarray:
    """The pixels of the polyline through `points` (y, x) that lie inside a 2D `shape`."""
    canvas = np.zeros((int(shape[0]), int(shape[1])), bool)
    path = list(points) if len(points) > 1 else list(points) * 2
    for (y0, x0), (y1, x1) in itertools.pairwise(path):
        rr, cc = _line_pixels(int(y0), int(x0), int(y1), int(x1))
        keep = (rr >= 0) & (rr < canvas.shape[0]) & (cc >= 0) & (cc < canvas.shape[1])
        canvas[rr[keep], cc[keep]] = True
    return canvas


def stroke_mask(shape: Sequence[int], points: Sequence[Point2], radius: float) -> np.ndarray:
    """Pixels within `radius` of the polyline through `points` (y, x) in a 2D `shape`.

    Parts of the line outside `shape` count too: a stroke along the edge of the volume
    paints the pixels within reach of it.
    """
    r = int(np.ceil(radius))
    padded = line_mask((int(shape[0]) + 2 * r, int(shape[1]) + 2 * r),
                       [(y + r, x + r) for y, x in points])
    if radius > 0.5:
        padded = ndimage.distance_transform_edt(~padded) <= radius
    return padded[r:r + int(shape[0]), r:r + int(shape[1])]


def stroke_box(z: int, points: Sequence[Point2], radius: float, shape: Sequence[int]) -> Box:
    ys = [p[0] for p in points]
    xs = [p[1] for p in points]
    r = int(np.ceil(radius)) + 1
    return Box(z, min(ys) - r, min(xs) - r, z + 1, max(ys) + r + 1, max(xs) + r + 1).clip(shape)


def _check_points(z: int, points: Sequence[Point2], shape: Sequence[int]) -> None:
    """Refuse a slice outside the volume, or points so far out they cannot be a stroke."""
    if not 0 <= z < shape[0]:
        raise BadInput(f"Slice {z} is outside the volume (0 to {shape[0] - 1}).")
    for y, x in points:
        if not (-MAX_OUTSIDE <= y < shape[1] + MAX_OUTSIDE
                and -MAX_OUTSIDE <= x < shape[2] + MAX_OUTSIDE):
            raise BadInput(f"The point y={y}, x={x} lies far outside the volume.")


def _label(value: int, dtype: np.dtype[Any]) -> np.ndarray:
    """`value` as a voxel of the layer's dtype, or BadInput (numpy would raise or wrap)."""
    if not 0 <= int(value) <= int(np.iinfo(dtype).max):
        raise BadInput(f"Segment ids of this layer go from 0 to {np.iinfo(dtype).max}.")
    return np.asarray(int(value), dtype)


def paint_fragment(ctx: EditContext, segment: int) -> tuple[int, dict[int, tuple[int, int]]]:
    """The fragment id to write for `segment`, and the mapping a new fragment needs."""
    if segment == 0:
        return 0, {}
    if ctx.segments_of([segment])[segment] == segment:
        return segment, {}  # the id is free, or its fragment still belongs to itself
    fragment = ctx.new_ids(1)[0]
    return fragment, {fragment: (fragment, segment)}


def paint(z: int, points: Sequence[Point2], radius: float, segment: int,
          only_on: int | None = None) -> ChangeMaker:
    """Paint (segment > 0) or erase (segment = 0) a stroke on slice z; the stroke is
    rasterised at full resolution whatever the zoom. `only_on` limits it to one segment."""
    if not points:
        raise BadInput("A stroke needs at least one point.")
    if radius < 0 or radius > 512:
        raise BadInput("The brush radius must be between 0 and 512 voxels.")

    def make(ctx: EditContext) -> Change:
        _check_points(z, points, ctx.shape)
        box = stroke_box(z, points, radius, ctx.shape)
        if box.empty:
            raise BadInput("The stroke lies outside the volume.")
        local = [(y - box.y0, x - box.x0) for y, x in points]
        mask = stroke_mask(box.shape[1:], local, radius)[None]
        before = ctx.read(box)
        if only_on is not None:
            mask &= _segments_volume(ctx, before) == only_on
        fragment, mapping = paint_fragment(ctx, segment)
        after = np.where(mask, _label(fragment, before.dtype), before)
        return Change(mapping, VoxelPatch(box, before, after))

    return make


def fill(z: int, y: int, x: int, segment: int, depth: int = 0,
         radius: int = 2048) -> ChangeMaker:
    """Flood-fill the region of the clicked segment (or of background) with `segment`.

    `depth` = 0 fills in 2D on slice z; a positive depth fills in 3D within z ± depth.
    The fill is bounded to a box of `radius` around the click; a region that reaches the
    box's edge is refused, since it is almost surely a contour that is not closed.
    """

    if depth < 0 or radius < 1:
        raise BadInput("A fill needs a depth of at least 0 and a radius of at least 1.")

    def make(ctx: EditContext) -> Change:
        _check_voxel(ctx, (z, y, x), "The fill")
        box = Box.around(z, y, x, (depth, radius, radius), ctx.shape)
        if int(np.prod(box.shape)) > MAX_FILL_VOXELS * 4:
            raise BadInput("The fill box is too large; lower its radius or depth.")
        before = ctx.read(box)
        seg = _segments_volume(ctx, before)
        clicked = seg[z - box.z0, y - box.y0, x - box.x0]
        structure = ndimage.generate_binary_structure(3, 1)
        regions, _ = ndimage.label(seg == clicked, structure=structure)
        region = regions == regions[z - box.z0, y - box.y0, x - box.x0]
        _refuse_open_region(region, box, ctx.shape)
        fragment, mapping = paint_fragment(ctx, segment)
        after = np.where(region, _label(fragment, before.dtype), before)
        return Change(mapping, VoxelPatch(box, before, after))

    return make


def _check_voxel(ctx: EditContext, point: Point3, what: str) -> None:
    if not all(0 <= int(p) < s for p, s in zip(point, ctx.shape, strict=True)):
        z, y, x = point
        raise BadInput(f"{what} at z={z}, y={y}, x={x} is outside the volume.")


def _segments_volume(ctx: EditContext, fragments: np.ndarray) -> np.ndarray:
    """The segment id of every voxel of `fragments` (through the mapping)."""
    ids, inverse = np.unique(fragments, return_inverse=True)
    lookup = ctx.segments_of(ids.tolist())
    segments = np.array([lookup[i] for i in ids.tolist()], dtype=np.int64)
    result: np.ndarray = segments[inverse.reshape(fragments.shape)]
    return result


def _refuse_open_region(region: np.ndarray, box: Box, shape: Sequence[int]) -> None:
    if int(region.sum()) > MAX_FILL_VOXELS:
        raise BadInput("The region is too large to fill; close its contour first.")
    # Touching the box's edge is fine where the box edge is the volume's edge.
    edges = [
        (region[:, 0, :].any() and box.y0 > 0), (region[:, -1, :].any() and box.y1 < shape[1]),
        (region[:, :, 0].any() and box.x0 > 0), (region[:, :, -1].any() and box.x1 < shape[2]),
    ]
    if any(edges):
        raise BadInput("The region is not closed within the fill radius; close its contour.")


def cut(segment: int, seeds_a: Sequence[Point3], seeds_b: Sequence[Point3],
        margin: int = 32) -> ChangeMaker:
    """Split a segment with a seeded watershed on the image inside a box around the seeds.

    Seeds on one slice give a 2D cut; seeds on several slices a 3D cut of the slices
    between them. The voxels of the segment reached from B get a new fragment id, which
    becomes a new segment; voxels of the segment outside the box keep their id.
    """
    if not seeds_a or not seeds_b:
        raise BadInput("A split needs seeds on both sides.")
    if segment <= 0:
        raise BadInput("Pick the segment to split (not the background).")

    def make(ctx: EditContext) -> Change:
        for seed in (*seeds_a, *seeds_b):
            _check_voxel(ctx, seed, "The seed")
        box = _seed_box([*seeds_a, *seeds_b], margin, ctx.shape)
        before = ctx.read(box)
        inside = _segments_volume(ctx, before) == segment
        markers = _markers(box, inside, seeds_a, seeds_b)
        regions = _watershed(membrane_relief(ctx.read_image(box)), markers, inside)
        side_b = regions == 2
        if not side_b.any() or not (regions == 1).any():
            raise BadInput("Both sides of the split must lie inside the segment.")
        new = ctx.new_ids(1)[0]
        after = np.where(side_b, _label(new, before.dtype), before)
        return Change(patch=VoxelPatch(box, before, after))

    return make


def membrane_relief(image: np.ndarray) -> np.ndarray:
    """The landscape a split floods, slice by slice: high on dark membranes.

    EM membranes are dark lines; a watershed on the inverted (lightly smoothed) image
    lets both sides flood the bright cytoplasm first and meet on the membrane's middle.
    (An intensity gradient would put the ridges on the membrane's two edges instead.)
    """
    planes = image.astype(np.float32)
    smoothed = ndimage.gaussian_filter(planes, sigma=(0, 1.0, 1.0))
    relief: np.ndarray = -smoothed
    return relief


def split_line(z: int, points: Sequence[Point2], band: float = 4.0,
               max_window: int = 2048, segment: int | None = None) -> ChangeMaker:
    """Split the segment a line is drawn across, on slice z (Dojo's split).

    The segment (by default the one the line crosses) minus a band around the line falls
    into pieces; the two largest seed a watershed on the image, which moves the cut inside
    the band onto the dark membrane. The smaller side gets a new fragment id (a new
    segment). Only the parts of the segment the line touches on this slice are split.
    """
    if len(points) < 2:
        raise BadInput("Draw a line across the segment to split it.")
    if band <= 0:
        raise BadInput("The band around the line must be wider than 0.")

    def make(ctx: EditContext) -> Change:
        _check_points(z, points, ctx.shape)
        window = _line_window(ctx, z, points, max_window)
        chosen = segment if segment is not None else _segment_crossed(ctx, window, points)
        box = _slice_window(ctx, chosen, window)
        before = ctx.read(box)
        local = [(y - box.y0, x - box.x0) for y, x in points]
        inside = _crossed_parts(_segments_volume(ctx, before)[0] == chosen, local)
        markers = _two_sides(inside & ~stroke_mask(inside.shape, local, band))
        relief = membrane_relief(ctx.read_image(box))[0]
        regions = _watershed(relief, markers, inside)
        new = ctx.new_ids(1)[0]
        after = np.where((regions == 2)[None], _label(new, before.dtype), before)
        return Change(patch=VoxelPatch(box, before, after))

    return make


def _line_window(ctx: EditContext, z: int, points: Sequence[Point2], max_window: int) -> Box:
    """The part of slice z a line split may look at: `max_window` around the line's centre."""
    ys = [p[0] for p in points]
    xs = [p[1] for p in points]
    half = max(max_window // 2, 1)
    cy, cx = (min(ys) + max(ys)) // 2, (min(xs) + max(xs)) // 2
    return Box(z, cy - half, cx - half, z + 1, cy + half, cx + half).clip(ctx.shape)


def _segment_crossed(ctx: EditContext, window: Box, points: Sequence[Point2]) -> int:
    """The segment the line crosses: one it enters and leaves (the line's ends lie on
    its neighbours), the one covering most of the line if several; else the one under
    most of the line."""
    local = [(y - window.y0, x - window.x0) for y, x in points]
    on_line = line_mask(window.shape[1:], local)
    segments = _segments_volume(ctx, ctx.read(window))[0]
    ends = {int(segments[p]) for p in (_clamp(local[0], on_line.shape),
                                       _clamp(local[-1], on_line.shape))}
    ids, counts = np.unique(segments[on_line], return_counts=True)
    ranked = sorted(zip(counts.tolist(), ids.tolist(), strict=True), reverse=True)
    crossed = [s for _, s in ranked if s != 0 and s not in ends]
    under = [s for _, s in ranked if s != 0]
    if not under:
        raise BadInput("The line does not cross any segment.")
    return int((crossed or under)[0])


def _clamp(point: Point2, shape: Sequence[int]) -> Point2:
    return (min(max(int(point[0]), 0), shape[0] - 1), min(max(int(point[1]), 0), shape[1] - 1))


def _slice_window(ctx: EditContext, segment: int, window: Box) -> Box:
    """The segment's extent on the slice (from its box), within the line's window."""
    extent = ctx.segment_box(segment)
    if extent is None:
        raise BadInput(f"Segment {segment} does not exist.")
    return Box(window.z0, max(extent.y0, window.y0), max(extent.x0, window.x0), window.z1,
               min(extent.y1, window.y1), min(extent.x1, window.x1))


def _crossed_parts(inside: np.ndarray, points: Sequence[Point2]) -> np.ndarray:
    """The connected parts of a 2D segment mask that the line touches.

    A segment may have several separate parts on one slice; splitting one must leave
    the others alone (and must not take them for the two sides of the cut).
    """
    if inside.size == 0:
        raise BadInput("The line does not cross the segment on this slice.")
    parts, _ = ndimage.label(inside)
    touched = np.unique(parts[line_mask(inside.shape, points) & inside])
    if touched.size == 0:
        raise BadInput("The line does not cross the segment on this slice.")
    crossed: np.ndarray = np.isin(parts, touched)
    return crossed


def _two_sides(pieces_mask: np.ndarray) -> np.ndarray:
    """Markers 1 and 2 on the largest and second-largest pieces of the cut segment."""
    pieces, count = ndimage.label(pieces_mask)
    if count < 2:
        raise BadInput("The line must cross the segment from one side to the other.")
    sizes = np.bincount(pieces.ravel())[1:]
    largest, second = (np.argsort(sizes)[::-1][:2] + 1).tolist()
    markers = np.zeros(pieces.shape, np.int32)
    markers[pieces == largest] = 1
    markers[pieces == second] = 2
    return markers


def _seed_box(points: Sequence[Point3], margin: int, shape: Sequence[int]) -> Box:
    zs, ys, xs = zip(*points, strict=True)
    return Box(min(zs), min(ys) - margin, min(xs) - margin,
               max(zs) + 1, max(ys) + margin + 1, max(xs) + margin + 1).clip(shape)


def _markers(box: Box, inside: np.ndarray, seeds_a: Sequence[Point3],
             seeds_b: Sequence[Point3]) -> np.ndarray:
    markers = np.zeros(inside.shape, np.int32)
    for label, seeds in ((1, seeds_a), (2, seeds_b)):
        for z, y, x in seeds:
            local = (z - box.z0, y - box.y0, x - box.x0)
            if not inside[local]:
                raise BadInput(f"The seed at z={z}, y={y}, x={x} is not inside the segment.")
            if markers[local] not in (0, label):
                raise BadInput(f"The seed at z={z}, y={y}, x={x} is on both sides.")
            markers[local] = label
    return markers
