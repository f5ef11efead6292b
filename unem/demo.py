"""A procedural electron-microscopy volume to proofread, made entirely by code.

A first-time user gets a serial-section TEM stack of neuropil (neurites cut across, dark
membranes, mitochondria, synaptic vesicles), its ground truth and a segmentation with a
known handful of merge and split errors, without downloading anything.

How it is made: cells are the regions nearest to seed "tubes" that run along z (ssTEM cuts
most neurites across), warped by a smooth random field so that their boundaries are wavy.
The image is then painted from the labels: textured grey cytoplasm, dark membranes where
in-plane neighbours differ, organelles that follow their cell from slice to slice, and
finally the microscope: blur, noise and slice-to-slice brightness jitter.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from unem.errors import BadInput
from unem.progress import Progress, no_progress
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

Floats = npt.NDArray[np.float32]
Labels = npt.NDArray[np.uint32]
Mask = npt.NDArray[np.bool_]

DEFAULT_SHAPE = (32, 384, 384)
DEMO_NAME = "Demo EM volume"
# Anisotropic like ssTEM: sections (z) are five times thicker than the pixels are wide.
VOXEL_SIZE = (40.0, 8.0, 8.0)
GENERATION_STEPS = 3

# Cells: about 55 seeds per 384×384 px (70-80 cells in view with those cut by its edge).
# Seeds also fill a margin outside the view, so that cells at the edge are cut off by it
# rather than stretched to it.
CELL_DENSITY = 55 / 384**2
PAD = 48
SEED_GAP = 4.0  # px between seed tubes: cells fill their seeds' surroundings, so stay round
INFLATE = 1.0  # at most this share of its radius added to a seed by inflation
SWELL_PERIOD = 24.0  # slices between varicosities of a neurite
WARP_SPACING = 40  # px: correlation length of the warp, a few waves per cell boundary
WARP_AMPLITUDE = 9.0  # px: far below the spacing, so the warp never folds a cell

# Grey values (0-255) before blur; a 2-px membrane blurred with sigma 1 ends near 60-70.
CYTOPLASM = 158.0
MEMBRANE = 38.0
MITO_MATRIX = 112.0
MITO_RIM = 60.0
PSD = 22.0
NOISE = 7.0

MERGES = 3
SPLITS = 3


@dataclass(frozen=True, eq=False)
class DemoVolume:
    """A generated EM volume with its ground truth and an imperfect segmentation.

    Attributes
    ----------
    image : ndarray of uint8, shape (z, y, x)
        The EM image.
    truth : ndarray of uint32, shape (z, y, x)
        Neuron ids 1..n, dense: every voxel belongs to a cell (membranes included).
    segmentation : ndarray of uint32, shape (z, y, x)
        `truth` with `merged_pairs` merged (into the first id of each pair) and each of
        `split_ids` split by a plane (one side keeps the id, the other gets a new one).
    merged_pairs : list of (int, int)
        Truth ids of touching cells that the segmentation wrongly merges.
    split_ids : list of int
        Truth ids that the segmentation wrongly splits in two.
    voxel_size : (float, float, float)
        Voxel size (z, y, x) in nm.
    """

    image: npt.NDArray[np.uint8]
    truth: Labels
    segmentation: Labels
    merged_pairs: list[tuple[int, int]]
    split_ids: list[int]
    voxel_size: tuple[float, float, float] = VOXEL_SIZE


def generate_demo_volume(
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    seed: int = 0,
    *,
    progress: Progress = no_progress,
) -> DemoVolume:
    """Generate a demo EM volume; the same shape and seed always give the same volume.

    Parameters
    ----------
    shape : (int, int, int)
        Volume shape (z, y, x); y and x at least 32. The default takes a few seconds.
    seed : int
        Seed of the random generator.
    progress : Progress
        Told of each of the GENERATION_STEPS steps.

    Returns
    -------
    DemoVolume
        uint8 image, uint32 ground truth and segmentation, all of `shape`, and the list
        of errors put into the segmentation.
    """
    shape = _check_shape(shape)
    rng = np.random.default_rng(seed)
    progress(0, GENERATION_STEPS, "growing cells")
    truth = _grow_cells(rng, shape)
    progress(1, GENERATION_STEPS, "adding segmentation errors")
    segmentation, merged_pairs, split_ids = _add_errors(rng, truth)
    progress(2, GENERATION_STEPS, "painting the EM image")
    image = _render_image(rng, truth)
    progress(GENERATION_STEPS, GENERATION_STEPS, "generated")
    return DemoVolume(image, truth, segmentation, merged_pairs, split_ids)


def create_demo_dataset(
    ws: Workspace,
    user: str = "admin",
    progress: Progress = no_progress,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    seed: int = 0,
) -> Dataset:
    """Generate the demo volume and import it into `ws` as the dataset "Demo EM volume".

    The dataset has an image, a segmentation (with known errors) and a groundtruth layer,
    at VOXEL_SIZE. `progress` runs once from 0 to one total over generation and import.
    """
    import_steps = 3 * shape[0]  # import_dataset reports one step per slice of each layer
    volume = generate_demo_volume(shape, seed, progress=_shifted(progress, 0, import_steps))
    sources = {
        "image": array_source(volume.image, "generated demo image"),
        "segmentation": array_source(volume.segmentation, "generated demo segmentation"),
        "groundtruth": array_source(volume.truth, "generated demo ground truth"),
    }
    return import_dataset(ws, DEMO_NAME, sources, volume.voxel_size, user=user,
                          progress=_shifted(progress, GENERATION_STEPS, 0))


def _shifted(progress: Progress, before: int, after: int) -> Progress:
    """A Progress reporting into a larger whole: `before` steps done, `after` still to come."""

    def report(step: int, total: int, message: str = "") -> None:
        progress(before + step, before + total + after, message)

    return report


def _check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[0] < 1 or min(shape[1:]) < 32:
        raise BadInput(f"A demo volume needs a (z, y, x) shape with y, x >= 32, not {shape}.")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]
) -> Floats:
    """Gaussian noise of unit variance, correlated over `sigma` px along each axis."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return np.asarray(noise / max(float(noise.std()), 1e-6), dtype=np.float32)


