"""Dojo in Chromium against a real server: two users editing the demo volume live.

Each test drives the page with the mouse and keyboard, then checks the result twice: on the
server (history, raw label tiles) and in the page (the client's state and the canvas pixels).
Every page records console errors and uncaught exceptions; each test ends by asserting there
were none. Set UNEM_SCREENSHOTS=1 to refresh docs/screenshots/dojo.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.test_home import VIEWPORT, PageErrors, screenshot
from tests.conftest import ISBI_IMAGES, LiveServer, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

DEMO = "demo-em-volume"
PROOFREADER = ("bob", "bob-secret-42")


def wait_task(session: requests.Session, base: str, task_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        tasks = session.get(f"{base}/api/tasks", timeout=10).json()["tasks"]
        task = next((t for t in tasks if t["id"] == task_id), None)
        if task is not None and task["state"] == "done":
            return task
        assert task is None or task["state"] != "failed", task
        time.sleep(0.3)
    raise TimeoutError(f"task {task_id} did not finish")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module (like `live_server`), with the demo volume and a proofreader."""
    live = start_server(tmp_path_factory.mktemp("dojo") / "ws")
    try:
        admin = live.admin_session()
        task = admin.post(f"{live.base}/api/datasets/demo", json={}, timeout=10).json()
        wait_task(admin, live.base, task["id"])
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


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    return context


@pytest.fixture
def contexts(browser: Browser) -> Iterator[tuple[BrowserContext, BrowserContext]]:
    first, second = new_context(browser), new_context(browser)
    yield first, second
    first.close()
    second.close()


def wait_ready(page: Page) -> None:
    page.wait_for_function("window.dojo && dojo.sync.joinedOnce && dojo.settled()")
    expect(page.locator("#connection")).to_have_text("● live")


def open_as_admin(
    context: BrowserContext, server: LiveServer, errors: PageErrors, dataset: str = DEMO
) -> Page:
    page = errors.watch(context.new_page())
    page.goto(server.admin_url)
    page.goto(f"{server.base}/dojo/{dataset}")
    wait_ready(page)
    return page


def open_as_proofreader(context: BrowserContext, server: LiveServer, errors: PageErrors) -> Page:
    page = errors.watch(context.new_page())
    page.goto(f"{server.base}/dojo/{DEMO}")  # the login page, which then brings us back
    page.get_by_label("User name").fill(PROOFREADER[0])
    page.get_by_label("Password").fill(PROOFREADER[1])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{server.base}/dojo/{DEMO}")
    wait_ready(page)
    return page


def last_edit(server: LiveServer, dataset: str = DEMO) -> dict[str, Any]:
    edits = (
        server.admin_session()
        .get(f"{server.base}/dojo/api/{dataset}/history", timeout=10)
        .json()["edits"]
    )
    return edits[-1] if edits else {}


