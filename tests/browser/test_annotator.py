"""The 3D annotator in Chromium (WebGL through SwiftShader) against a real server on the demo
volume: meshes drawn, an object renamed, a marker dropped by clicking on a surface, a PNG
exported at a chosen size, and a second user's rename seen live. Each check reads both the
server's answer and the page (its state and the canvas pixels).

Set UNEM_SCREENSHOTS=1 to refresh docs/screenshots/annotator.png.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.test_dojo import DEMO, PROOFREADER, new_context
from tests.browser.test_home import PageErrors, screenshot
from tests.conftest import LiveServer, start_server, stop_server
from unem.demo import create_demo_dataset
from unem.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
DEMO_SHAPE = (16, 192, 192)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with a small demo volume and a proofreader account.

    The demo is made by the core at a quarter of its area and half its depth: SwiftShader
    draws on the CPU, and the full demo's two million triangles take it seconds a frame.
    """
    root = tmp_path_factory.mktemp("annotator") / "ws"
    create_demo_dataset(Workspace(root), shape=DEMO_SHAPE)
    live = start_server(root)
    try:
        admin = live.admin_session()
        name, password = PROOFREADER
        response = admin.post(
            f"{live.base}/api/users",
            timeout=10,
            json={"name": name, "role": "proofreader", "password": password},
        )
        assert response.status_code == 201, response.text
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
    made = new_context(browser)
    yield made
    made.close()


def wait_ready(page: Page) -> None:
    page.wait_for_function(
        "window.annotator && annotator.settled() && annotator.meshes.loaded > 0", timeout=120_000
    )
    expect(page.locator("#connection")).to_have_text("● live")


def open_as_admin(
    context: BrowserContext, server: LiveServer, errors: PageErrors, query: str = ""
) -> Page:
    page = errors.watch(context.new_page())
    page.goto(server.admin_url)
    page.goto(f"{server.base}/annotator/{DEMO}{query}")
    wait_ready(page)
    return page


def open_as_proofreader(context: BrowserContext, server: LiveServer, errors: PageErrors) -> Page:
    page = errors.watch(context.new_page())
    page.goto(f"{server.base}/annotator/{DEMO}")  # the login page, which brings us back
    page.get_by_label("User name").fill(PROOFREADER[0])
    page.get_by_label("Password").fill(PROOFREADER[1])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{server.base}/annotator/{DEMO}")
    wait_ready(page)
    return page


def drawn_share(page: Page) -> float:
    """The share of the canvas' pixels that differ from the background colour."""
    return float(
        page.evaluate("""() => {
        const source = annotator.scene.canvas;
        annotator.scene.draw();
        const copy = document.createElement("canvas");
        [copy.width, copy.height] = [source.width, source.height];
        const context = copy.getContext("2d");
        context.drawImage(source, 0, 0);
        const pixels = context.getImageData(0, 0, copy.width, copy.height).data;
        const bg = annotator.scene.scene.background.getHexString();
        const [r, g, b] = [0, 2, 4].map((i) => parseInt(bg.slice(i, i + 2), 16));
        let drawn = 0;
        for (let i = 0; i < pixels.length; i += 4) {
            const d = Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g)
                + Math.abs(pixels[i + 2] - b);
            if (d > 24) drawn += 1;
        }
        return drawn / (pixels.length / 4);
    }""")
    )


def point_on_an_object(page: Page) -> dict[str, Any]:
    """A page point over an object's surface, the object, and where the ray hits it (nm)."""
    found = page.evaluate("""() => {
        const rect = annotator.scene.canvas.getBoundingClientRect();
        for (let fy = 0.5; fy < 0.9; fy += 0.04) {
            for (let fx = 0.5; fx < 0.9; fx += 0.04) {
                for (const [x, y] of [[fx, fy], [1 - fx, 1 - fy], [fx, 1 - fy], [1 - fx, fy]]) {
                    const px = rect.left + x * rect.width, py = rect.top + y * rect.height;
                    const hit = annotator.scene.pick(px, py);
                    if (hit && hit.kind === "object") return { x: px, y: py, ...hit };
                }
            }
        }
        return null;
    }""")
    assert found is not None, "no object under any probed point"
    return dict(found)


def segment_name(server: LiveServer, segment: int) -> str | None:
    session = server.admin_session()
    info = session.get(f"{server.base}/dojo/api/{DEMO}/segments/{segment}", timeout=10).json()
    return info.get("name")


