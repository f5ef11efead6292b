"""Dojo tile serving: GET through the real server against reading and encoding in-process.

A sample of the server is one GET of `/dojo/api/<id>/tiles/...` on a keep-alive session,
its body read raw (the label tiles' deflate is not undone: the client's decoding is not
the server's cost). A sample of the baseline is `tiles.read_tile` + `encode_*` of a tile in
this process: the least the route has to do. Both run interleaved, tile after tile.

- cold: the first request of a tile; the server and the baseline get different tiles of
  the same level, so neither warms the other's (page caches cannot be dropped here).
- warm: the same few tiles again and again, as a full 200 answer and as an ETag
  revalidation (`If-None-Match` → 304), each against the baseline on the same tiles.
"""

from __future__ import annotations

import itertools
import random
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import requests

from tests.bench.dojo_stats import PercentileResult, percentile
from tests.bench.results import Result, Target
from unem.volumes import tiles
from unem.volumes.datasets import Dataset, Layer
from unem.volumes.store import LABEL_KINDS, TILE

TARGET = Target("ratio", False, 2.0)
LAYERS = {"image": "image", "segmentation": "label"}


@dataclass
class Samples:
    """Seconds per tile of the server and of the baseline, by pyramid level."""

    server: dict[int, list[float]] = field(default_factory=dict)
    bare: dict[int, list[float]] = field(default_factory=dict)

    def add(self, level: int, server: float, bare: float) -> None:
        self.server.setdefault(level, []).append(server)
        self.bare.setdefault(level, []).append(bare)

    def flat(self, of: dict[int, list[float]]) -> list[float]:
        return [s * 1000 for level in sorted(of) for s in of[level]]


@dataclass
class TileClient:
    """GETs tiles of one dataset through the server, on a keep-alive session.

    Werkzeug's server answers every request with `Connection: close`, so each GET opens a
    new connection (and the server a new thread): that is part of what is measured.
    """

    session: requests.Session
    base: str
    dataset: str
    etags: dict[str, str] = field(default_factory=dict)

    def url(self, layer: str, level: int, address: tuple[int, int, int]) -> str:
        z, row, col = address
        return f"{self.base}/dojo/api/{self.dataset}/tiles/{layer}/{level}/{z}/{row}/{col}"

    def get(self, url: str, revalidate: bool = False) -> tuple[int, bytes]:
        headers = {"If-None-Match": self.etags[url]} if revalidate else {}
        response = self.session.get(url, headers=headers, stream=True, timeout=30)
        body = response.raw.read(decode_content=False)
        response.raw.release_conn()  # back to the pool, should the server keep it open
        if response.status_code not in (200, 304):
            raise RuntimeError(f"GET {url}: {response.status_code} {body[:200]!r}")
        self.etags[url] = response.headers["ETag"]
        return response.status_code, body


def bare_tile(layer: Layer, level: int, address: tuple[int, int, int]) -> bytes:
    """What the route must do at least: read the chunk and encode it, as `render_tile` does."""
    tile = tiles.read_tile(layer, tiles.TileAddress(level, *address))
    if layer.kind in LABEL_KINDS:
        return tiles.encode_label_tile(tile)
    return tiles.encode_image_tile(tile, "jpeg")


