"""The jobs pages in Chromium against a real server: a job's bar moves live, ends done.

Set UNEM_SCREENSHOTS=1 to refresh docs/screenshots/jobs.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.test_home import VIEWPORT, PageErrors, admin_page, screenshot
from tests.conftest import LiveServer, start_server, stop_server
from tests.jobs_support import TEST_PLUGIN
from unem import auth
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import open_source
from unem.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
STEPS = 12
# Every animation frame, note the newest job's bar (position: value/max, -1 before the
# total is known) and ETA, whenever they change.
WATCH = """() => {
  window.seen = [];
  const tick = () => {
    const row = document.querySelector('#jobs-table tbody tr');
    const bar = row?.querySelector('progress');
    if (bar) {
      const entry = [row.dataset.job, bar.position, row.querySelector('td.eta').textContent];
      const last = window.seen.at(-1);
      if (!last || last[0] !== entry[0] || last[1] !== entry[1]) window.seen.push(entry);
    }
    requestAnimationFrame(tick);
  };
  tick();
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("jobs")
    ws = Workspace(root / "ws")
    stack = np.random.default_rng(1).integers(0, 255, (6, 600, 600)).astype(np.uint8)
    np.save(root / "cells.npy", stack)
    import_dataset(ws, "cells", {"image": open_source(root / "cells.npy")}, (40.0, 4.0, 4.0))
    auth.create_user(ws.db, "vera", "viewer", "vera-password")
    live = start_server(ws.root, "--plugin", str(TEST_PLUGIN))
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


def run_from_form(page: Page, kind: str, **options: str) -> None:
    form = page.locator("#submit-job")
    form.get_by_label("Kind").select_option(kind)
    for name, value in options.items():
        field = form.locator(f"#job-options [name={name}]")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    form.get_by_role("button", name="Run").click()


def test_the_jobs_page_shows_a_job_progressing_live_to_its_end(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = admin_page(context, server, errors)
    page.locator("header nav").get_by_role("link", name="Jobs").click()
    expect(page).to_have_url(f"{server.base}/jobs")
    run_from_form(page, "pyramid", dataset="cells", layer="image")  # a real kind first
    pyramid = page.locator("#jobs-table tbody tr", has_text="Pyramid of cells/image")
    expect(pyramid.locator("td.state")).to_have_text("done")

    page.evaluate(WATCH)
    run_from_form(page, "test-steps", steps=str(STEPS), delay="0.25")
    row = page.locator("#jobs-table tbody tr").first
    expect(row).to_contain_text(f"{STEPS} test steps")
    expect(row.locator("td.state")).to_have_text("running")
    expect(row.locator(".percent")).to_have_text(re.compile(r"^(4[0-9]|5[0-9]) %$"))
    expect(row.locator("td.metrics")).to_contain_text("loss")
    form = page.locator("#submit-job")  # the form of a real kind, generated from its schema
    form.get_by_label("Kind").select_option("gaussian")
    expect(form.locator("[name=dataset]")).to_have_value("cells")
    expect(form.locator("[name=layer] option")).to_have_text(
        ["image (image)", "segmentation (segmentation)"]
    )
    expect(form.locator("[name=sigma]")).to_have_value("1")
    screenshot(page, "jobs.png")
    expect(row.locator("td.state")).to_have_text("done", timeout=30_000)
    expect(row.locator(".percent")).to_have_text("100 %")

    job = row.get_attribute("data-job")
    seen = [(position, eta) for id_, position, eta in page.evaluate("window.seen") if id_ == job]
    positions = [position for position, _ in seen if position >= 0]
    assert positions == sorted(positions) and positions[-1] == 1.0, seen
    assert len({p for p in positions if 0 < p < 1}) >= 4, seen  # it moved, in steps
    assert any(re.fullmatch(r"\d+ s", eta) for _, eta in seen), seen  # an ETA was shown

    row.get_by_role("link", name=f"{STEPS} test steps").click()
    expect(page.locator("#job-state")).to_have_text("done")
    expect(page.locator("#job-log")).to_contain_text(f"[{STEPS}/{STEPS}] step {STEPS}")
    expect(page.locator("#job-result")).to_contain_text('"steps": 12')
    expect(page.get_by_role("link", name="TensorBoard").last).to_have_attribute(
        "href", re.compile(r"^/tensorboard/#scalars&regexInput=")
    )


def test_admins_cancel_and_resume_viewers_only_watch(
    browser: Browser, context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = admin_page(context, server, errors)
    page.goto(f"{server.base}/jobs")
    run_from_form(page, "test-steps", steps="400", delay="0.05")
    row = page.locator("#jobs-table tbody tr", has_text="400 test steps")
    expect(row.locator("td.state")).to_have_text("running")

    viewer_context = browser.new_context(viewport=VIEWPORT)
    try:
        viewer = errors.watch(viewer_context.new_page())
        viewer.goto(f"{server.base}/login?next=/jobs")
        viewer.get_by_label("User name").fill("vera")
        viewer.get_by_label("Password").fill("vera-password")
        viewer.get_by_role("button", name="Log in").click()
        seen = viewer.locator("#jobs-table tbody tr", has_text="400 test steps")
        expect(seen.locator("td.state")).to_have_text("running")
        expect(viewer.locator("#submit-job")).to_have_count(0)
        expect(seen.get_by_role("button", name="Cancel")).to_have_count(0)

        row.get_by_role("button", name="Cancel").click()
        expect(row.locator("td.state")).to_have_text("cancelled", timeout=5_000)
        expect(seen.locator("td.state")).to_have_text("cancelled")  # live, no reload
        row.get_by_role("button", name="Resume").click()
        expect(row.locator("td.state")).to_have_text("running")
        expect(seen.locator("td.state")).to_have_text("running")
        row.get_by_role("button", name="Cancel").click()
        expect(row.locator("td.state")).to_have_text("cancelled")
    finally:
        viewer_context.close()


def test_home_links_to_jobs_with_their_progress(
    context: BrowserContext, server: LiveServer, errors: PageErrors, tmp_path: Path
) -> None:
    page = admin_page(context, server, errors)
    summary = page.locator("#jobs-summary .task").first
    expect(summary).to_be_visible()
    expect(summary.locator(".status")).to_contain_text(re.compile(r"done|cancelled"))
    page.locator(".jobs-home").get_by_role("link", name="All jobs").click()
    expect(page).to_have_url(f"{server.base}/jobs")