# ---------------------------------------------------------------------------------------
# Cells


@dataclass(frozen=True)
class _Neurite:
    """A seed tube: a capsule-shaped cross-section that drifts linearly from slice to slice."""

    y: float  # centre in the middle slice (canvas px)
    x: float
    vy: float  # drift (px per slice)
    vx: float
    radius: float  # largest radius; varicosities make it swell and narrow along z
    half_length: float  # 0 for round profiles; > 0 for neurites cut obliquely
    angle: float  # direction of the long axis (radians)
    swell: float = 0.0  # relative narrowing between varicosities
    phase: float = 0.0

    @property
    def reach(self) -> float:
        return self.radius + self.half_length

    def radius_at(self, dz: float) -> float:
        wave = 0.5 + 0.5 * math.cos(2 * math.pi * dz / SWELL_PERIOD + self.phase)
        return self.radius * (1 - self.swell * wave)


# Kinds of seed and their share of the cells, largest first: a few thick dendrites and
# oblique neurites, many axons, and thin fibres in the gaps between them.
NEURITE_KINDS = (("dendrite", 0.06), ("oblique", 0.08), ("axon", 0.46), ("thin", 0.4))


def _random_neurite(rng: np.random.Generator, kind: str, canvas: tuple[int, int]) -> _Neurite:
    """A seed of one `kind`: thick dendrites, axons, thin fibres, or neurites cut at an angle."""
    y, x, angle = rng.uniform(0, canvas[0]), rng.uniform(0, canvas[1]), rng.uniform(0, 2 * np.pi)
    swell, phase = rng.uniform(0, 0.15), rng.uniform(0, 2 * np.pi)
    if kind == "oblique":
        # A neurite crossing the sections obliquely is elongated in-plane and moves along
        # its long axis from one section to the next.
        half = rng.uniform(12, 28)
        speed = half / 14
        radius = rng.uniform(8, 14)
        return _Neurite(y, x, speed * math.sin(angle), speed * math.cos(angle), radius, half,
                        angle, swell, phase)
    vy, vx = rng.normal(0, 0.12, 2)
    low, high = {"dendrite": (45, 65), "axon": (16, 34), "thin": (6, 12)}[kind]
    radius = math.exp(rng.uniform(math.log(low), math.log(high)))
    return _Neurite(y, x, float(vy), float(vx), radius, 0.0, angle, swell, phase)


