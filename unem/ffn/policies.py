"""Where flood-filling starts objects (seed policies) and where its field of view goes next
(the face-max movement policy), after google/ffn's `seed.py` and `movement.py`.

Every position and shape is (z, y, x). Seed policies return an (n, 3) int64 array of
positions, in the order the canvas tries them; they are plain functions of the image (or
of a first pass's origins), so a checkpoint only needs the array and the next index.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Zyx = tuple[int, int, int]
Move = tuple[float, Zyx]  # (score at the new centre, position or offset)

PEAKS_SIGMA = 49.0 / 6.0  # google/ffn's adaptive-threshold blur
PEAKS_MIN_DISTANCE = 3
PEAKS_NOISE = 1e-4  # breaks ties between equal distances, from a fixed generator
PEAKS_NOISE_SEED = 42


def zyx(values: Iterable[Any]) -> Zyx:
    z, y, x = (int(v) for v in values)
    return (z, y, x)


# Movement --------------------------------------------------------------------------------


def face_max_moves(
    prediction: np.ndarray, deltas: Sequence[int] | np.ndarray, threshold: float
) -> list[Move]:
    """Moves proposed by one prediction (z, y, x) centred on the field of view's centre.

    For each of the 6 faces of the box of ±deltas around the centre, the face's maximum
    (`face_argmax`) proposes a move to that voxel if it is at least `threshold` (in the
    units of `prediction`: probabilities or logits). Returns (score, offset from the
    centre) in face order: -z, +z, -y, +y, -x, +x; an axis whose delta is 0 never moves.
    """
    centre = np.asarray(prediction.shape) // 2
    box = [slice(c - d, c + d + 1) for c, d in zip(centre, deltas, strict=True)]
    moves: list[Move] = []
    for axis, delta in enumerate(deltas):
        if delta <= 0:
            continue
        for offset in (-delta, delta):
            face_box = list(box)
            face_box[axis] = slice(centre[axis] + offset, centre[axis] + offset + 1)
            face = prediction[tuple(face_box)]
            index = face_argmax(face)
            score = float(face[index])
            if not score >= threshold:  # NaN never moves
                continue
            relative = [int(i) - d for i, d in zip(index, deltas, strict=True)]
            relative[axis] = offset
            moves.append((score, zyx(relative)))
    return moves


def face_argmax(face: np.ndarray) -> tuple[int, ...]:
    """Where a face is largest; on ties, the voxel nearest the face's centre, then the
    first in C order. (google/ffn takes the first in C order, which on a flat prediction
    always steers the field of view towards the same corner.) All NaN: the centre."""
    flat = face.ravel()
    candidates = np.flatnonzero(flat == np.fmax.reduce(flat))
    distance = centre_distance(face.shape)
    if len(candidates) == 0:
        index = int(np.argmin(distance))
    elif len(candidates) == 1:
        index = int(candidates[0])
    else:
        index = int(candidates[np.argmin(distance[candidates])])
    return tuple(int(i) for i in np.unravel_index(index, face.shape))


@functools.lru_cache(maxsize=32)
def centre_distance(shape: tuple[int, ...]) -> np.ndarray:
    """Squared distance of each voxel of `shape` to its centre, flattened (read-only)."""
    centre = np.reshape([s // 2 for s in shape], (-1,) + (1,) * len(shape))
    distance: np.ndarray = ((np.indices(shape) - centre) ** 2).sum(axis=0).ravel()
    distance.flags.writeable = False
    return distance


class FaceMaxMovement:
    """The queue of positions to visit while one object is flood-filled.

    After each prediction at `pos`, the faces' maxima above the threshold are appended, best
    first, to a first-in first-out queue (google/ffn's order: breadth-first across updates,
    by score within one). Positions are quantized on a grid of `deltas` cells centred on the
    object's start: a cell is visited at most once, so the field of view never revisits.
    """

    def __init__(self, deltas: Sequence[int], threshold: float) -> None:
        self.deltas = zyx(deltas)
        self.threshold = threshold
        self.queue: deque[Move] = deque()
        self.done: set[Zyx] = set()
        self.start: Zyx = (0, 0, 0)

    def reset(self, start: Sequence[int]) -> None:
        """Forget everything; a new object starts at `start`."""
        self.queue = deque()
        self.done = set()
        self.start = zyx(start)

    def quantize(self, pos: Sequence[int]) -> Zyx:
        """The grid cell of `pos`; the start lies in the middle of its cell."""
        z, y, x = (
            (int(p) - s + d // 2) // max(d, 1)
            for p, s, d in zip(pos, self.start, self.deltas, strict=True)
        )
        return (z, y, x)

    def append(self, score: float, pos: Sequence[int]) -> None:
        self.queue.append((score, zyx(pos)))

    def update(self, prediction: np.ndarray, pos: Sequence[int]) -> list[Move]:
        """Mark `pos` visited and queue the moves `prediction` (centred at `pos`) proposes."""
        self.done.add(self.quantize(pos))
        moves = sorted(face_max_moves(prediction, self.deltas, self.threshold), reverse=True)
        queued = [
            (score, zyx(p + o for p, o in zip(pos, offset, strict=True))) for score, offset in moves
        ]
        self.queue.extend(queued)
        return queued

    def next(self, is_valid: Callable[[Zyx], bool]) -> Zyx | None:
        """The next queued position not yet visited and valid now, or None when done."""
        while self.queue:
            _, pos = self.queue.popleft()
            if self.quantize(pos) not in self.done and is_valid(pos):
                return pos
        return None


# Seeds -------------------------------------------------------------------------------


def edge_mask(image: np.ndarray, sigma: float = PEAKS_SIGMA) -> np.ndarray:
    """Edges of an image (z, y, x): 3D Sobel gradient magnitude above its own Gaussian blur.

    The threshold adapts to local contrast, and any affine intensity scaling (raw or
    normalised image) gives the same edges.
    """
    from scipy import ndimage

    gradient = ndimage.generic_gradient_magnitude(
        np.asarray(image, dtype=np.float32), ndimage.sobel
    )
    local = ndimage.gaussian_filter(gradient, sigma, mode="reflect")
    edges: np.ndarray = gradient > local
    return edges


def peak_seeds(
    image: np.ndarray,
    min_distance: int = PEAKS_MIN_DISTANCE,
    sigma: float = PEAKS_SIGMA,
) -> np.ndarray:
    """Seeds away from edges: the peaks of the distance transform of non-edge voxels.

    google/ffn's `PolicyPeaks`: edges by `edge_mask`, the Euclidean distance of every other
    voxel to the nearest edge, and its local maxima at least `min_distance` apart (a tiny
    fixed noise breaks plateaus, so the result is the same on every run). Sorted by
    (z, y, x), as google/ffn does.
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max

    if image.ndim != 3:
        raise ValueError(f"peak_seeds needs a (z, y, x) image, not {image.shape}")
    edges = edge_mask(image, sigma)
    distance = ndimage.distance_transform_edt(~edges).astype(np.float32)
    noise = np.random.default_rng(PEAKS_NOISE_SEED).random(distance.shape, dtype=np.float32)
    peaks = peak_local_max(  # type: ignore[no-untyped-call]
        distance + noise * PEAKS_NOISE,
        min_distance=min_distance,
        threshold_abs=0,
        threshold_rel=0,
    )
    return sort_positions(peaks)


