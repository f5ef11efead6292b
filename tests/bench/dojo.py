"""Dojo benchmarks: tile serving, edit fan-out, merge cost and paint strokes on a live server.

Two synthetic datasets are imported with the core into a fresh workspace, then
`main.py serve` runs on it (`tests.conftest.start_server`) and is driven over HTTP
(`requests`, keep-alive) and Socket.IO (python-socketio clients over WebSocket) from this
process. Every figure is a ratio to a baseline measured in the same run, interleaved: see
`dojo_tiles` and `dojo_live` for what each sample is. Latencies are percentiles (p50, p99)
of many samples, since what a proofreader feels is the tail.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.dojo_data import import_datasets
from tests.bench.dojo_live import run_live_benchmarks
from tests.bench.dojo_tiles import TileClient, run_tile_benchmarks
from tests.bench.results import Result
from tests.conftest import LiveServer, start_server, stop_server


@dataclass(frozen=True)
class DojoSizes:
    tiles_shape: tuple[int, int, int]  # uint8 image + uint32 cells: ≥ 3 pyramid levels
    merge_shape: tuple[int, int, int]  # two halves (the big segments) and two 10³ cubes
    cold_tiles: int  # per level and layer, for the server and as many for the baseline
    warm_tiles: int  # per level and layer
    warm_repeats: int
    clients: int
    rounds: int  # merges for the fan-out, of each size for the merge cost; paint: twice


FULL = DojoSizes((64, 2048, 2048), (160, 256, 512), 60, 6, 12, 20, 60)
QUICK = DojoSizes((8, 1024, 1024), (16, 256, 512), 12, 2, 4, 20, 12)


def drain(server: LiveServer) -> threading.Thread:
    """Keep reading the server's output, so it never blocks on a full pipe."""
    stdout = server.process.stdout
    assert stdout is not None
    thread = threading.Thread(target=lambda: server.output.extend(stdout), daemon=True)
    thread.start()
    return thread


def run_dojo_benchmarks(scratch: Path, quick: bool, log: Callable[[str], None]) -> list[Result]:
    sizes = QUICK if quick else FULL
    workspace = scratch / "dojo-workspace"
    try:
        log(f"importing {sizes.tiles_shape} and {sizes.merge_shape} synthetic datasets")
        tiles, merge = import_datasets(workspace, sizes.tiles_shape, sizes.merge_shape)
        server = start_server(workspace)
        drain(server)
        try:
            session = server.admin_session()
            results = run_tile_benchmarks(
                TileClient(session, server.base, tiles.id),
                tiles,
                sizes.cold_tiles,
                sizes.warm_tiles,
                sizes.warm_repeats,
                log,
            )
            cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
            results += run_live_benchmarks(
                server.base,
                cookie,
                merge.id,
                sizes.merge_shape,
                sizes.clients,
                sizes.rounds,
                log,
            )
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return results
