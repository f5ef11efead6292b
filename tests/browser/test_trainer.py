"""The trainer page in Chromium against a real server: pick a model and its options, train
on painted labels, watch the loss chart move live until the job is done, then predict a
stack with the trained model; a viewer sees it all read-only.

Set UNEM_SCREENSHOTS=1 to refresh docs/screenshots/trainer.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.test_home import VIEWPORT, PageErrors, admin_page, screenshot
from tests.conftest import LiveServer, start_server, stop_server
from unem import auth
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import open_source
from unem.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
BROKEN_PLUGIN = "raise ImportError('this model needs a package that is not installed')\n"
TRAINING = {
    "steps": "30", "patch_size": "32", "batch_size": "2", "validate_every": "5", "downsample": "2",
}  # fmt: skip
# Every animation frame, note the run's state and the number of points the chart draws,
# whenever either changes.
WATCH = """() => {
  window.seen = [];
  const tick = () => {
    const entry = [document.getElementById('run-state').textContent,
                   Number(document.getElementById('loss-chart').dataset.points || 0)];
    const last = window.seen.at(-1);
    if (!last || last[0] !== entry[0] || last[1] !== entry[1]) window.seen.push(entry);
    requestAnimationFrame(tick);
  };
  tick();
}"""


def painted_cells(shape: tuple[int, int, int] = (8, 96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """Bright discs on a noisy background, and their painted labels (1 inside a disc)."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    labels = np.zeros(shape, np.uint8)
    for z in range(shape[0]):
        for _ in range(6):
            y, x, r = rng.integers(12, shape[1] - 12), rng.integers(12, shape[2] - 12), 8
            labels[z][(yy - y) ** 2 + (xx - x) ** 2 < r**2] = 1
    image = 60 + 120 * labels + rng.normal(0, 20, shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("trainer")
    ws = Workspace(root / "ws")
    image, labels = painted_cells()
    np.save(root / "cells.npy", image)
    np.save(root / "painted.npy", labels)
    sources = {"image": open_source(root / "cells.npy"),
               "groundtruth": open_source(root / "painted.npy")}  # fmt: skip
    import_dataset(ws, "cells", sources, (40.0, 4.0, 4.0))
    auth.create_user(ws.db, "vera", "viewer", "vera-password")
    (ws.root / "plugins").mkdir()  # the workspace's plugin folder is searched too
    (ws.root / "plugins" / "needs_torch.py").write_text(BROKEN_PLUGIN)
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


def open_trainer(page: Page, server: LiveServer) -> None:
    page.locator("header nav").get_by_role("link", name="Trainer").click()
    expect(page).to_have_url(f"{server.base}/trainer")
    expect(page.locator("#trainer-page")).to_have_attribute("data-ready", "true")


def choose(page: Page, selector: str, value: str) -> None:
    field = page.locator(selector)
    if field.evaluate("e => e.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def test_train_a_model_watch_its_loss_and_predict_with_it(
    browser: Browser, context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = admin_page(context, server, errors)
    open_trainer(page, server)
    cards = page.locator("#model-picker .model-card")
    for name in ("unet", "resnet", "highway", "densenet"):
        expect(cards.locator(f"input[value={name}]")).to_be_enabled()
    expect(page.locator("#model-picker input[value=unet]")).to_be_checked()  # the default
    broken = cards.filter(has_text="needs_torch.py")
    expect(broken).to_contain_text("ImportError: this model needs a package that is not installed")
    expect(broken.locator("input")).to_be_disabled()
    page.locator("#model-picker input[value=resnet]").check()
    expect(page.locator("#model-options [name=dilation_levels]")).to_be_visible()
    page.locator("#model-picker input[value=unet]").check()
    base_filters = page.locator("#model-options [name=base_filters]")
    expect(base_filters).to_have_value("16")  # the schema's default and bounds
    expect(base_filters).to_have_attribute("min", "2")
    expect(base_filters).to_have_attribute("max", "128")
    help_text = page.locator("#model-options label").filter(has=page.locator("[name=base_filters]"))
    expect(help_text.locator(".hint")).to_contain_text("Feature maps at full resolution")
    base_filters.fill("4")
    page.locator("#model-options [name=depth]").fill("2")

    train = page.locator("#train-options")
    expect(train.locator("[name=model], [name=model_options]")).to_have_count(0)
    augment = train.locator("details[data-group=augment]")
    expect(augment.locator("summary")).to_have_text("Augmentation")
    expect(augment.locator("[name='augment.flip']")).to_be_hidden()  # collapsed
    augment.locator("summary").click()
    expect(augment.locator("[name='augment.flip']")).to_have_value("0.5")
    expect(train.locator("[name=dataset]")).to_have_value("cells")
    label_layers = train.locator("[name=label_layer] option")
    expect(label_layers).to_contain_text(["groundtruth (groundtruth)"])
    choose(page, "#train-options [name=label_layer]", "groundtruth")
    for name, value in TRAINING.items():
        choose(page, f"#train-options [name={name}]", value)

    page.evaluate(WATCH)
    page.get_by_role("button", name="Train").click()
    expect(page.locator("#run-state")).to_have_text("running", timeout=30_000)
    expect(page.locator("#run-title")).to_contain_text("Train unet on cells/groundtruth")
    # the worker starts TensorFlow first: the first loss comes after some seconds
    expect(page.locator("#chart-legend [data-series=loss]")).to_be_visible(timeout=120_000)
    expect(page.locator("#run-state")).to_have_text("done", timeout=150_000)
    expect(page.locator("#run-step")).to_contain_text("100 %")
    points = page.locator("#chart-legend [data-series=loss]").get_attribute("data-count")
    assert points is not None and int(points) >= 2
    expect(page.locator("#chart-legend [data-series=val_dice]")).to_be_visible()
    expect(page.locator("#chart-legend [data-series=val_loss]")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "trainer.png")
    seen = page.evaluate("window.seen")
    live = sorted({count for state, count in seen if state == "running" and count > 0})
    assert len(live) >= 2, seen  # the chart grew while the job ran, not only at its end

    run_id = page.locator("#run-picker").input_value()
    expect(page.locator("#run-tensorboard")).to_have_attribute(
        "href", f"/tensorboard/#scalars&regexInput=%5E{run_id}%2F"
    )
    expect(page.locator("#run-page")).to_have_attribute("href", f"/jobs/{run_id}")
    trained = page.locator("#trained-models tbody tr", has_text=f"unet-job{run_id}")
    expect(trained.locator(".files a")).to_contain_text(["model.keras"])
    expect(trained.locator(".scores")).to_contain_text("dice")
    expect(trained).to_contain_text("30 steps, at 1/2 resolution")

    infer = page.locator("#infer-options")
    expect(infer.locator("[name=model]")).to_have_value(f"unet-job{run_id}")
    choose(page, "#infer-options [name=tile_size]", "64")
    choose(page, "#infer-options [name=test_time_augmentation]", "flips")
    page.get_by_role("button", name="Predict").click()
    status = page.locator("#infer-status")
    expect(status).to_contain_text("Predict cells/image with", timeout=10_000)
    expect(status).to_contain_text("done", timeout=120_000)
    expect(status.get_by_role("link", name="open in Dojo")).to_have_attribute("href", "/dojo/cells")
    layers = page.request.get(f"{server.base}/api/datasets/cells").json()["layers"]
    prediction = next(layer for layer in layers if layer["name"] == "prediction")
    assert prediction["levels"][0]["shape"] == [8, 96, 96]  # trained at 48², predicted at 96²

    viewer_context = browser.new_context(viewport=VIEWPORT)
    try:
        viewer = errors.watch(viewer_context.new_page())
        viewer.goto(f"{server.base}/login?next=/trainer")
        viewer.get_by_label("User name").fill("vera")
        viewer.get_by_label("Password").fill("vera-password")
        viewer.get_by_role("button", name="Log in").click()
        expect(viewer.locator("#trainer-page")).to_have_attribute("data-ready", "true")
        expect(viewer.locator("#read-only-note")).to_be_visible()
        expect(viewer.get_by_role("button", name="Train")).to_be_disabled()
        expect(viewer.locator("#train-options [name=steps]")).to_be_disabled()
        expect(viewer.locator("#run-state")).to_have_text("done")
        # a finished run's curves come back from its TensorBoard run
        expect(viewer.locator("#chart-legend [data-series=loss]")).to_have_attribute(
            "data-count", re.compile(r"^([2-9]|\d\d+)$"), timeout=30_000
        )
        expect(viewer.locator("#trained-models tbody tr button")).to_have_count(0)
    finally:
        viewer_context.close()