def addresses(layer: Layer, level: int) -> list[tuple[int, int, int]]:
    depth, height, width = layer.levels[level].shape
    rows, cols = -(-height // TILE), -(-width // TILE)
    return list(itertools.product(range(depth), range(rows), range(cols)))


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def alternating(count: int) -> Iterator[bool]:
    """Whether the server goes first, for `count` rounds: every other round."""
    return (i % 2 == 0 for i in range(count))


def check_label_tile(client: TileClient, layer: Layer) -> None:
    """The server's label tile decodes to the same ids as the stored chunk."""
    _, body = client.get(client.url(layer.name, 0, (0, 0, 0)))
    served = np.frombuffer(zlib.decompress(body), "<u4")
    stored = tiles.read_tile(layer, tiles.TileAddress(0, 0, 0, 0)).ravel()
    if not np.array_equal(served, stored):
        raise AssertionError("the served label tile differs from the stored chunk")


def cold(client: TileClient, layer: Layer, per_level: int, rng: random.Random) -> Samples:
    """First requests of distinct tiles: half of them served, half read in-process."""
    samples = Samples()
    for level in range(len(layer.levels)):
        every = addresses(layer, level)
        shuffled = rng.sample(every, k=len(every))
        count = min(per_level, len(shuffled) // 2)
        for i, server_first in enumerate(alternating(count)):
            served, bare = shuffled[2 * i], shuffled[2 * i + 1]
            runs = [
                partial(client.get, client.url(layer.name, level, served)),
                partial(bare_tile, layer, level, bare),
            ]
            if server_first:
                server_s, bare_s = (timed(run) for run in runs)
            else:
                bare_s, server_s = (timed(run) for run in runs[::-1])
            samples.add(level, server_s, bare_s)
    return samples


def warm(
    client: TileClient, layer: Layer, per_level: int, repeats: int, rng: random.Random
) -> tuple[Samples, Samples]:
    """Repeated requests of a few tiles per level: full answers and 304s, against the bare read."""
    full, revalidated = Samples(), Samples()
    for level in range(len(layer.levels)):
        every = addresses(layer, level)
        chosen = rng.sample(every, k=min(per_level, len(every)))
        for address in chosen:  # first touches, unmeasured
            client.get(client.url(layer.name, level, address))
            bare_tile(layer, level, address)
        for repeat in range(repeats):
            for i, address in enumerate(chosen):
                url = client.url(layer.name, level, address)
                runs = [
                    partial(client.get, url),
                    partial(client.get, url, revalidate=True),
                    partial(bare_tile, layer, level, address),
                ]
                order = [0, 1, 2] if (repeat + i) % 2 == 0 else [2, 1, 0]
                seconds = dict(zip(order, (timed(runs[j]) for j in order), strict=True))
                full.add(level, seconds[0], seconds[2])
                revalidated.add(level, seconds[1], seconds[2])
    return full, revalidated


def level_note(samples: Samples, quantile: float) -> str:
    """The ratio of each level's quantile, from level 0 to the coarsest."""
    ratios = []
    for level in sorted(samples.server):
        server = percentile(samples.server[level], quantile)
        ratios.append(f"{server / percentile(samples.bare[level], quantile):.2f}")
    return f"p{quantile} ratio by level 0..{len(ratios) - 1}: {', '.join(ratios)}"


def tile_results(what: str, samples: Samples, baseline: str) -> list[Result]:
    server, bare = samples.flat(samples.server), samples.flat(samples.bare)
    count = f"{len(server)} + {len(bare)} tiles"
    return [
        PercentileResult(
            f"tile {what} p{q}",
            "ms",
            server,
            bare,
            TARGET,
            quantile=q,
            note=f"{count}; baseline: {baseline}; {level_note(samples, q)}",
        )
        for q in (50, 99)
    ]


def run_tile_benchmarks(
    client: TileClient,
    dataset: Dataset,
    cold_per_level: int,
    warm_per_level: int,
    warm_repeats: int,
    log: Callable[[str], None],
) -> list[Result]:
    rng = random.Random(0)
    check_label_tile(client, dataset.layer("segmentation"))
    results: list[Result] = []
    for name, what in LAYERS.items():
        layer = dataset.layer(name)
        log(f"  {what} tiles, levels 0..{len(layer.levels) - 1}: cold")
        first = cold(client, layer, cold_per_level, rng)
        log(f"  {what} tiles: warm")
        full, revalidated = warm(client, layer, warm_per_level, warm_repeats, rng)
        results += tile_results(f"{what} cold", first, "read + encode other tiles, first time")
        results += tile_results(f"{what} warm 200", full, "read + encode the same tiles")
        results += tile_results(f"{what} warm 304", revalidated, "read + encode the same tiles")
    return results
