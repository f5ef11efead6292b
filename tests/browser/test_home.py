"""The home page in Chromium against a real server: demo, imports, folder picker, roles.

Every page records its console errors and uncaught exceptions; each test ends by asserting
there were none. Set UNEM_SCREENSHOTS=1 to refresh the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import DATA, ISBI_IMAGES, ROOT, LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

ISBI_LABELS = ISBI_IMAGES.parent / "label"
SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 860}


class PageErrors:
    """Console errors and uncaught exceptions of the pages it watches."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def watch(self, page: Page) -> Page:
        page.on(
            "console",
            lambda m: (
                m.type == "error" and self.add(f"console: {m.text} ({m.location.get('url')})")
            ),
        )
        page.on("pageerror", lambda error: self.add(f"page error: {error}"))
        return page

    def add(self, message: str) -> None:
        if not any(pattern.search(message) for pattern in self.allowed):
            self.messages.append(message)

    def allow(self, pattern: str) -> None:
        """Expect one kind of error (a refused request the test makes on purpose)."""
        self.allowed.append(re.compile(pattern))


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


def admin_page(context: BrowserContext, server: LiveServer, errors: PageErrors) -> Page:
    page = errors.watch(context.new_page())
    page.goto(server.admin_url)
    expect(page.get_by_test_id("who")).to_have_text("admin · admin")
    expect(page).not_to_have_url(re.compile("token="))  # the token leaves the address bar
    return page


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("UNEM_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))


def fill_import(page: Page, name: str, image: Path, segmentation: Path | None = None) -> None:
    page.get_by_role("button", name="Import a stack…").click()
    dialog = page.locator("#import-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name", exact=True).fill(name)
    dialog.locator("input[name=image-path]").fill(str(image))
    if segmentation is not None:
        dialog.locator("input[name=segmentation-path]").fill(str(segmentation))
    for axis, value in zip(("z", "y", "x"), ("50", "4", "4"), strict=True):
        dialog.get_by_label(axis, exact=True).fill(value)


def expect_thumbnails_loaded(page: Page, count: int) -> None:
    cards = page.locator("#datasets .dataset")
    expect(cards).to_have_count(count)
    cards.locator("img.thumb").first.scroll_into_view_if_needed()
    page.wait_for_function(
        """count => {
            const images = [...document.querySelectorAll('#datasets img.thumb')];
            return images.length === count && images.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=count,
    )


def test_admin_creates_demo_and_imports_isbi(
    browser: Browser, context: BrowserContext, live_server: LiveServer, errors: PageErrors
) -> None:
    page = admin_page(context, live_server, errors)
    expect(page.locator("#empty")).to_be_visible()

    page.get_by_role("button", name="Create demo dataset").click()
    demo_task = page.locator(".task", has_text="Create demo dataset")
    expect(demo_task.locator("progress")).to_be_visible()
    # A failed task shows its error in the status, which this assertion then prints.
    expect(demo_task.locator(".status")).to_have_text("done", timeout=45_000)
    expect(page.locator("#datasets .dataset")).to_have_count(1)

    fill_import(page, "ISBI 2012 training", ISBI_IMAGES)
    screenshot(page, "import.png")
    page.locator("#start-import").click()
    expect(page.locator("#import-dialog")).to_be_hidden()
    task = page.locator(".task", has_text="Import ISBI 2012 training")
    expect(task.locator("progress")).to_be_visible()
    expect(task.locator(".status")).to_have_text("done")
    isbi = page.locator("#datasets .dataset", has_text="ISBI 2012 training")
    expect(isbi).to_contain_text("30 × 512 × 512")
    expect(isbi).to_contain_text("50 × 4 × 4 nm")
    expect(page.locator("#empty")).to_be_hidden()
    expect_thumbnails_loaded(page, 2)
    expect(page.locator(".task")).to_have_count(0, timeout=10_000)  # finished tasks go away
    screenshot(page, "home.png")


def test_folder_picker_browses_to_the_isbi_folder(
    context: BrowserContext, live_server: LiveServer, errors: PageErrors
) -> None:
    page = admin_page(context, live_server, errors)
    page.get_by_role("button", name="Import a stack…").click()
    page.locator("#import-dialog fieldset[data-kind=image]").get_by_role(
        "button", name="Browse…"
    ).click()
    picker = page.locator("#browse-dialog")
    expect(picker).to_be_visible()
    expect(picker.locator("#browse-path")).to_have_text("Folders this server may read")
    picker.get_by_role("button", name=str(DATA)).click()
    for folder in ISBI_IMAGES.relative_to(DATA).parts:
        picker.get_by_role("button", name=re.compile(rf"^📁 {re.escape(folder)}\b")).click()
    expect(picker.locator("#browse-path")).to_have_text(str(ISBI_IMAGES))
    expect(picker.get_by_role("button", name="00.png")).to_be_visible()
    picker.get_by_role("button", name="..").click()  # up one level and back: the parent link
    expect(picker.locator("#browse-path")).to_have_text(str(ISBI_IMAGES.parent))
    picker.get_by_role("button", name=re.compile(r"^📁 image\b")).click()
    picker.get_by_role("button", name="Use this folder").click()
    expect(picker).to_be_hidden()
    expect(page.locator("input[name=image-path]")).to_have_value(str(ISBI_IMAGES))
    expect(page.locator("#import-dialog")).to_be_visible()


def test_mismatched_segmentation_is_refused_in_the_dialog(
    context: BrowserContext, live_server: LiveServer, errors: PageErrors
) -> None:
    errors.allow(r"status of 400 .*/api/datasets\)$")  # the refusal this test asks for
    page = admin_page(context, live_server, errors)
    fill_import(page, "ISBI with short labels", ISBI_IMAGES, segmentation=ISBI_LABELS)
    page.locator("#start-import").click()
    message = page.locator("#import-error")
    expect(message).to_be_visible()
    expect(message).to_contain_text("24 slices but the image has 30")
    expect(page.locator("#import-dialog")).to_be_visible()  # the user can correct and retry
    expect(page.locator(".task")).to_have_count(0)
    page.locator("#cancel-import").click()
    page.get_by_role("button", name="Import a stack…").click()
    expect(message).to_be_hidden()  # a reopened dialog starts without the old error


def test_viewer_sees_datasets_live_but_cannot_import(
    browser: Browser, context: BrowserContext, live_server: LiveServer, errors: PageErrors
) -> None:
    admin = admin_page(context, live_server, errors)
    admin.goto(f"{live_server.base}/users")
    form = admin.locator("#add-user")
    form.get_by_label("Name").fill("vera")
    form.get_by_label("Password").fill("vera-password")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_role("button", name="Add").click()
    expect(admin.locator("tr[data-user=vera]")).to_be_visible()

    viewer_context = browser.new_context(viewport=VIEWPORT)
    try:
        viewer = errors.watch(viewer_context.new_page())
        viewer.goto(live_server.base)
        expect(viewer).to_have_url(re.compile(r"/login"))
        viewer.get_by_label("User name").fill("vera")
        viewer.get_by_label("Password").fill("vera-password")
        viewer.get_by_role("button", name="Log in").click()
        expect(viewer.get_by_test_id("who")).to_have_text("vera · viewer")
        expect(viewer.locator("#empty")).to_be_visible()
        expect(viewer.locator("#empty")).to_contain_text("Ask the admin")
        expect(viewer.get_by_role("button", name="Import a stack…")).to_have_count(0)
        expect(viewer.get_by_role("button", name="Create demo dataset")).to_have_count(0)
        expect(viewer.locator("#import-dialog")).to_have_count(0)
        expect(viewer.get_by_role("link", name="Users")).to_have_count(0)

        admin.goto(live_server.base)
        fill_import(admin, "ISBI for the viewer", ISBI_IMAGES)
        admin.locator("#start-import").click()
        # The viewer's page updates over Socket.IO, without a reload.
        expect(viewer.locator("#datasets .dataset", has_text="ISBI for the viewer")).to_be_visible()
        expect_thumbnails_loaded(viewer, 1)
    finally:
        viewer_context.close()
