"""The FFN page in Chromium against a real server, on a crop of the FlyEM medulla sample:
the three forms generated from the job kinds' schemas, a preparation submitted, listed and
picked for training, a short training with its curves, a segmentation, and the links to
proofread it in Dojo and export it; a viewer sees it all read-only.

Set UNEM_SCREENSHOTS=1 to refresh docs/screenshots/ffn.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.test_home import VIEWPORT, PageErrors, admin_page, screenshot
from tests.conftest import MEDULLA, LiveServer, start_server, stop_server
from unem import auth
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
CROP = (slice(0, 24), slice(0, 96), slice(0, 96))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    import tifffile
    from PIL import Image

    root = tmp_path_factory.mktemp("ffn")
    ws = Workspace(root / "ws")
    files = sorted((MEDULLA / "grayscale_maps").glob("iso.*.png"))[CROP[0]]
    image = np.stack([np.asarray(Image.open(f))[CROP[1:]] for f in files])
    bodies = tifffile.imread(MEDULLA / "groundtruth_bodies.tif")[CROP]
    sources = {"image": array_source(image), "groundtruth": array_source(bodies)}
    import_dataset(ws, "medulla", sources, (10.0, 10.0, 10.0))
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
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    yield context
    context.close()


def open_ffn(page: Page, server: LiveServer) -> None:
    page.locator("header nav").get_by_role("link", name="FFN").click()
    expect(page).to_have_url(f"{server.base}/ffn")
    expect(page.locator("#ffn-page")).to_have_attribute("data-ready", "true")


def fill(page: Page, form: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = page.locator(f"#{form}-options [name='{name}']")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def test_prepare_train_segment_and_open_the_result(
    browser: Browser, context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = admin_page(context, server, errors)
    open_ffn(page, server)
    steps = ("Prepare training data", "Train", "Segment", "Proofread, export, evaluate")
    for number, step in enumerate(steps, start=1):
        expect(page.get_by_role("heading", name=f"{number} {step}", exact=True)).to_be_visible()

    # 1. The ffn-prep form, from its schema: choices, defaults, bounds, help.
    prep = page.locator("#prep-options")
    expect(prep.locator("[name=dataset]")).to_have_value("medulla")
    expect(prep.locator("[name=label_layer]")).to_have_value("groundtruth")
    expect(prep.locator("[name=preset] option")).to_contain_text(["isotropic", "cpu_tiny"])
    thresholds = prep.locator("label").filter(has=page.locator("[name=thresholds]"))
    expect(thresholds.locator(".hint")).to_contain_text("local-object-mask fraction")
    expect(prep.locator("[name=min_size]")).to_have_attribute("min", "0")
    expect(page.locator("#no-preparations")).to_be_visible()
    fill(page, "prep", {"preset": "cpu_tiny", "min_size": "500", "max_per_partition": "2000",
                        "name": "crop"})  # fmt: skip
    page.get_by_role("button", name="Prepare").click()
    expect(page.locator("#prep-status")).to_contain_text("done", timeout=120_000)
    row = page.locator("#preparations tbody tr[data-preparation=crop]")
    expect(row).to_contain_text("medulla / image + groundtruth")
    expect(row).to_contain_text("cpu_tiny: FOV 9 × 17 × 17")

    # 2. Train on it: the preparation is offered and its preset chosen with it.
    train = page.locator("#train-options")
    expect(train.locator("[name=preparation]")).to_have_value("crop")
    expect(train.locator("[name=preset]")).to_have_value("cpu_tiny")
    expect(train.locator("details[data-group=augment] summary")).to_have_text("Augmentation")
    fill(page, "train", {"steps": "6", "batch_size": "2", "summary_every": "2",
                         "checkpoint_every": "3", "output": "crop-ffn"})  # fmt: skip
    page.get_by_role("button", name="Train").click()
    expect(page.locator("#run-title")).to_contain_text("Train an FFN (cpu_tiny) on crop")
    expect(page.locator("#run-state")).to_have_text("done", timeout=240_000)
    expect(page.locator("#chart-legend [data-series=loss]")).to_be_visible(timeout=30_000)
    expect(page.locator("#chart-legend [data-series='eval/f1']")).to_be_visible()
    run_id = page.locator("#run-picker").input_value()
    expect(page.locator("#run-tensorboard")).to_have_attribute(
        "href", f"/tensorboard/#scalars&regexInput=%5E{run_id}%2F"
    )
    model = page.locator("#ffn-models tbody tr[data-model=crop-ffn]")
    expect(model).to_contain_text("crop")
    expect(model.get_by_role("link", name="model.keras")).to_have_attribute(
        "href", "/api/ffn/models/crop-ffn/files/model.keras"
    )

    # 3. Segment a sub-box with it, into a new layer.
    infer = page.locator("#infer-options")
    expect(infer.locator("[name=model]")).to_have_value("crop-ffn")
    fill(page, "infer", {"dataset": "medulla", "box": "0:16,0:64,0:64", "seed_policy": "grid",
                         "grid_step": "4, 16, 16", "min_segment_size": "10",
                         "output": "ffn-crop"})  # fmt: skip
    page.get_by_role("button", name="Segment").click()
    expect(page.locator("#infer-status")).to_contain_text("done", timeout=240_000)

    # 4. The result, to proofread, export and score.
    result = page.locator("#results tbody tr[data-layer=ffn-crop]")
    expect(result).to_contain_text("medulla / ffn-crop", timeout=30_000)  # a busy machine
    expect(result).to_contain_text("objects")
    expect(result.get_by_role("link", name="Open in Dojo")).to_have_attribute(
        "href", "/dojo/medulla?ov=ffn-crop&ovon=1"
    )
    expect(result.get_by_role("link", name="Evaluate page")).to_have_attribute(
        "href", "/evaluation"
    )
    result.get_by_label("export format of ffn-crop").select_option("npy")
    result.get_by_role("button", name="Export").click()
    expect(result.get_by_role("link", name=re.compile(r"^Download .*\.npy$"))).to_be_visible(
        timeout=30_000
    )
    page.locator("#step-train").evaluate("e => e.scrollIntoView()")
    screenshot(page, "ffn.png")

    viewer_context = browser.new_context(viewport=VIEWPORT)
    try:
        viewer = errors.watch(viewer_context.new_page())
        viewer.goto(f"{server.base}/login?next=/ffn")
        viewer.get_by_label("User name").fill("vera")
        viewer.get_by_label("Password").fill("vera-password")
        viewer.get_by_role("button", name="Log in").click()
        expect(viewer.locator("#ffn-page")).to_have_attribute("data-ready", "true")
        expect(viewer.locator("#read-only-note")).to_be_visible()
        for button in ("Prepare", "Train", "Segment"):
            expect(viewer.get_by_role("button", name=button, exact=True)).to_be_disabled()
        expect(viewer.locator("#prep-options [name=min_size]")).to_be_disabled()
        expect(viewer.locator("#preparations tbody tr")).to_have_count(1)
        expect(viewer.locator("#preparations button")).to_have_count(0)  # no Delete
        expect(viewer.locator("#ffn-models button")).to_have_count(0)
        expect(viewer.locator("#run-state")).to_have_text("done")
        viewer_result = viewer.locator("#results tbody tr[data-layer=ffn-crop]")
        expect(viewer_result).to_contain_text("proofreaders export")
    finally:
        viewer_context.close()


def test_an_admin_deletes_a_preparation(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = admin_page(context, server, errors)
    open_ffn(page, server)
    fill(page, "prep", {"preset": "cpu_tiny", "min_size": "500", "max_per_partition": "500",
                        "name": "to-delete"})  # fmt: skip
    page.get_by_role("button", name="Prepare").click()
    row = page.locator("#preparations tbody tr[data-preparation=to-delete]")
    expect(row).to_be_visible(timeout=120_000)
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    names = page.request.get(f"{server.base}/api/ffn/preparations").json()["preparations"]
    assert "to-delete" not in [p["name"] for p in names]
