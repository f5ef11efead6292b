"""Dojo's live protocol under load: edit fan-out, merge cost, paint strokes.

Real python-socketio clients (`tests.web.conftest.SocketClient`, over WebSocket) join one
dataset's room on the real server. Every edit is committed through the `edit` event and
taken back (undo, or a second stroke) so the next one is valid; before each measured edit,
every client has received the previous one, so samples do not overlap.

- fan-out: from the author's `edit` until the last of the clients (author included) has
  received `edited`, against the author's `ping` round trip, interleaved.
- merge cost: the `edit` acknowledgement of merging the two ~10⁷-voxel halves, against
  merging the two 10³-voxel cubes, interleaved.
- paint: the `edit` acknowledgement of a 200-voxel stroke of radius 10, against the merge
  of the two cubes (the cheapest edit: only the mapping changes).

The clients handle each message in their reading thread, one after the other, as a
browser does, instead of python-engineio's new thread per message: with 20 clients in
one process on 2 cores, those threads fight over the GIL and add milliseconds that are
the benchmark's, not the server's.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import engineio

from tests.bench.dojo_data import BIG, CUBE, OTHER_BIG, OTHER_SMALL, SMALL
from tests.bench.dojo_stats import PercentileResult, percentile
from tests.bench.results import Result, Target
from tests.web.conftest import SocketClient
from unem.web.events import EVENTS, NAMESPACES

DOJO = NAMESPACES["DOJO"]
TIMEOUT = 60.0
STROKE_LENGTH = 200  # voxels along x
STROKE_STEP = 4  # voxels between the points a browser would send while the mouse moves
BRUSH_RADIUS = 10  # voxels: a 20 px wide brush at full resolution


@functools.cache
def inline(engine: type[engineio.Client]) -> type[engineio.Client]:
    """`engine`, handling each message in its reading thread."""

    class Inline(engine):  # type: ignore[misc,valid-type]
        def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
            kwargs.pop("run_async", None)
            return super()._trigger_event(event, *args, **kwargs)

    return Inline


class Client(SocketClient):
    def _engineio_client_class(self) -> type[engineio.Client]:
        return inline(super()._engineio_client_class())


class Member:
    """One client in the dataset's room; records when each `edited` version arrived."""

    def __init__(self, base: str, cookie: str, dataset: str) -> None:
        self.dataset = dataset
        self.arrivals: dict[int, float] = {}
        self.arrived = threading.Condition()
        self.client = Client()
        self.client.on(EVENTS["DOJO_EDITED"], self._on_edited, namespace=DOJO)
        self.client.connect(
            base, headers={"Cookie": cookie}, namespaces=[DOJO], transports=["websocket"]
        )
        self.version = int(self.call("DOJO_JOIN", version=0)["version"])

    def _on_edited(self, edit: dict[str, Any]) -> None:
        now = time.perf_counter()
        with self.arrived:
            self.arrivals[int(edit["version"])] = now
            self.arrived.notify_all()

    def call(self, event: str, **data: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.call(
            EVENTS[event], {"dataset": self.dataset, **data}, namespace=DOJO, timeout=TIMEOUT
        )
        if not answer.get("ok"):
            raise RuntimeError(f"{EVENTS[event]} {data}: {answer}")
        return answer

    def edit(self, kind: str, **params: Any) -> int:
        """Commit an edit on the latest version this client knows; its version."""
        answer = self.call(
            "DOJO_EDIT", kind=kind, params=params, txid=uuid.uuid4().hex, base_version=self.version
        )
        self.version = int(answer["edit"]["version"])
        return self.version

    def undo(self) -> int:
        self.version = int(self.call("DOJO_UNDO", txid=uuid.uuid4().hex)["edit"]["version"])
        return self.version

    def arrival(self, version: int) -> float:
        """When `version` arrived (perf_counter), waiting for it if need be."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: version in self.arrivals, TIMEOUT):
                raise TimeoutError(f"edit {version} never reached a client")
            return self.arrivals[version]

    def close(self) -> None:
        self.client.disconnect()


@dataclass
class Room:
    """The clients of one dataset; the first is the author of every edit."""

    members: list[Member]

    @property
    def author(self) -> Member:
        return self.members[0]

    def last_arrival(self, version: int) -> float:
        return max(member.arrival(version) for member in self.members)

    def settle(self, version: int) -> None:
        """Wait until every client has `version`, so the next sample starts from quiet."""
        self.last_arrival(version)
        for member in self.members:
            member.version = max(member.version, version)

    def everyone_pings(self) -> float:
        """Seconds until every client has the answer to its own `ping`, all sent at once."""
        done = threading.Semaphore(0)
        start = time.perf_counter()
        for member in self.members:
            member.client.emit(
                EVENTS["DOJO_PING"],
                {"dataset": member.dataset},
                namespace=DOJO,
                callback=lambda *_: done.release(),
            )
        for _ in self.members:
            if not done.acquire(timeout=TIMEOUT):
                raise TimeoutError("a ping was never answered")
        return time.perf_counter() - start

    def close(self) -> None:
        for member in self.members:
            member.close()


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def interleaved(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each run once per round, in turn, the order reversed every other round; milliseconds."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(rounds):
        for name in list(runs) if i % 2 == 0 else list(runs)[::-1]:
            samples[name].append(runs[name]() * 1000)
    return samples


def merged_and_undone(room: Room, segments: list[int]) -> float:
    """The merge's acknowledgement time; then undone, and both edits everywhere."""
    start = time.perf_counter()
    version = room.author.edit("merge", segments=segments)
    seconds = time.perf_counter() - start
    room.settle(version)
    room.settle(room.author.undo())
    return seconds


def fanned_out(room: Room) -> float:
    """From the merge request until every client has the edit; then it is undone."""
    start = time.perf_counter()
    version = room.author.edit("merge", segments=[SMALL, OTHER_SMALL])
    seconds = room.last_arrival(version) - start
    room.settle(version)
    room.settle(room.author.undo())
    return seconds


def stroke(room: Room, z: int, y: int, x: int, segment: int) -> float:
    """Paint one stroke along x from (y, x); its acknowledgement time."""
    points = [[y, x + dx] for dx in range(0, STROKE_LENGTH + 1, STROKE_STEP)]
    start = time.perf_counter()
    version = room.author.edit("paint", z=z, points=points, radius=BRUSH_RADIUS, segment=segment)
    seconds = time.perf_counter() - start
    room.settle(version)
    return seconds


def fan_out_results(room: Room, rounds: int, log: Callable[[str], None]) -> list[Result]:
    first = merged_and_undone(room, [SMALL, OTHER_SMALL]) * 1000  # imports the edit tools
    log(f"  edit fan-out to {len(room.members)} clients, {rounds} merges")
    samples = interleaved(
        rounds,
        {
            "ping": lambda: timed(lambda: room.author.call("DOJO_PING", sent=time.time())),
            "fan-out": lambda: fanned_out(room),
            "all ping": room.everyone_pings,
        },
    )
    everyone = samples["all ping"]
    return [
        PercentileResult(
            f"edit fan-out to {len(room.members)} clients p{q}",
            "ms",
            samples["fan-out"],
            samples["ping"],
            Target("ratio", False, 3.0),
            quantile=q,
            note=f"{rounds} merges, each then undone; baseline: the author's `ping` round "
            f"trip; all {len(room.members)} clients pinging at once take "
            f"{percentile(everyone, q):.3g} ms; the first edit after start-up (unmeasured) "
            f"took {first:.0f} ms",
        )
        for q in (50, 99)
    ]


def merge_cost_results(
    room: Room, rounds: int, half: int, log: Callable[[str], None]
) -> list[Result]:
    log(f"  merge commit, {half:.1e} vs {CUBE**3} voxels, {rounds} rounds")
    samples = interleaved(
        rounds,
        {
            "big": lambda: merged_and_undone(room, [BIG, OTHER_BIG]),
            "small": lambda: merged_and_undone(room, [SMALL, OTHER_SMALL]),
        },
    )
    p99 = percentile(samples["big"], 99), percentile(samples["small"], 99)
    return [
        PercentileResult(
            f"merge commit, 2 × {half:.1e} vs 2 × 10³ voxels p50",
            "ms",
            samples["big"],
            samples["small"],
            Target("ratio", False, 1.5),
            note=f"{rounds} merges of each, each then undone, {len(room.members)} clients in "
            f"the room; p99 {p99[0]:.3g} vs {p99[1]:.3g} ms",
        )
    ]


def paint_results(
    room: Room, rounds: int, shape: tuple[int, int, int], log: Callable[[str], None]
) -> list[Result]:
    log(f"  paint strokes, {2 * rounds}")
    depth, height, width = shape
    y, x = height // 2, (width // 2 - STROKE_LENGTH) // 2  # inside the first half
    if x < BRUSH_RADIUS:
        raise ValueError(f"a {STROKE_LENGTH}-voxel stroke does not fit in half of {shape}")
    paint: list[float] = []
    merge: list[float] = []
    for i in range(rounds):  # a stroke of the second half's id over the first, then back
        if i % 2 == 0:
            paint.append(stroke(room, i % depth, y, x, OTHER_BIG) * 1000)
        merge.append(merged_and_undone(room, [SMALL, OTHER_SMALL]) * 1000)
        if i % 2 == 1:
            paint.append(stroke(room, i % depth, y, x, OTHER_BIG) * 1000)
        paint.append(stroke(room, i % depth, y, x, BIG) * 1000)
    return [
        PercentileResult(
            f"paint stroke {STROKE_LENGTH} × r{BRUSH_RADIUS} commit p{q}",
            "ms",
            paint,
            merge,
            Target("value", False, 100, "ms"),
            quantile=q,
            note=f"{len(paint)} strokes of {STROKE_LENGTH // STROKE_STEP + 1} points; "
            "baseline: the merge of the two cubes; target: 100 ms, a change that feels instant",
        )
        for q in (50, 99)
    ]


def run_live_benchmarks(
    base: str,
    cookie: str,
    dataset: str,
    shape: tuple[int, int, int],
    clients: int,
    rounds: int,
    log: Callable[[str], None],
) -> list[Result]:
    log(f"  {clients} clients joining {dataset}")
    room = Room([])
    try:
        for _ in range(clients):
            room.members.append(Member(base, cookie, dataset))
        depth, height, width = shape
        half = depth * height * (width // 2) - CUBE**3
        results = fan_out_results(room, rounds, log)
        results += merge_cost_results(room, rounds, half, log)
        results += paint_results(room, rounds, shape, log)
    finally:
        room.close()
    return results