def grid_seeds(shape: Sequence[int], step: Sequence[int], start: Sequence[int]) -> np.ndarray:
    """Seeds on a regular lattice: `start` + k·`step` on each axis, inside `shape`, C order."""
    axes = [np.arange(max(a, 0), n, max(s, 1)) for n, s, a in zip(shape, step, start, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid.astype(np.int64)


def inverse_origins(origins: Mapping[int, Sequence[int]]) -> np.ndarray:
    """Seeds for a reverse pass: the first pass's object origins, newest object first.

    google/ffn's `PolicyInvertOrigins`: objects created late in the first pass (which had
    to fit between earlier ones) start first in the second, so the two passes disagree
    exactly where the order decided the result.
    """
    positions = [origins[key] for key in sorted(origins, reverse=True)]
    return np.asarray(positions, dtype=np.int64).reshape(-1, 3)


def sort_positions(positions: np.ndarray) -> np.ndarray:
    """(n, 3) positions sorted by z, then y, then x."""
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 3)
    order = np.lexsort((positions[:, 2], positions[:, 1], positions[:, 0]))
    return positions[order]


def inside(
    positions: np.ndarray, shape: Sequence[int], margin: Sequence[int] | np.ndarray
) -> np.ndarray:
    """The positions with at least `margin` voxels of image on every side (order kept)."""
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 3)
    low = np.asarray(margin)
    high = np.asarray(shape) - np.asarray(margin)
    keep = np.all((positions >= low) & (positions < high), axis=1)
    return positions[keep]
