"""The filters page in Chromium against a real server: build a two-step pipeline from the
catalog, watch the preview change, save and reload it, run it as a job and see the new
layer appear; a viewer previews but neither saves nor runs.

Set UNEM_SCREENSHOTS=1 to refresh docs/screenshots/filters.png.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.test_home import VIEWPORT, PageErrors, admin_page, screenshot
from tests.conftest import LiveServer, start_server, stop_server
from unem import auth
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
# The mean grey level of the result image, read back through a canvas.
MEAN = """() => {
  const img = document.getElementById('preview-result');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += data[i];
  return sum / (data.length / 4);
}"""


def cells(shape: tuple[int, int, int] = (6, 128, 128)) -> np.ndarray:
    """Bright discs on a dark, noisy background."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    inside = np.zeros(shape[1:], bool)
    for y, x in ((30, 30), (40, 90), (95, 50), (100, 105)):
        inside |= (yy - y) ** 2 + (xx - x) ** 2 < 15**2
    image = 50 + 140 * inside + rng.normal(0, 25, shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("filters")
    ws = Workspace(root / "ws")
    import_dataset(ws, "cells", {"image": array_source(cells())}, (40.0, 4.0, 4.0))
    auth.create_user(ws.db, "vera", "viewer", "vera-password")
    live = start_server(ws.root)
    yield live
    assert stop_server(live) == 0, "".join(live.output)


@pytest.fixture
def errors() -> Iterator[PageErrors]:
    watcher = PageErrors()
    yield watcher
    assert watcher.messages == []


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(20_000)
    yield context
    context.close()


def open_filters(page: Page, server: LiveServer) -> None:
    page.locator("header nav").get_by_role("link", name="Filters").click()
    expect(page).to_have_url(f"{server.base}/filters")
    expect(page.locator("#filters-page")).to_have_attribute("data-ready", "true")


def wait_for_preview(page: Page, applied: int) -> float:
    """Wait for a preview of `applied` steps to be shown; its mean grey level."""
    result = page.locator("#preview-result")
    expect(result).to_have_attribute("data-applied", str(applied))
    page.wait_for_function("() => document.getElementById('preview-result').complete")
    return float(page.evaluate(MEAN))


def test_build_preview_save_and_run_a_pipeline(
    context: BrowserContext, server: LiveServer, errors: PageErrors, tmp_path: Path
) -> None:
    page = admin_page(context, server, errors)
    open_filters(page, server)
    expect(page.locator("#catalog button")).to_have_count(21)
    expect(page.locator("#source-options [name=dataset]")).to_have_value("cells")
    expect(page.locator("#source-options [name=layer]")).to_have_value("image")
    expect(page.locator("#preview-result")).to_have_attribute("data-applied", "0")
    original = wait_for_preview(page, 0)

    page.locator("#catalog button[data-filter=gaussian]").click()
    step = page.locator("#steps li.step").nth(0)
    expect(step).to_contain_text("Gaussian blur")
    expect(step.locator(".flow")).to_have_text("image → image")
    step.locator("[name=sigma]").fill("3")
    blurred = wait_for_preview(page, 1)
    page.locator("#catalog button[data-filter=threshold]").click()
    second = page.locator("#steps li.step").nth(1)
    expect(second.locator(".flow")).to_have_text("image → mask")
    expect(second.locator("[name=threshold]")).to_have_value("0.5")
    second.locator("[name=threshold]").fill("0.45")
    thresholded = wait_for_preview(page, 2)
    assert abs(blurred - original) < 5 < abs(thresholded - blurred), (
        original,
        blurred,
        thresholded,
    )
    expect(page.locator("#result-caption")).to_contain_text("After steps 1–2 (mask)")

    # reorder and back: the second step cannot come first (a threshold gives a mask)
    errors.allow(r"status of 400 .*/api/filters/preview")  # the refused preview says why
    second.get_by_role("button", name="Move up").click()
    expect(page.locator("#preview-error")).to_contain_text("Step 2 (gaussian) takes")
    page.locator("#steps li.step").nth(1).get_by_role("button", name="Move up").click()
    expect(page.locator("#preview-error")).to_be_hidden()

    page.locator("#pipeline-name").fill("discs")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#saved-status")).to_have_text("Saved as discs.")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSON").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert [s["filter"] for s in saved["steps"]] == ["gaussian", "threshold"]
    assert saved["steps"][1]["options"] == {"threshold": 0.45, "below": False}
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#steps li.step")).to_have_count(0)
    page.get_by_role("button", name="Load", exact=True).click()
    expect(page.locator("#steps li.step")).to_have_count(2)
    expect(page.locator("#steps li.step").nth(1).locator("[name=threshold]")).to_have_value("0.45")
    upload = tmp_path / "three.json"
    upload.write_text(json.dumps({"steps": [*saved["steps"], {"filter": "label"}]}))
    page.locator("#upload-pipeline").set_input_files(str(upload))
    expect(page.locator("#steps li.step")).to_have_count(3)
    expect(page.locator("#steps li.step").nth(2).locator(".flow")).to_have_text("mask → labels")
    wait_for_preview(page, 3)
    screenshot(page, "filters.png")

    page.locator("#run-options [name=output]").fill("discs")
    page.get_by_role("button", name="Run", exact=True).click()
    status = page.locator("#run-status")
    expect(status).to_contain_text("Filter cells/image (3 filter steps) into discs")
    expect(status).to_have_attribute("data-state", "done", timeout=90_000)
    expect(status).to_contain_text("layer discs (segmentation) added")
    expect(page.locator("#source-options [name=layer] option[value=discs]")).to_have_count(1)
    layers = page.request.get(f"{server.base}/api/datasets/cells").json()["layers"]
    assert {"name": "discs", "kind": "segmentation"}.items() <= next(
        layer for layer in layers if layer["name"] == "discs"
    ).items()


def test_a_viewer_previews_but_neither_saves_nor_runs(
    browser: Browser, server: LiveServer, errors: PageErrors
) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = errors.watch(context.new_page())
        page.goto(f"{server.base}/login?next=/filters")
        page.get_by_label("User name").fill("vera")
        page.get_by_label("Password").fill("vera-password")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#filters-page")).to_have_attribute("data-ready", "true")
        expect(page.locator("#read-only-note")).to_be_visible()
        expect(page.get_by_role("button", name="Run", exact=True)).to_be_disabled()
        expect(page.get_by_role("button", name="Save", exact=True)).to_be_disabled()
        page.locator("#catalog button[data-filter=otsu]").click()
        assert wait_for_preview(page, 1) > 0
    finally:
        context.close()