def _clearances(candidate: _Neurite, table: npt.NDArray[np.float64], depth: int) -> Floats:
    """Smallest gap (px) between `candidate` and each tube of `table` over all slices.

    `table` has one row (y, x, vy, vx, reach) per placed tube.
    """
    d0 = np.array([candidate.y, candidate.x]) - table[:, :2]
    dv = np.array([candidate.vy, candidate.vx]) - table[:, 2:4]
    mid = (depth - 1) / 2
    # The relative position moves linearly with z: its closest approach is at t.
    t = np.clip(-(d0 * dv).sum(1) / np.maximum((dv * dv).sum(1), 1e-9), -mid, mid)
    gap = np.hypot(*(d0 + dv * t[:, None]).T) - table[:, 4] - candidate.reach
    return np.asarray(gap, dtype=np.float32)


def _row(neurite: _Neurite) -> tuple[float, float, float, float, float]:
    return neurite.y, neurite.x, neurite.vy, neurite.vx, neurite.reach


def _place_neurites(
    rng: np.random.Generator, canvas: tuple[int, int], depth: int, count: int
) -> list[_Neurite]:
    """About `count` seed tubes that never come closer than SEED_GAP in any slice.

    Large kinds go first (they need the most room) and are then inflated into the room
    left around them; thin fibres last, into the gaps, as in real neuropil.
    """
    placed: list[_Neurite] = []
    table = np.empty((0, 5))
    for kind, share in NEURITE_KINDS:
        if kind == "thin":
            placed, table = _inflate(placed, table, depth)
        wanted, attempts = len(placed) + round(share * count), 100 * round(share * count)
        for candidate in (_random_neurite(rng, kind, canvas) for _ in range(attempts)):
            if (_clearances(candidate, table, depth) >= SEED_GAP).all():
                placed.append(candidate)
                table = np.vstack([table, _row(candidate)])
            if len(placed) == wanted:
                break
    return placed


def _inflate(
    placed: list[_Neurite], table: npt.NDArray[np.float64], depth: int
) -> tuple[list[_Neurite], npt.NDArray[np.float64]]:
    """Grow each seed into the room left around it, so cells hug their round seeds."""
    for i, neurite in enumerate(placed):
        others = np.delete(table, i, axis=0)
        room = float(_clearances(neurite, others, depth).min(initial=np.inf)) - SEED_GAP
        grow = min(max(room, 0.0), INFLATE * neurite.radius)
        placed[i] = dataclasses.replace(neurite, radius=neurite.radius + grow)
        table[i] = _row(placed[i])
    return placed, table


def _draw_seed(seeds: Labels, neurite: _Neurite, dz: float, label: int) -> None:
    """Paint the capsule of `neurite`, `dz` slices from the middle one, into `seeds`."""
    cy, cx = neurite.y + neurite.vy * dz, neurite.x + neurite.vx * dz
    y0, x0 = max(int(cy - neurite.reach), 0), max(int(cx - neurite.reach), 0)
    y1 = min(int(cy + neurite.reach) + 2, seeds.shape[0])
    x1 = min(int(cx + neurite.reach) + 2, seeds.shape[1])
    if y0 >= y1 or x0 >= x1:
        return  # drifted out of the canvas: the neurite leaves the field of view
    yy, xx = np.mgrid[y0:y1, x0:x1]
    uy, ux = math.sin(neurite.angle), math.cos(neurite.angle)
    t = np.clip((yy - cy) * uy + (xx - cx) * ux, -neurite.half_length, neurite.half_length)
    inside = np.hypot(yy - cy - t * uy, xx - cx - t * ux) <= neurite.radius_at(dz)
    seeds[y0:y1, x0:x1][inside] = label


def _nearest_seed(seeds: Labels) -> Labels:
    """Label every pixel with its nearest seed: a Voronoi diagram weighted by seed size."""
    if not seeds.any():
        return np.ones_like(seeds)
    nearest = ndimage.distance_transform_edt(seeds == 0, return_distances=False,
                                             return_indices=True)
    return np.asarray(seeds[nearest[0], nearest[1]], dtype=np.uint32)


