"""FFN seed and movement policies on hand-made maps and synthetic cells."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from unem.ffn.policies import (
    FaceMaxMovement,
    edge_mask,
    face_max_moves,
    grid_seeds,
    inside,
    inverse_origins,
    peak_seeds,
)

SHAPE = (9, 9, 9)
CENTRE = (4, 4, 4)
DELTAS = (2, 2, 2)


def prob_map(**peaks: tuple[tuple[int, int, int], float]) -> np.ndarray:
    """A probability map of 0.1 with the given voxels set (keyword names are for reading)."""
    prob = np.full(SHAPE, 0.1, dtype=np.float32)
    for pos, value in peaks.values():
        prob[pos] = value
    return prob


def test_each_face_proposes_its_maximum_above_the_threshold() -> None:
    prob = prob_map(
        plus_x=((4, 5, 6), 0.95),  # on the +x face (x = 4 + 2), one off-centre in y
        plus_x_lower=((4, 4, 6), 0.92),  # the same face: the maximum wins
        minus_z=((2, 3, 4), 0.91),
        minus_y=((4, 2, 4), 0.85),  # below the threshold
        beyond=((4, 4, 8), 0.99),  # outside the ±delta box: no face
    )
    moves = face_max_moves(prob, DELTAS, 0.9)
    assert moves == [
        (np.float32(0.91).item(), (-2, -1, 0)),
        (np.float32(0.95).item(), (0, 1, 2)),
    ]
    assert face_max_moves(prob, DELTAS, 0.8)[1] == (np.float32(0.85).item(), (0, -2, 0))
    assert face_max_moves(prob, DELTAS, 0.96) == []


def test_faces_only_look_within_the_central_delta_box() -> None:
    prob = prob_map(corner=((6, 6, 6), 0.97), face_corner_outside=((6, 7, 4), 0.99))
    # (6, 6, 6) lies on the +z, +y and +x faces; (6, 7, 4) is outside the box in y.
    moves = face_max_moves(prob, DELTAS, 0.9)
    assert [offset for _, offset in moves] == [(2, 2, 2)] * 3  # one from each + face


def test_an_axis_with_zero_delta_never_moves() -> None:
    prob = np.full(SHAPE, 0.99, dtype=np.float32)
    moves = face_max_moves(prob, (0, 2, 2), 0.9)
    # Faces -y, +y, -x, +x; on a flat face the face's centre wins.
    assert [offset for _, offset in moves] == [(0, -2, 0), (0, 2, 0), (0, 0, -2), (0, 0, 2)]


def test_ties_go_to_the_voxel_nearest_the_face_centre() -> None:
    prob = prob_map(a=((6, 2, 3), 0.95), b=((6, 4, 5), 0.95), c=((6, 6, 6), 0.95))
    assert face_max_moves(prob, DELTAS, 0.9)[0] == (np.float32(0.95).item(), (2, 0, 1))
    prob = prob_map(a=((6, 3, 4), 0.95), b=((6, 5, 4), 0.95))  # equally near: C order
    assert face_max_moves(prob, DELTAS, 0.9)[0][1] == (2, -1, 0)


def test_nan_never_moves() -> None:
    prob = np.full(SHAPE, np.nan, dtype=np.float32)
    assert face_max_moves(prob, DELTAS, 0.5) == []


def test_the_queue_is_best_first_per_update_and_never_revisits() -> None:
    policy = FaceMaxMovement(DELTAS, 0.9)
    start = (10, 10, 10)
    policy.reset(start)
    policy.append(1.0, start)
    assert policy.next(lambda pos: True) == start
    queued = policy.update(prob_map(plus_x=((4, 4, 6), 0.93), minus_y=((4, 2, 4), 0.97)), start)
    assert queued == [
        (np.float32(0.97).item(), (10, 8, 10)),
        (np.float32(0.93).item(), (10, 10, 12)),
    ]
    assert policy.next(lambda pos: True) == (10, 8, 10)
    # From there, a move back towards the start lands in the start's (visited) cell.
    policy.update(prob_map(plus_y=((4, 6, 4), 0.99)), (10, 8, 10))
    assert policy.next(lambda pos: True) == (10, 10, 12)
    assert policy.next(lambda pos: True) is None


def test_positions_in_a_visited_cell_are_skipped_and_invalid_ones_dropped() -> None:
    policy = FaceMaxMovement((4, 8, 8), 0.9)
    policy.reset((20, 40, 40))
    assert policy.quantize((20, 40, 40)) == (0, 0, 0)
    assert policy.quantize((21, 43, 36)) == (0, 0, 0)  # same cell: within ±delta/2
    assert policy.quantize((22, 44, 32)) == (1, 1, -1)
    policy.update(np.zeros((9, 17, 17), np.float32), (20, 40, 40))
    for pos in [(21, 43, 36), (24, 40, 40), (20, 48, 40)]:
        policy.append(0.95, pos)
    assert policy.next(lambda pos: pos != (24, 40, 40)) == (20, 48, 40)
    assert len(policy.queue) == 0


def cells(shape: tuple[int, int, int] = (12, 48, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A membrane image (dark 2-voxel walls, bright cells) and its cell labels."""
    labels = np.zeros(shape, np.int32)
    labels[1:-1, 1:23, 1:23] = 1
    labels[1:-1, 1:23, 25:47] = 2
    labels[1:-1, 25:47, 1:47] = 3
    image = np.where(labels > 0, 180.0, 40.0)
    return image.astype(np.float32), labels


def test_peaks_lie_inside_cells_away_from_edges() -> None:
    image, labels = cells()
    seeds = peak_seeds(image)
    assert len(seeds) >= 3 and seeds.dtype == np.int64
    assert np.array_equal(seeds, seeds[np.lexsort(seeds.T[::-1])])  # sorted by z, y, x
    found = labels[tuple(seeds.T)]
    assert np.all(found > 0) and set(found) == {1, 2, 3}
    to_membrane = ndimage.distance_transform_edt(labels > 0)
    assert np.all(to_membrane[tuple(seeds.T)] >= 3)
    assert np.array_equal(peak_seeds(image), seeds)  # the tie-breaking noise is fixed
    assert edge_mask(image)[labels == 0].mean() > 0.5


def test_grid_spacing_start_and_order() -> None:
    seeds = grid_seeds((10, 20, 21), (3, 8, 5), (1, 4, 2))
    assert [sorted(set(seeds[:, a])) for a in range(3)] == [
        [1, 4, 7],
        [4, 12],
        [2, 7, 12, 17],
    ]
    assert len(seeds) == 3 * 2 * 4
    assert tuple(seeds[0]) == (1, 4, 2) and tuple(seeds[1]) == (1, 4, 7)  # C order


def test_inverse_origins_start_from_the_newest_object() -> None:
    origins = {1: (5, 6, 7), 3: (1, 2, 3), 2: (9, 9, 9)}
    assert inverse_origins(origins).tolist() == [[1, 2, 3], [9, 9, 9], [5, 6, 7]]
    assert inverse_origins({}).shape == (0, 3)


def test_inside_keeps_order_and_drops_seeds_without_context() -> None:
    seeds = np.array([[5, 5, 5], [0, 5, 5], [5, 9, 5], [5, 5, 8]])
    assert inside(seeds, (10, 10, 10), (2, 1, 2)).tolist() == [[5, 5, 5]]
