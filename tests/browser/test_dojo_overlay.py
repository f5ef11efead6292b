"""A prediction in Dojo, in Chromium against a real server: the colour overlay (on/off, in the
URL), then "Segment for proofreading" on the home page, which a Dojo page that stays open
picks up live (the new segments, the kept layer, the history).

The dataset is synthetic: a gray image and a membrane prediction, a grid of thick lines
(probability 0.9) cutting each slice into six cells (probability 0.04), and ground truth
with one labelled square.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.test_dojo import wait_ready
from tests.browser.test_home import VIEWPORT, PageErrors
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

SHAPE = (3, 240, 320)
LINES_X, LINES_Y = (100, 210), (114,)  # each line 12 voxels wide, from this coordinate
ON_LINE = (106, 60)  # (x, y): the middle of the first vertical line
IN_CELL = (50, 60)  # the middle of the top-left cell
OTHER_CELL = (160, 180)  # the middle of the bottom-middle cell
IN_SQUARE = (50, 170)  # inside the ground truth's one object (x 20-80, y 140-200)


def membrane_prediction() -> np.ndarray:
    prob = np.full(SHAPE, 10, np.uint8)
    for x in LINES_X:
        prob[:, :, x : x + 12] = 230
    for y in LINES_Y:
        prob[:, y : y + 12, :] = 230
    return prob


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from unem.proofread.edits import prepare_for_proofreading
    from unem.volumes.datasets import import_dataset
    from unem.volumes.sources import open_source
    from unem.workspace import Workspace

    root = tmp_path_factory.mktemp("overlay")
    np.save(root / "image.npy", np.full(SHAPE, 128, np.uint8))
    np.save(root / "prediction.npy", membrane_prediction())
    truth = np.zeros(SHAPE, np.uint32)
    truth[:, 140:200, 20:80] = 7
    np.save(root / "groundtruth.npy", truth)
    ws = Workspace(root / "ws")
    sources = {
        "image": open_source(root / "image.npy"),
        "prediction": open_source(root / "prediction.npy"),
        "groundtruth": open_source(root / "groundtruth.npy"),
    }
    dataset = import_dataset(ws, "cells", sources, (40.0, 4.0, 4.0))
    prepare_for_proofreading(ws, dataset.id)
    live = start_server(Path(root / "ws"))
    try:
        yield live
    finally:
        stop_server(live)


@pytest.fixture
def errors() -> Iterator[PageErrors]:
    watcher = PageErrors()
    yield watcher
    assert watcher.messages == []


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    yield context
    context.close()


def open_dojo(
    context: BrowserContext, server: LiveServer, errors: PageErrors, query: str = ""
) -> Page:
    page = errors.watch(context.new_page())
    page.goto(server.admin_url)
    page.goto(f"{server.base}/dojo/cells{query}")
    wait_ready(page)
    return page


def on_page(page: Page, voxel: tuple[int, int]) -> dict[str, float]:
    """Page coordinates of the centre of a voxel (x, y) of the current slice."""
    point: dict[str, float] = page.evaluate(
        """([x, y]) => { const r = dojo.renderer.canvas.getBoundingClientRect();
              const s = dojo.camera.toScreen(x + 0.5, y + 0.5);
              return {x: r.left + s.sx, y: r.top + s.sy}; }""",
        list(voxel),
    )
    return point


def colour_at(page: Page, voxel: tuple[int, int]) -> list[int]:
    point = on_page(page, voxel)
    return list(page.evaluate("p => dojo.colourAtPage(p.x, p.y)", point))


def tinted(rgb: list[int]) -> bool:
    """The heat overlay over the gray image: much more red than blue."""
    return rgb[0] - rgb[2] > 40


def gray(rgb: list[int]) -> bool:
    return max(rgb) - min(rgb) <= 8 and 110 <= rgb[0] <= 150


def wait_for_colours(page: Page, line_coloured: bool, voxel: tuple[int, int] = ON_LINE) -> None:
    """Wait until every tile is drawn and the voxel (on a line) is (or is not) coloured."""
    page.wait_for_function(
        """([line, want]) => {
            if (!dojo.settled()) return false;
            const r = dojo.renderer.canvas.getBoundingClientRect();
            const s = dojo.camera.toScreen(line[0] + 0.5, line[1] + 0.5);
            const c = dojo.colourAtPage(r.left + s.sx, r.top + s.sy);
            return (Math.max(...c) - Math.min(...c) > 30) === want;
        }""",
        arg=[list(voxel), line_coloured],
    )


def test_the_prediction_overlay_shows_where_the_probability_is_high(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = open_dojo(context, server, errors)
    assert gray(colour_at(page, ON_LINE)) and gray(colour_at(page, IN_CELL))
    expect(page.get_by_label("Layer to overlay")).to_have_value("prediction")

    page.locator("#overlay-on").check()
    wait_for_colours(page, True)
    assert tinted(colour_at(page, ON_LINE)), colour_at(page, ON_LINE)
    assert gray(colour_at(page, IN_CELL)), colour_at(page, IN_CELL)
    tile_urls = page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes('/tiles/prediction/'))"
    )
    assert tile_urls and all("format=png" in url for url in tile_urls)

    # Its own opacity: more opaque, more colour; the colour map can change too.
    strong = colour_at(page, ON_LINE)
    page.locator("#overlay-opacity").fill("1")
    page.wait_for_function(
        f"dojo.colourAtPage({on_page(page, ON_LINE)['x']}, "
        f"{on_page(page, ON_LINE)['y']})[2] < {strong[2]}"
    )
    page.get_by_label("Overlay colours").select_option("green")
    page.wait_for_function(
        "p => { const c = dojo.colourAtPage(p.x, p.y); return c[1] > 200 && c[0] < 100; }",
        arg=on_page(page, ON_LINE),
    )
    assert gray(colour_at(page, IN_CELL))

    # The overlay is in the URL: a copied link shows it the same way.
    expect(page).to_have_url(re.compile(r"ov=prediction&ovon=1&ovo=1&ovc=green"))
    again = errors.watch(context.new_page())
    again.goto(page.url)
    wait_ready(again)
    assert again.evaluate(
        "[dojo.overlay.on, dojo.overlay.layer, dojo.overlay.opacity, dojo.overlay.colours]"
    ) == [True, "prediction", 1, "green"]
    expect(again.locator("#overlay-on")).to_be_checked()
    wait_for_colours(again, True)
    again.close()

    # Off with its switch (key O): the image alone again.
    page.locator("#view").focus()
    page.keyboard.press("o")
    expect(page.locator("#overlay-on")).not_to_be_checked()
    wait_for_colours(page, False)
    assert gray(colour_at(page, ON_LINE))
    expect(page).to_have_url(re.compile(r"ovon=0"))

    # Ground truth as the overlay: its object in its colour, nothing elsewhere.
    page.get_by_label("Layer to overlay").select_option("groundtruth")
    expect(page.locator("#overlay-on")).to_be_checked()
    expect(page.get_by_label("Overlay colours")).to_have_value("filled")
    wait_for_colours(page, True, IN_SQUARE)
    assert gray(colour_at(page, ON_LINE)) and gray(colour_at(page, IN_CELL))
    expect(page).to_have_url(re.compile(r"ov=groundtruth&ovon=1"))


def test_segment_for_proofreading_from_the_home_page_reaches_an_open_dojo(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    dojo = open_dojo(context, server, errors, "?ov=prediction&ovon=1")
    assert (
        dojo.evaluate(
            f"dojo.segmentAtPage({on_page(dojo, IN_CELL)['x']}, {on_page(dojo, IN_CELL)['y']})"
        )
        == 0
    )
    version = dojo.evaluate("dojo.sync.version")

    home = errors.watch(context.new_page())
    home.goto(f"{server.base}/")
    card = home.locator("article.dataset", has_text="cells")
    expect(card.get_by_label("what prediction marks")).to_have_value("boundaries")
    card.get_by_role("button", name="Segment for proofreading").click()
    expect(card.locator(".segment .status")).to_contain_text("started")
    summary = home.locator("#jobs-summary")
    expect(summary).to_contain_text("Segment cells/prediction for proofreading")
    expect(summary.locator(".task.done")).to_have_count(1, timeout=90_000)
    expect(home.locator("article.dataset", has_text="cells")).to_contain_text(
        "segmentation-before-"
    )

    # The open Dojo page learns of it by itself and shows one segment per cell.
    dojo.wait_for_function(f"dojo.sync.version > {version}", timeout=30_000)
    expect(dojo.locator(".toast.ok")).to_contain_text("replaced the segmentation")
    in_cell, other = on_page(dojo, IN_CELL), on_page(dojo, OTHER_CELL)
    dojo.wait_for_function(
        f"dojo.settled() && dojo.segmentAtPage({in_cell['x']}, {in_cell['y']}) > 0 && "
        f"dojo.segmentAtPage({other['x']}, {other['y']}) > 0"
    )
    first = dojo.evaluate(f"dojo.segmentAtPage({in_cell['x']}, {in_cell['y']})")
    assert first != dojo.evaluate(f"dojo.segmentAtPage({other['x']}, {other['y']})")
    dojo.locator("#panel-history summary").click()
    expect(dojo.locator("#history li").first).to_contain_text("segmentation replaced")
    expect(dojo.locator("#segment-count")).to_have_text("6")
    layers = dojo.evaluate("[...dojo.overlay.layers.keys()]")
    assert layers[:2] == ["prediction", "groundtruth"]
    assert layers[2].startswith("segmentation-before-")
    assert dojo.evaluate("dojo.overlay.shown") == "prediction"  # the overlay stays as it was