def _warp_slice(labels: Labels, grid: Floats, displacement: Floats) -> Labels:
    """Sample canvas `labels` at the view `grid` (2, y, x) moved by `displacement` (2, y, x)."""
    out = np.empty(grid.shape[1:], np.uint32)
    ndimage.map_coordinates(labels, grid + PAD + displacement, out, order=0, mode="nearest")
    return out


def _displacements(rng: np.random.Generator, shape: tuple[int, int, int]) -> Floats:
    """Smooth in-plane displacements, shape (z, 2, y, x): correlated over WARP_SPACING px."""
    depth, height, width = shape
    # Noise on a grid of 8 px, smoothed there and interpolated linearly: far cheaper than
    # smoothing at full resolution, and the kinks every 8 px are far below a pixel.
    coarse_shape = (depth, 2, height // 8 + 3, width // 8 + 3)
    sigma = WARP_SPACING / 8 / 2
    coarse = _smooth_noise(rng, coarse_shape, (5.0, 0, sigma, sigma)) * WARP_AMPLITUDE
    at = np.mgrid[0:height, 0:width].astype(np.float32) / 8 + 1
    out = np.empty((depth, 2, height, width), np.float32)
    for z, axis in np.ndindex(depth, 2):
        ndimage.map_coordinates(coarse[z, axis], at, out[z, axis], order=1, mode="nearest")
    return out


def _relabel(labels: Labels) -> Labels:
    """Renumber the ids present to 1..n, in order."""
    present = np.flatnonzero(np.bincount(labels.ravel()))
    present = present[present > 0]
    lookup = np.zeros(int(labels.max()) + 1, np.uint32)
    lookup[present] = np.arange(1, present.size + 1, dtype=np.uint32)
    return lookup[labels]


def _grow_cells(rng: np.random.Generator, shape: tuple[int, int, int]) -> Labels:
    """Dense neuron labels, shape (z, y, x), ids 1..n: tubes along z with wavy boundaries."""
    depth, height, width = shape
    canvas = (height + 2 * PAD, width + 2 * PAD)
    count = max(4, round(CELL_DENSITY * canvas[0] * canvas[1]))
    neurites = _place_neurites(rng, canvas, depth, count)
    displacements = _displacements(rng, shape)
    grid = np.mgrid[0:height, 0:width].astype(np.float32)
    truth = np.empty(shape, np.uint32)
    for z in range(depth):
        seeds = np.zeros(canvas, np.uint32)
        for label, neurite in enumerate(neurites, start=1):
            _draw_seed(seeds, neurite, z - (depth - 1) / 2, label)
        truth[z] = _warp_slice(_nearest_seed(seeds), grid, displacements[z])
    return _relabel(truth)


# ---------------------------------------------------------------------------------------
# Segmentation errors


def _contacts(truth: Labels) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Touching pairs as keys a·(n+1) + b with a < b, and their contact areas (faces)."""
    n = int(truth.max()) + 1
    keys = []
    for a, b in ((truth[1:], truth[:-1]), (truth[:, 1:], truth[:, :-1]),
                 (truth[:, :, 1:], truth[:, :, :-1])):
        differ = a != b
        lo = np.minimum(a[differ], b[differ]).astype(np.int64)
        hi = np.maximum(a[differ], b[differ]).astype(np.int64)
        keys.append(lo * n + hi)
    unique, counts = np.unique(np.concatenate(keys), return_counts=True)
    return unique, counts


def _pick_splits(rng: np.random.Generator, truth: Labels, count: int) -> list[int]:
    """`count` of the largest cells (at random among the largest), whose split shows."""
    sizes = np.bincount(truth.ravel())
    sizes[0] = 0
    largest = np.argsort(sizes)[::-1][: 3 * count]
    largest = largest[sizes[largest] > 0]
    chosen = rng.choice(largest, min(count, largest.size), replace=False)
    return sorted(int(label) for label in chosen)


def _pick_merges(
    rng: np.random.Generator, truth: Labels, count: int, exclude: set[int]
) -> list[tuple[int, int]]:
    """`count` disjoint pairs of touching cells with large contacts, none in `exclude`."""
    keys, areas = _contacts(truth)
    n = int(truth.max()) + 1
    top = keys[np.argsort(areas, kind="stable")[::-1][: 8 * count]]
    chosen: list[tuple[int, int]] = []
    used = set(exclude)
    for key in rng.permutation(top):
        a, b = divmod(int(key), n)
        if len(chosen) < count and not {a, b} & used:
            chosen.append((a, b))
            used |= {a, b}
    return chosen


def _split_side(
    rng: np.random.Generator, truth: Labels, label: int
) -> tuple[npt.NDArray[np.intp], ...]:
    """Voxel indices of cell `label` on one side of a random plane through its centroid."""
    where = np.nonzero(truth == label)
    points = np.stack(where, axis=1) * np.array(VOXEL_SIZE)  # nm, so the plane is isotropic
    points -= points.mean(axis=0)
    side = np.zeros(len(points), bool)
    for _ in range(20):  # a plane that leaves a sliver is no visible split: try another
        normal = rng.normal(size=3)
        side = points @ (normal / np.linalg.norm(normal)) > 0
        if 0.25 <= side.mean() <= 0.75:
            break
    return tuple(index[side] for index in where)


def _add_errors(
    rng: np.random.Generator, truth: Labels
) -> tuple[Labels, list[tuple[int, int]], list[int]]:
    """The segmentation: `truth` with MERGES merged pairs and SPLITS split cells."""
    split_ids = _pick_splits(rng, truth, SPLITS)
    merged_pairs = _pick_merges(rng, truth, MERGES, exclude=set(split_ids))
    segmentation = truth.copy()
    for a, b in merged_pairs:
        segmentation[truth == b] = a
    next_id = int(truth.max()) + 1
    for offset, label in enumerate(split_ids):
        segmentation[_split_side(rng, truth, label)] = next_id + offset
    return segmentation, merged_pairs, split_ids


# ---------------------------------------------------------------------------------------
# Image


@dataclass(frozen=True)
class _Scene:
    """What organelles are painted into, and where there is room for them."""

    truth: Labels  # (z, y, x)
    inside: Floats  # (z, y, x): in-plane distance (px) to the nearest membrane
    image: Floats  # (z, y, x): grey values being painted
    occupied: Mask  # (z, y, x): already holds an organelle
    centroids: npt.NDArray[np.float64]  # (z, n + 1, 2): (y, x) of each cell per slice, or NaN

    def at(self, cell: int, offset: tuple[float, float], z: int) -> tuple[float, float] | None:
        """Where a point fixed relative to `cell` lies in slice `z` (None if it is absent)."""
        cy, cx = self.centroids[z, cell]
        return None if math.isnan(cy) else (cy + offset[0], cx + offset[1])


def _membranes(truth: Labels) -> Mask:
    """In-plane boundaries between cells, 2 px thick (a pixel on each side of each edge)."""
    edge = np.zeros(truth.shape, bool)
    across_y = truth[:, 1:, :] != truth[:, :-1, :]
    across_x = truth[:, :, 1:] != truth[:, :, :-1]
    edge[:, 1:, :] |= across_y
    edge[:, :-1, :] |= across_y
    edge[:, :, 1:] |= across_x
    edge[:, :, :-1] |= across_x
    return edge


def _distance_inside(membranes: Mask) -> Floats:
    """In-plane distance (px) from each voxel to the nearest membrane voxel."""
    inside = np.empty(membranes.shape, np.float32)
    for z in range(membranes.shape[0]):
        inside[z] = ndimage.distance_transform_edt(~membranes[z]) if membranes[z].any() else 1e3
    return inside


def _centroids(truth: Labels) -> npt.NDArray[np.float64]:
    """(y, x) centroid of every cell in every slice, shape (z, n + 1, 2); NaN where absent."""
    n = int(truth.max()) + 1
    yy, xx = np.mgrid[0 : truth.shape[1], 0 : truth.shape[2]]
    out = np.full((truth.shape[0], n, 2), np.nan)
    for z in range(truth.shape[0]):
        labels = truth[z].ravel()
        count = np.bincount(labels, minlength=n).astype(np.float64)
        count[count == 0] = np.nan
        out[z, :, 0] = np.bincount(labels, yy.ravel(), n) / count
        out[z, :, 1] = np.bincount(labels, xx.ravel(), n) / count
    return out


def _cytoplasm(rng: np.random.Generator, truth: Labels) -> Floats:
    """Grey cytoplasm: a tone per cell (staining varies) plus fine granular texture."""
    tone = rng.normal(CYTOPLASM, 7, int(truth.max()) + 1)
    dark = rng.random(tone.size) < 0.06  # a few cells with dense, darker cytoplasm
    tone[dark] -= 30
    grain = _smooth_noise(rng, truth.shape, (0, 0.7, 0.7)) * 9
    blotch = _smooth_noise(rng, truth.shape, (0, 2.5, 2.5)) * 6
    return np.asarray(tone.astype(np.float32)[truth] + grain + blotch, dtype=np.float32)


def _paint_membranes(image: Floats, membranes: Mask) -> None:
    """Darken the membranes: smooth dark lines, paler and wider where a membrane is oblique."""
    # Smoothing the mask in-plane hides the pixel staircase of the labels; smoothing it
    # across sections widens membranes that move from one section to the next, as oblique
    # membranes look in a section of finite thickness.
    weight = ndimage.gaussian_filter(membranes.astype(np.float32), (0.7, 0.8, 0.8))
    weight = np.minimum(weight * 1.8, 1)  # saturated: full darkness on the line itself
    image += weight * (MEMBRANE - image)


def _free_spot(
    rng: np.random.Generator, scene: _Scene, z: int, clearance: float, most: float = np.inf
) -> tuple[int, int, int] | None:
    """A random (y, x, cell) of slice `z` at least `clearance` px from membranes and organelles.

    `most` caps the distance to the nearest membrane.
    """
    room = (scene.inside[z] >= clearance) & (scene.inside[z] <= most) & ~scene.occupied[z]
    candidates = np.flatnonzero(room)
    if candidates.size == 0:
        return None
    y, x = divmod(int(rng.choice(candidates)), scene.truth.shape[2])
    if scene.occupied[z, max(y - int(clearance), 0) : y + int(clearance) + 1,
                      max(x - int(clearance), 0) : x + int(clearance) + 1].any():
        return None
    return y, x, int(scene.truth[z, y, x])


def _window(
    scene: _Scene, z: int, centre: tuple[float, float], reach: float
) -> tuple[slice, slice, npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Slices of a box of radius `reach` around `centre` and its pixel offsets from it."""
    height, width = scene.truth.shape[1:]
    y0, x0 = max(int(centre[0] - reach), 0), max(int(centre[1] - reach), 0)
    y1, x1 = min(int(centre[0] + reach) + 2, height), min(int(centre[1] + reach) + 2, width)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    return slice(y0, y1), slice(x0, x1), yy - centre[0], xx - centre[1]


# Mitochondria ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mitochondrion:
    """An ellipsoid along z: elliptical profiles with a dark double membrane and cristae."""

    cell: int
    offset: tuple[float, float]  # from the cell's centroid, so it follows the neurite
    z: int
    half_depth: float  # slices
    long: float  # in-plane semi-axes (px)
    short: float
    angle: float
    period: float  # px between cristae
    phase: float


def _add_mitochondria(rng: np.random.Generator, scene: _Scene) -> None:
    """About 24 mitochondria per default volume, in cells wide enough to hold them."""
    depth, height, width = scene.truth.shape
    for _ in range(max(1, round(24 * depth * height * width / (32 * 384 * 384)))):
        long = float(rng.uniform(14, 26))
        z = int(rng.integers(depth))
        spot = _free_spot(rng, scene, z, long + 3)
        if spot is None:
            continue
        y, x, cell = spot
        cy, cx = scene.centroids[z, cell]
        mito = _Mitochondrion(cell, (y - cy, x - cx), z, float(rng.uniform(4, 12)), long,
                              long * float(rng.uniform(0.45, 0.85)), float(rng.uniform(0, np.pi)),
                              float(rng.uniform(5, 8)), float(rng.uniform(0, 1)))
        for zi in range(max(0, z - int(mito.half_depth)), min(depth, z + int(mito.half_depth) + 1)):
            _draw_mitochondrion(scene, mito, zi)


def _draw_mitochondrion(scene: _Scene, mito: _Mitochondrion, z: int) -> None:
    """Paint the profile of `mito` in slice `z`, narrowing towards its ends."""
    scale = math.sqrt(max(0.0, 1 - ((z - mito.z) / (mito.half_depth + 0.5)) ** 2))
    centre = scene.at(mito.cell, mito.offset, z)
    box = None if centre is None or scale < 0.35 else _window(scene, z, centre, mito.long)
    if box is None:
        return
    ys, xs, dy, dx = box
    u = dx * math.cos(mito.angle) + dy * math.sin(mito.angle)  # along the long axis
    v = -dx * math.sin(mito.angle) + dy * math.cos(mito.angle)
    rho = np.hypot(u / (mito.long * scale), v / (mito.short * scale))
    depth_in = (1 - rho) * mito.short * scale  # roughly px from the outer membrane
    room = (scene.truth[z, ys, xs] == mito.cell) & (scene.inside[z, ys, xs] >= 2)
    inside = (rho <= 1) & room
    image = scene.image[z, ys, xs]
    wave = ((u / mito.period + mito.phase) % 1 - 0.5) * mito.period  # px to nearest crista
    matrix = MITO_MATRIX + 0.5 * (image - CYTOPLASM) - 40 * np.exp(-((wave / 0.9) ** 2))
    value = np.where(depth_in < 2.0, MITO_RIM, np.where(depth_in < 3.0, MITO_MATRIX + 10, matrix))
    image[inside] = value[inside]
    scene.occupied[z, ys, xs] |= rho <= 1.3


# Microtubules ---------------------------------------------------------------------------


def _add_microtubules(rng: np.random.Generator, scene: _Scene) -> None:
    """Small dark dots in thin neurites: microtubules cut across, kept from slice to slice."""
    dots = np.zeros(scene.truth.shape, np.float32)
    sizes = np.bincount(scene.truth.ravel()) / scene.truth.shape[0]
    for cell in np.flatnonzero((sizes > 150) & (sizes < 5000)):
        if rng.random() < 0.6:
            _track_dots(rng, scene, int(cell), math.sqrt(sizes[cell] / np.pi), dots)
    # A dot blurred with sigma 1 peaks at 1/(2π): scale so that one microtubule is 70 deep.
    scene.image[...] -= 70 * 2 * np.pi * ndimage.gaussian_filter(dots, (0, 1.0, 1.0))


def _track_dots(
    rng: np.random.Generator, scene: _Scene, cell: int, radius: float, dots: Floats
) -> None:
    """Add 3-10 microtubules of `cell` to `dots`: points wandering slowly along z."""
    count = int(rng.integers(3, 11))
    angle, distance = rng.uniform(0, 2 * np.pi, count), radius * np.sqrt(rng.random(count)) * 0.6
    offsets = np.stack([distance * np.sin(angle), distance * np.cos(angle)], axis=1)
    for z in range(scene.truth.shape[0]):
        offsets += rng.normal(0, 0.3, offsets.shape)
        centre = scene.centroids[z, cell]
        if math.isnan(centre[0]):
            continue
        y, x = np.rint(centre + offsets).astype(int).T
        ok = (y >= 0) & (y < dots.shape[1]) & (x >= 0) & (x < dots.shape[2])
        y, x = y[ok], x[ok]
        keep = (scene.truth[z, y, x] == cell) & (scene.inside[z, y, x] >= 3)
        keep &= ~scene.occupied[z, y, x]
        dots[z, y[keep], x[keep]] += 1


# Synapses -------------------------------------------------------------------------------


def _add_synapses(rng: np.random.Generator, scene: _Scene, membranes: Mask) -> None:
    """Vesicle clusters in boutons, each facing a dark postsynaptic density."""
    depth, height, width = scene.truth.shape
    for _ in range(max(1, round(12 * depth * height * width / (32 * 384 * 384)))):
        z = int(rng.integers(depth))
        # Close to a membrane: vesicles gather at the active zone, next to the cleft.
        spot = _free_spot(rng, scene, z, 9, most=16)
        if spot is None:
            continue
        y, x, cell = spot
        cy, cx = scene.centroids[z, cell]
        spread, length = float(rng.uniform(9, 15)), float(rng.uniform(10, 18))
        for zi in range(max(0, z - 2), min(depth, z + 3)):
            shrink = 1 - abs(zi - z) / 3.5  # a cluster is a ball: smaller in its outer sections
            _draw_psd(scene, membranes, cell, (y - cy, x - cx), zi, length * shrink)
            _draw_vesicles(rng, scene, cell, (y - cy, x - cx), zi, spread * shrink)


def _draw_vesicles(
    rng: np.random.Generator,
    scene: _Scene,
    cell: int,
    offset: tuple[float, float],
    z: int,
    spread: float,
) -> None:
    """Synaptic vesicles (dark rings ~40 nm across) of one section, scattered around `offset`."""
    centre = scene.at(cell, offset, z)
    if centre is None:
        return
    placed: list[tuple[float, float]] = []
    for _ in range(int(2 * spread**2)):
        dy, dx = rng.normal(0, spread / 2, 2)
        y, x, radius = centre[0] + dy, centre[1] + dx, float(rng.uniform(2.3, 3.2))
        if all(math.hypot(y - py, x - px) > 2 * radius + 0.8 for py, px in placed) and (
            _draw_vesicle(scene, cell, z, (y, x), radius)
        ):
            placed.append((y, x))


def _draw_vesicle(
    scene: _Scene, cell: int, z: int, centre: tuple[float, float], radius: float
) -> bool:
    """Paint one vesicle if it fits inside `cell`; return whether it was painted."""
    box = _window(scene, z, centre, radius + 2)
    if box is None:
        return False
    ys, xs, dy, dx = box
    distance = np.hypot(dy, dx)
    disc = distance <= radius + 1.2
    fits = (scene.truth[z, ys, xs] == cell) & (scene.inside[z, ys, xs] >= 2)
    if not (fits & ~scene.occupied[z, ys, xs])[disc].all():
        return False
    ring = 75 * np.exp(-(((distance - radius) / 0.8) ** 2)) - 12 * (distance < radius - 1)
    scene.image[z, ys, xs] -= np.where(disc, ring, 0).astype(np.float32)
    scene.occupied[z, ys, xs] |= disc
    return True


def _draw_psd(
    scene: _Scene, membranes: Mask, cell: int, offset: tuple[float, float], z: int, length: float
) -> None:
    """Darken the partner's side of the membrane nearest a vesicle cluster: the synapse."""
    centre = scene.at(cell, offset, z)
    box = None if centre is None else _window(scene, z, centre, 40)
    if box is None:
        return
    ys, xs, dy, dx = box
    own = membranes[z, ys, xs] & (scene.truth[z, ys, xs] == cell)
    if not own.any():
        return
    nearest = np.unravel_index(np.argmin(np.where(own, np.hypot(dy, dx), np.inf)), own.shape)
    active = own & (np.hypot(dy - dy[nearest], dx - dx[nearest]) <= length)
    # The postsynaptic density: dark at the membrane, fading ~50 nm into the partner.
    fade = np.clip(1.3 - ndimage.distance_transform_edt(~active) / 6, 0, 1)
    weight = np.where(scene.truth[z, ys, xs] == cell, 0.6 * active, fade)
    view = scene.image[z, ys, xs]
    view += (weight * (PSD - view)).astype(np.float32)
    scene.occupied[z, ys, xs] |= weight > 0


def _microscope(rng: np.random.Generator, image: Floats) -> npt.NDArray[np.uint8]:
    """Blur, uneven slice brightness and shot noise, then 8-bit grey values."""
    depth = image.shape[0]
    blurred = ndimage.gaussian_filter(image, (0, 1.0, 1.0))
    gain = rng.normal(1.0, 0.03, (depth, 1, 1)).astype(np.float32)  # section thickness varies
    shift = rng.normal(0, 5, (depth, 1, 1)).astype(np.float32)
    noisy = blurred * gain + shift + rng.standard_normal(image.shape, dtype=np.float32) * NOISE
    return np.asarray(np.clip(np.rint(noisy), 0, 255), dtype=np.uint8)


def _render_image(rng: np.random.Generator, truth: Labels) -> npt.NDArray[np.uint8]:
    """The EM image of `truth`: uint8, same shape."""
    membranes = _membranes(truth)
    image = _cytoplasm(rng, truth)
    _paint_membranes(image, membranes)
    scene = _Scene(truth, _distance_inside(membranes), image, np.zeros(truth.shape, bool),
                   _centroids(truth))
    _add_mitochondria(rng, scene)
    _add_synapses(rng, scene, membranes)
    _add_microtubules(rng, scene)
    return _microscope(rng, scene.image)
