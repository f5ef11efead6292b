"""The Evaluate page in Chromium against a real server: run an evaluation of the demo
volume's segmentation, read the scores table, the per-slice chart and the worst offenders,
download the CSV, and open Dojo at an offender; a viewer sees the reports read-only.

Set UNEM_SCREENSHOTS=1 to refresh docs/screenshots/evaluation.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.browser.test_home import VIEWPORT, PageErrors, admin_page, screenshot
from tests.conftest import LiveServer, start_server, stop_server
from tests.jobs_support import wait_for
from unem import auth
from unem.demo import create_demo_dataset
from unem.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    ws = Workspace(tmp_path_factory.mktemp("evaluation") / "ws")
    create_demo_dataset(ws, shape=(6, 128, 128))
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
    context.set_default_timeout(30_000)
    yield context
    context.close()


def test_evaluate_read_the_report_and_open_dojo_at_an_offender(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = admin_page(context, server, errors)
    page.locator("header nav").get_by_role("link", name="Evaluate").click()
    expect(page.locator("#evaluation-page")).to_have_attribute("data-ready", "true")
    expect(page.locator("#no-reports")).to_be_visible()
    expect(page.locator("#eval-segmentation")).to_have_value("segmentation")
    expect(page.locator("#eval-groundtruth")).to_have_value("groundtruth")
    expect(page.locator("#threshold-field")).to_be_hidden()
    page.get_by_role("button", name="Evaluate").click()

    report = page.locator("#report")
    expect(report).to_be_visible(timeout=120_000)
    expect(page.locator("#evaluate-status")).to_contain_text("done")
    scores = page.get_by_test_id("scores")
    fraction = re.compile(r"^0\.\d+")
    for name in ("rand_split", "rand_merge", "adapted_rand_error", "vi_split", "vi_merge"):
        expect(scores.locator(f"tr[data-score={name}] td.value")).to_have_text(fraction)
    expect(scores.locator("tr[data-score=rand_split]")).to_contain_text("over-segmentation")
    expect(scores.locator("tr[data-score=vi_merge]")).to_contain_text("under-segmentation")
    expect(page.locator("#slice-chart")).to_have_attribute("data-points", "30")  # 6 slices × 5
    expect(page.locator("#slice-legend li")).to_have_count(5)
    expect(page.locator("#reports tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/evaluation\?report=\d+$"))
    screenshot(page, "evaluation.png")

    with page.expect_download() as download:
        page.locator("#report-csv").click()
    lines = download.value.path().read_text().splitlines()
    assert lines[0].startswith("z,rand_split,rand_merge,rand_f,adapted_rand_error")
    assert lines[1].startswith("all,") and len(lines) == 2 + 6

    merged = page.locator("#most-merged tbody tr").first
    segment = merged.get_attribute("data-id")
    link = merged.get_by_role("link", name="Open in Dojo")
    query = parse_qs(urlparse(link.get_attribute("href") or "").query)
    assert query["sel"] == [segment] and query["ov"] == ["groundtruth"]
    link.click()
    expect(page).to_have_url(re.compile(r"/dojo/demo-em-volume\?"))
    expect(page.locator("#status-tool")).to_contain_text(f"selected {segment}")
    expect(page.locator("#z-input")).to_have_value(query["z"][0])


def test_a_viewer_reads_reports_but_cannot_run_one(
    browser: Browser, server: LiveServer, errors: PageErrors
) -> None:
    session = server.admin_session()
    options = {"dataset": "demo-em-volume", "mode": "semantic"}
    job = session.post(f"{server.base}/api/jobs", json={"kind": "evaluate", "options": options})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = errors.watch(context.new_page())
        page.goto(f"{server.base}/login")
        page.get_by_label("User name").fill("vera")
        page.get_by_label("Password").fill("vera-password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_test_id("who")).to_have_text("vera · viewer")
        page.goto(f"{server.base}/evaluation")
        expect(page.locator("#read-only-note")).to_be_visible()
        expect(page.get_by_role("button", name="Evaluate")).to_be_disabled()
        wait_for(lambda: session.get(f"{server.base}/api/jobs/{job_id}").json()["state"] == "done",
                 timeout=120, message="the evaluate job did not finish")  # fmt: skip
        page.reload()
        row = page.locator("#reports tbody tr").filter(has_text="semantic")
        expect(row).to_contain_text("dice 1")
        expect(row.get_by_role("button", name="Delete")).to_have_count(0)
        row.get_by_role("button", name="Open").click()
        expect(page.get_by_test_id("scores").locator("tr[data-score=jaccard]")).to_contain_text("1")
        expect(page.locator("#offenders")).to_be_hidden()
    finally:
        context.close()