def test_meshes_are_drawn_renamed_marked_and_exported(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = open_as_admin(context, server, errors)
    objects = page.evaluate("annotator.meshes.rows.size")
    assert objects > 20
    assert page.locator("#objects tbody tr").count() == objects
    assert drawn_share(page) > 0.05  # the objects cover part of the view

    # rename the largest object in the table (sorted by voxels, largest first)
    row = page.locator("#objects tbody tr").first
    segment = int(row.get_attribute("data-object") or 0)
    row.locator("td.name input").fill("big neurite")
    row.locator("td.name input").press("Enter")
    page.wait_for_function(f"annotator.meshes.rows.get({segment}).name === 'big neurite'")
    assert segment_name(server, segment) == "big neurite"

    # drop a marker by clicking on a surface
    page.get_by_role("button", name="+ Marker").click()
    target = point_on_an_object(page)
    page.mouse.click(target["x"], target["y"])
    page.wait_for_function("annotator.markers.length === 1")
    expect(page.locator("#markers tbody tr")).to_have_count(1)
    session = server.admin_session()
    [marker] = session.get(f"{server.base}/annotator/api/{DEMO}/markers", timeout=10).json()[
        "markers"
    ]
    assert marker["segment"] == target["id"]
    assert np.allclose(marker["position"], target["point"], atol=1e-3)
    extent = page.evaluate("annotator.extent")
    assert all(-1 <= p <= e + 1 for p, e in zip(marker["position"], extent, strict=True))

    # a PNG at the size asked for, with the objects in it
    page.locator("#panel-export summary").click()
    page.get_by_label("Picture width").fill("640")
    page.get_by_label("Picture height").fill("360")
    with page.expect_download() as download:
        page.get_by_role("button", name="Save PNG").click()
    path = download.value.path()
    picture = Image.open(io.BytesIO(path.read_bytes()))
    assert picture.format == "PNG" and picture.size == (640, 360)
    pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # shaded meshes, not a blank picture
    assert drawn_share(page) > 0.05  # and the view is back as it was

    # the object table and a mesh export download
    with page.expect_download() as table:
        page.locator("#objects-csv").click()
    assert table.value.path().read_text().startswith("id,name,colour,voxels")
    page.evaluate(f"annotator.select({segment}, true)")
    with page.expect_download() as mesh:
        page.get_by_role("button", name="Download").click()
    assert mesh.value.suggested_filename.endswith(".obj")
    assert mesh.value.path().stat().st_size > 1000


def test_a_second_users_rename_appears_live(
    browser: Browser, server: LiveServer, errors: PageErrors
) -> None:
    first, second = new_context(browser), new_context(browser)
    try:
        admin = open_as_admin(first, server, errors)
        bob = open_as_proofreader(second, server, errors)
        segment = int(bob.locator("#objects tbody tr").nth(1).get_attribute("data-object") or 0)
        name = bob.locator(f'#objects tr[data-object="{segment}"] td.name input')
        name.fill("renamed by bob")
        name.press("Enter")
        expect(admin.locator(f'#objects tr[data-object="{segment}"] td.name input')).to_have_value(
            "renamed by bob"
        )
        assert admin.evaluate(f"annotator.meshes.rows.get({segment}).name") == "renamed by bob"
        # and a colour, which Dojo draws too: live, and after loading
        dojo = errors.watch(second.new_page())
        dojo.goto(f"{server.base}/dojo/{DEMO}")
        dojo.wait_for_function("window.dojo && dojo.sync.joinedOnce && dojo.settled()")
        dojo.locator("#segment-search").fill(str(segment))
        swatch = dojo.locator(f'#segments tr[data-segment="{segment}"] .swatch')
        expect(swatch).not_to_have_css("background-color", "rgb(0, 255, 0)")
        stamp = dojo.evaluate("dojo.colourStamp")
        admin.evaluate(f"annotator.recolour({segment}, '#00ff00')")
        bob.wait_for_function(f"annotator.meshes.rows.get({segment}).colour === '#00ff00'")
        expect(swatch).to_have_css("background-color", "rgb(0, 255, 0)")
        assert dojo.evaluate("dojo.colourStamp") > stamp  # the label tiles are recoloured
        dojo.reload()
        dojo.locator("#segment-search").fill(str(segment))
        expect(swatch).to_have_css("background-color", "rgb(0, 255, 0)")
        assert segment_name(server, segment) == "renamed by bob"
    finally:
        first.close()
        second.close()


def show_a_few_with_the_em_slice(page: Page) -> None:
    """Hide all but the six largest objects and show the EM slice under them."""
    before = drawn_share(page)
    page.get_by_role("button", name="None", exact=True).click()
    page.wait_for_function("[...annotator.meshes.rows.values()].every((o) => !o.mesh.visible)")
    assert drawn_share(page) < 0.02  # only the bounding box is left
    for row in page.locator("#objects tbody tr").all()[:6]:
        row.locator("input[type=checkbox]").check()
    page.locator("#show-slice").check()
    page.wait_for_function("annotator.slice.mesh?.visible && annotator.slice.mesh.material.map")
    z = page.evaluate("annotator.slice.z")
    assert z == DEMO_SHAPE[0] // 2
    slice_z = page.evaluate("annotator.slice.mesh.position.z")
    assert slice_z == pytest.approx((z + 0.5) * 40.0)  # the demo's sections are 40 nm thick
    assert drawn_share(page) > before / 3
    page.get_by_role("button", name="Fit").click()


def largest_object(server: LiveServer) -> dict[str, Any]:
    """The object table's row of the demo's largest object."""
    session = server.admin_session()
    objects = session.get(f"{server.base}/annotator/api/{DEMO}/objects", timeout=60).json()[
        "objects"
    ]
    largest: dict[str, Any] = max(objects, key=lambda o: o["voxels"])
    return largest


def test_selection_links_dojo_and_the_annotator(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    chosen = largest_object(server)
    page = open_as_admin(context, server, errors, f"?sel={chosen['id']}")
    expect(page.locator("#selected-id")).to_have_text(f"#{chosen['id']}")
    href = page.locator("#sel-dojo").get_attribute("href") or ""
    assert href.startswith(f"/dojo/{DEMO}?") and f"sel={chosen['id']}" in href
    show_a_few_with_the_em_slice(page)
    screenshot(page, "annotator.png")
    page.locator("#sel-dojo").click()
    page.wait_for_function("window.dojo && dojo.sync.joinedOnce && dojo.settled()")
    assert page.evaluate("dojo.selected") == chosen["id"]
    # and back: Dojo's 3D button opens the annotator on the selected segment
    page.locator("#open-3d").click()
    expect(page).to_have_url(f"{server.base}/annotator/{DEMO}?sel={chosen['id']}")
    wait_ready(page)
    assert page.evaluate("annotator.meshes.selected") == chosen["id"]


SHAPE_OF_SELECTED = """() => {
  const row = annotator.meshes.rows.get(annotator.meshes.selected);
  const position = row.mesh.geometry.attributes.position;
  return { smooth: row.smooth, positions: Array.from(position.array.slice(0, 30000)) };
}"""


def test_smoothing_refetches_the_meshes_smoothed(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    chosen = largest_object(server)
    page = open_as_admin(context, server, errors, f"?sel={chosen['id']}")
    page.wait_for_function(f"annotator.meshes.rows.get({chosen['id']}).mesh !== null")
    raw = page.evaluate(SHAPE_OF_SELECTED)
    assert raw["smooth"] == 0
    page.locator("#smoothing").fill("8")
    page.wait_for_function(f"annotator.meshes.rows.get({chosen['id']}).smooth === 8")
    smoothed = page.evaluate(SHAPE_OF_SELECTED)
    before, after = np.array(raw["positions"]), np.array(smoothed["positions"])
    assert before.shape == after.shape  # the same vertices, moved
    # Flat stretches stay put under Taubin smoothing; corners and staircases move.
    moved = np.abs(after - before) > 0.5  # nm
    assert moved.mean() > 0.04 and np.abs(after - before).max() > 2


def test_viewers_see_but_cannot_change(
    browser: Browser, server: LiveServer, errors: PageErrors
) -> None:
    admin = server.admin_session()
    admin.post(
        f"{server.base}/api/users",
        timeout=10,
        json={"name": "vera", "role": "viewer", "password": "vera-secret-42"},
    )
    context = new_context(browser)
    try:
        page = errors.watch(context.new_page())
        page.goto(f"{server.base}/annotator/{DEMO}")
        page.get_by_label("User name").fill("vera")
        page.get_by_label("Password").fill("vera-secret-42")
        page.get_by_role("button", name="Log in").click()
        wait_ready(page)
        expect(page.get_by_role("button", name="+ Marker")).to_be_hidden()
        assert (
            page.locator("#objects tbody tr td.name input").first.get_attribute("readonly")
            is not None
        )
        assert drawn_share(page) > 0.05
        # looking around is for everyone: orbit, then trackball
        for mode in ("orbit", "trackball"):
            page.get_by_label("Camera").select_option(mode)
            before = page.evaluate("annotator.scene.camera.position.toArray()")
            box = page.locator("#view").bounding_box()
            assert box is not None
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 120, y + 40, steps=8)
            page.mouse.up()
            page.wait_for_timeout(200)
            after = page.evaluate("annotator.scene.camera.position.toArray()")
            assert not np.allclose(before, after), mode
    finally:
        context.close()


def test_home_links_to_the_annotator(
    context: BrowserContext, server: LiveServer, errors: PageErrors
) -> None:
    page = errors.watch(context.new_page())
    page.goto(server.admin_url)
    link = page.get_by_role("link", name="3D annotator")
    expect(link).to_have_attribute("href", f"/annotator/{DEMO}")