def server_label(server: LiveServer, x: int, y: int, z: int, dataset: str = DEMO) -> int:
    """The fragment id the server stores at a voxel, read from a raw level-0 tile."""
    session = server.admin_session()
    url = f"{server.base}/dojo/api/{dataset}/tiles/segmentation/0/{z}/{y // 512}/{x // 512}"
    response = session.get(url, timeout=10)
    response.raise_for_status()
    shape = session.get(f"{server.base}/api/datasets/{dataset}", timeout=10).json()["shape"]
    width = min(512, shape[2] - (x // 512) * 512)
    tile = np.frombuffer(response.content, "<u4").reshape(-1, width)
    return int(tile[y % 512, x % 512])


def segment_under(page: Page, point: dict[str, float]) -> int:
    return int(page.evaluate("p => dojo.segmentAtPage(p.x, p.y)", point))


def voxel_under(page: Page, point: dict[str, float]) -> tuple[int, int, int]:
    return tuple(
        page.evaluate(
            """p => { const r = dojo.renderer.canvas.getBoundingClientRect();
                  const v = dojo.camera.toVoxel(p.x - r.left, p.y - r.top);
                  return [Math.floor(v.x), Math.floor(v.y), dojo.camera.z]; }""",
            point,
        )
    )


def point_inside(page: Page, segment: int) -> dict[str, float]:
    point = page.evaluate("s => dojo.pointInside(s)", segment)
    assert point is not None, f"segment {segment} is not in view"
    return point


def visible_segments(page: Page, count: int, exclude: set[int] = frozenset()) -> list[int]:
    """Large segments well in view on this slice (none locked, none in `exclude`)."""
    found = page.evaluate(
        """([count, exclude]) => {
            const ids = new Map();
            for (const s of dojo.renderer.visibleSpecs(dojo.labelLayer)) {
                const tile = dojo.tiles.peek(`${s.layer}/${s.level}/${s.z}/${s.row}/${s.col}`);
                if (!tile) continue;
                for (const f of tile.label.ids) {
                    const segment = dojo.segmentOf(f);
                    ids.set(segment, (ids.get(segment) || 0) + 1);
                }
            }
            const usable = ([s]) => s && !exclude.includes(s) && !dojo.locks.has(s)
                && dojo.pointInside(s, [12]) !== null;
            return [...ids.entries()].filter(usable).sort((a, b) => b[1] - a[1])
                .slice(0, count).map(([s]) => s);
        }""",
        [count, sorted(exclude)],
    )
    assert len(found) == count, found
    return list(found)


def colour(page: Page, point: dict[str, float]) -> list[int]:
    return list(page.evaluate("p => dojo.colourAtPage(p.x, p.y)", point))


def test_merge_by_one_user_recolours_the_other_without_requests(
    contexts: tuple[BrowserContext, BrowserContext], server: LiveServer, errors: PageErrors
) -> None:
    alice_context, bob_context = contexts
    admin = open_as_admin(alice_context, server, errors)
    bob = open_as_proofreader(bob_context, server, errors)
    expect(admin.locator("#presence")).to_contain_text("bob")
    expect(bob.locator("#presence")).to_contain_text("admin")

    keep, absorbed = visible_segments(admin, 2)
    at_keep, at_absorbed = point_inside(admin, keep), point_inside(admin, absorbed)
    before = colour(bob, at_absorbed)
    tile_requests: list[str] = []
    bob.on("request", lambda r: "/tiles/" in r.url and tile_requests.append(r.url))

    admin.get_by_role("button", name="Merge").click()
    expect(admin.get_by_role("button", name="Merge")).to_have_attribute("aria-pressed", "true")
    admin.mouse.click(at_keep["x"], at_keep["y"])
    admin.mouse.click(at_absorbed["x"], at_absorbed["y"])

    bob.wait_for_function(f"dojo.segmentAtPage({at_absorbed['x']}, {at_absorbed['y']}) === {keep}")
    edit = last_edit(server)
    assert (edit["kind"], edit["user"], edit["payload"]["segments"]) == (
        "merge",
        "admin",
        [keep, absorbed],
    )
    bob.wait_for_function(
        "([p, c]) => dojo.colourAtPage(p.x, p.y).some((v, i) => v !== c[i])",
        arg=[at_absorbed, before],
    )
    # Both users see the same picture: the absorbed segment now has the kept one's colour
    # (once the admin's selection highlight and cursor, which bob sees, are out of the way).
    admin.keyboard.press("Escape")
    admin.mouse.move(5, 300)
    admin.wait_for_function("dojo.selected === 0")
    bob.wait_for_function(
        "([p, c]) => dojo.colourAtPage(p.x, p.y).every((v, i) => v === c[i])",
        arg=[at_absorbed, colour(admin, at_absorbed)],
    )
    assert colour(bob, at_absorbed) != before
    assert tile_requests == []  # a merge repaints from the mapping alone

    # Presence: bob's cursor shows up in the admin's view; a mark reaches bob.
    bob.mouse.move(at_keep["x"], at_keep["y"])
    admin.wait_for_function("dojo.presence.some(m => m.user === 'bob' && m.cursor)")
    admin.mouse.move(at_keep["x"], at_keep["y"])
    admin.keyboard.press("m")
    admin.locator("#ask-input").fill("check this membrane")
    admin.locator("#ask-input").press("Enter")
    bob.locator("#panel-marks summary").click()
    expect(bob.locator("#marks li")).to_contain_text(["check this membrane"])
    bob.mouse.move(at_absorbed["x"] + 30, at_absorbed["y"] + 20)
    admin.wait_for_timeout(300)
    screenshot(admin, "dojo.png")


def test_paint_split_fill_undo_redo_and_revert(
    contexts: tuple[BrowserContext, BrowserContext], server: LiveServer, errors: PageErrors
) -> None:
    page = open_as_admin(contexts[0], server, errors)
    locked = set(page.evaluate("[...dojo.locks.keys()]"))
    split_target, fill_target, paint_on = visible_segments(page, 3, exclude=locked)

    # Paint a stroke with a new id.
    page.keyboard.press("4")
    page.get_by_role("button", name="New").click()
    page.wait_for_function("dojo.paintId > 0")
    paint_id = page.evaluate("dojo.paintId")
    start = point_inside(page, paint_on)
    before = colour(page, start)
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(start["x"] + 12, start["y"] + 6, steps=6)
    page.mouse.up()
    page.wait_for_function(f"dojo.segmentAtPage({start['x']}, {start['y']}) === {paint_id}")
    painted = last_edit(server)
    assert (painted["kind"], painted["payload"]["segment"]) == ("paint", paint_id)
    assert server_label(server, *voxel_under(page, start)) == paint_id
    page.wait_for_function("dojo.settled() && dojo.pendingStrokes.length === 0")
    assert colour(page, start) != before

    # Split a segment with a line drawn across it; preview, then accept with Enter.
    centre = point_inside(page, split_target)
    left, right = dict(centre), dict(centre)
    while segment_under(page, left) == split_target:
        left["x"] -= 4
    while segment_under(page, right) == split_target:
        right["x"] += 4
    top, bottom = dict(centre), dict(centre)
    while segment_under(page, top) == split_target:
        top["y"] -= 4
    while segment_under(page, bottom) == split_target:
        bottom["y"] += 4
    above = {**centre, "y": (top["y"] + centre["y"]) / 2}
    below = {**centre, "y": (bottom["y"] + centre["y"]) / 2}
    page.keyboard.press("2")
    page.mouse.move(left["x"] - 8, centre["y"])
    page.mouse.down()
    page.mouse.move(right["x"] + 8, centre["y"], steps=12)
    page.mouse.up()
    expect(page.locator("#preview-bar")).to_be_visible()
    page.wait_for_function("dojo.preview && dojo.preview.bits.some(b => b)")
    page.keyboard.press("Enter")
    expect(page.locator("#preview-bar")).to_be_hidden()
    page.wait_for_function(
        f"dojo.settled() && dojo.segmentAtPage({above['x']}, {above['y']}) !== "
        f"dojo.segmentAtPage({below['x']}, {below['y']})"
    )
    assert last_edit(server)["kind"] == "split_line"
    halves = {server_label(server, *voxel_under(page, p)) for p in (above, below)}
    assert len(halves) == 2 and split_target in halves

    # Fill a segment's region on this slice with a new id.
    page.keyboard.press("6")
    page.keyboard.press("n")
    page.wait_for_function(f"dojo.paintId > {paint_id}")
    fill_id = page.evaluate("dojo.paintId")
    inside = point_inside(page, fill_target)
    page.mouse.click(inside["x"], inside["y"])
    page.wait_for_function(f"dojo.segmentAtPage({inside['x']}, {inside['y']}) === {fill_id}")
    fill = last_edit(server)
    assert (fill["kind"], fill["payload"]["segment"]) == ("fill", fill_id)
    assert server_label(server, *voxel_under(page, inside)) == fill_id

    # Undo and redo from the keyboard.
    page.keyboard.press("Control+z")
    page.wait_for_function(f"dojo.segmentAtPage({inside['x']}, {inside['y']}) === {fill_target}")
    assert last_edit(server)["kind"] == "undo"
    assert server_label(server, *voxel_under(page, inside)) == fill_target
    page.keyboard.press("Control+Shift+z")
    page.wait_for_function(f"dojo.segmentAtPage({inside['x']}, {inside['y']}) === {fill_id}")
    assert last_edit(server)["kind"] == "redo"
    assert server_label(server, *voxel_under(page, inside)) == fill_id

    # Revert to the state right after the paint: the split and the fill go away.
    page.locator("#panel-history summary").click()
    row = page.locator(f"#history li[data-version='{painted['version']}']")
    row.get_by_role("button", name="Revert to here").click()
    expect(page.locator("#ask-dialog")).to_be_visible()
    page.locator("#ask-ok").click()
    page.wait_for_function(
        f"dojo.settled() && dojo.segmentAtPage({inside['x']}, {inside['y']}) === {fill_target}"
        f" && dojo.segmentAtPage({below['x']}, {below['y']}) === {split_target}"
    )
    revert = last_edit(server)
    assert (revert["kind"], revert["payload"]["to"]) == ("revert", painted["version"])
    assert segment_under(page, start) == paint_id


def test_lock_by_one_user_refuses_the_others_edit(
    contexts: tuple[BrowserContext, BrowserContext], server: LiveServer, errors: PageErrors
) -> None:
    alice_context, bob_context = contexts
    admin = open_as_admin(alice_context, server, errors)
    bob = open_as_proofreader(bob_context, server, errors)
    locked = set(admin.evaluate("[...dojo.locks.keys()]"))
    target, other = visible_segments(admin, 2, exclude=locked)

    at_target = point_inside(admin, target)
    admin.mouse.move(at_target["x"], at_target["y"])
    admin.keyboard.press("l")
    expect(admin.locator(".toast.ok")).to_contain_text(f"Segment {target} is locked")
    bob.wait_for_function(f"dojo.locks.get({target}) === 'admin'")
    version = last_edit(server).get("version")

    # Bob tries to merge the locked segment into another one.
    bob.keyboard.press("1")
    at_other = point_inside(bob, other)
    bob.mouse.click(at_other["x"], at_other["y"])
    bob.mouse.click(at_target["x"], at_target["y"])
    expect(bob.locator(".toast.error")).to_contain_text(f"Segment {target} is locked by admin")
    assert last_edit(server).get("version") == version
    assert bob.evaluate(f"dojo.segmentOf({target})") == target

    # The table shows the lock; the admin unlocks from there and bob's merge goes through.
    row = admin.locator(f"#segments tr[data-segment='{target}']")
    admin.locator("#segment-search").fill(str(target))
    expect(row.get_by_role("button", name=f"Unlock segment {target}")).to_be_visible()
    row.get_by_role("button", name=f"Unlock segment {target}").click()
    bob.wait_for_function(f"!dojo.locks.has({target})")

    # The admin names the segment inline; bob's status bar shows the name on hover.
    row.locator("td.name").dblclick()
    row.get_by_label(f"Name of segment {target}").fill("axon 7")
    row.get_by_label(f"Name of segment {target}").press("Enter")
    bob.wait_for_function(f"dojo.names.get({target}) === 'axon 7'")
    bob.mouse.move(at_target["x"], at_target["y"])
    expect(bob.locator("#status-segment")).to_contain_text(f"segment {target} · “axon 7”")
    # Clicking a row selects the segment and centres the view on it.
    row.locator("td.num").first.click()
    admin.wait_for_function(f"dojo.selected === {target}")
    expect(admin).to_have_url(re.compile(f"sel={target}"))
    bob.mouse.click(at_target["x"], at_target["y"])
    bob.wait_for_function(f"dojo.segmentOf({target}) === {other}")
    assert last_edit(server)["user"] == "bob"


def test_ground_truth_from_scratch_on_an_image_only_stack(
    contexts: tuple[BrowserContext, BrowserContext], server: LiveServer, errors: PageErrors
) -> None:
    admin_session = server.admin_session()
    task = admin_session.post(
        f"{server.base}/api/datasets",
        timeout=10,
        json={
            "name": "ISBI images only",
            "layers": {"image": {"path": str(ISBI_IMAGES)}},
            "voxel_size": [50, 4, 4],
        },
    ).json()
    dataset = wait_task(admin_session, server.base, task["id"])["result"]["id"]
    page = open_as_admin(contexts[0], server, errors, dataset)
    canvas = page.locator("#view").bounding_box()
    assert canvas is not None
    centre = {"x": canvas["x"] + canvas["width"] / 2, "y": canvas["y"] + canvas["height"] / 2}
    assert segment_under(page, centre) == 0

    page.keyboard.press("b")  # paint; the first stroke asks the server for a new id
    page.mouse.move(centre["x"] - 40, centre["y"])
    page.mouse.down()
    page.mouse.move(centre["x"] + 40, centre["y"], steps=10)
    page.mouse.up()
    page.wait_for_function(
        f"dojo.paintId > 0 && dojo.segmentAtPage({centre['x']}, {centre['y']}) === dojo.paintId"
    )
    paint_id = page.evaluate("dojo.paintId")
    assert server_label(server, *voxel_under(page, centre), dataset=dataset) == paint_id

    page.keyboard.press("5")  # erase across the stroke
    page.mouse.move(centre["x"], centre["y"] - 30)
    page.mouse.down()
    page.mouse.move(centre["x"], centre["y"] + 30, steps=6)
    page.mouse.up()
    page.wait_for_function(f"dojo.segmentAtPage({centre['x']}, {centre['y']}) === 0")
    assert last_edit(server, dataset)["kind"] == "erase"
    assert server_label(server, *voxel_under(page, centre), dataset=dataset) == 0
    left = {"x": centre["x"] - 30, "y": centre["y"]}
    assert server_label(server, *voxel_under(page, left), dataset=dataset) == paint_id

    # The view is in the address bar: a copied link opens the same place.
    page.keyboard.press("s")
    page.wait_for_function(
        "new URLSearchParams(location.search).get('z') === String(dojo.camera.z)"
    )
    link = page.url
    again = open_as_admin(contexts[1], server, errors, dataset)
    again.goto(link)
    wait_ready(again)
    assert again.evaluate("[dojo.camera.z, Math.round(dojo.camera.x)]") == page.evaluate(
        "[dojo.camera.z, Math.round(dojo.camera.x)]"
    )


def test_edits_apply_in_version_order_and_a_reconnect_catches_up(
    contexts: tuple[BrowserContext, BrowserContext], server: LiveServer, errors: PageErrors
) -> None:
    alice_context, bob_context = contexts
    admin = open_as_admin(alice_context, server, errors)
    bob = open_as_proofreader(bob_context, server, errors)
    locked = set(admin.evaluate("[...dojo.locks.keys()]"))
    keep, first, second = visible_segments(admin, 3, exclude=locked)
    points = [point_inside(bob, s) for s in (keep, first, second)]
    admin.keyboard.press("s")
    admin.keyboard.press("c")
    view = admin.evaluate("[dojo.camera.z, dojo.camera.x, dojo.camera.y, dojo.camera.zoom]")

    # The admin goes offline; bob merges twice; the admin comes back and catches up.
    admin.evaluate("dojo.sync.socket.disconnect()")
    expect(admin.locator("#connection")).to_contain_text("offline")
    bob.keyboard.press("1")
    for point in points:
        bob.mouse.click(point["x"], point["y"])
    bob.wait_for_function(f"dojo.segmentOf({second}) === {keep}")
    assert admin.evaluate(f"dojo.segmentOf({first})") == first
    admin.evaluate("dojo.sync.socket.connect()")
    admin.wait_for_function(
        f"dojo.segmentOf({first}) === {keep} && dojo.segmentOf({second}) === {keep}"
    )
    assert admin.evaluate("dojo.sync.version") == last_edit(server)["version"]
    assert admin.evaluate("[dojo.camera.z, dojo.camera.x, dojo.camera.y, dojo.camera.zoom]") == view

    # Edits that arrive early wait for the ones before them.
    result = admin.evaluate(
        """() => {
            const v = dojo.sync.version;
            const edit = (version, segment) => ({version, user: "x", time: "", kind: "merge",
                payload: {segments: [segment, 999999]}, mapping: {999999: segment}, box: null,
                segments: [segment]});
            dojo.sync.receive(edit(v + 2, 7));
            const early = [dojo.sync.version - v, dojo.segmentOf(999999)];
            dojo.sync.receive(edit(v + 1, 5));
            return [...early, dojo.sync.version - v, dojo.segmentOf(999999)];
        }"""
    )
    assert result == [0, 999999, 2, 7]
