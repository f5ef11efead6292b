"""The 3D annotator's HTTP side with Flask's test client: page, meshes (binary, ETag), object
table (JSON, CSV), markers (CSV export/import), mesh exports re-read by trimesh, and roles."""

# No `from __future__ import annotations`: it would shadow the module `unem.annotations`.
import csv
import io
import struct

import numpy as np
import pytest
import trimesh
from flask import Flask
from flask.testing import FlaskClient

from unem import annotations, meshes
from unem.proofread import edits, requests
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source

SHAPE = (6, 20, 24)
VOXEL = (40.0, 8.0, 8.0)  # z, y, x nm: anisotropic, like serial sections
EXTENT = np.array([SHAPE[2] * VOXEL[2], SHAPE[1] * VOXEL[1], SHAPE[0] * VOXEL[0]])  # x, y, z
VOXELS = {1: 4 * 8 * 8, 2: 4 * 7 * 8, 3: 2 * 4 * 5}


def cells() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint32)
    labels[1:5, 2:10, 2:10] = 1
    labels[1:5, 11:18, 12:20] = 2
    labels[2:4, 2:6, 13:18] = 3
    return labels


def make_cells(app: Flask) -> str:
    """Import three box-shaped cells in the app's workspace, indexed for proofreading."""
    ws = app.extensions["unem"].workspace
    labels = cells()
    sources = {
        "image": array_source(np.full(SHAPE, 150, np.uint8)),
        "segmentation": array_source(labels),
    }
    made = import_dataset(ws, "cells", sources, VOXEL)
    edits.proofreader(ws, made.id).ensure_ready()
    return made.id


@pytest.fixture
def dataset(app: Flask) -> str:
    return make_cells(app)


def merge(app: Flask, dataset: str, segments: list[int]) -> edits.Edit:
    """Commit a merge with the core, as Dojo would."""
    payload, tool = requests.parse_edit("merge", {"segments": segments})
    proofreader = edits.proofreader(app.extensions["unem"].workspace, dataset)
    return proofreader.commit("admin", "merge", payload, tool)


def parse_mesh(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    magic, n_vertices, n_faces = struct.unpack_from("<4sII", body)
    assert magic == b"UNEM"
    vertices = np.frombuffer(body, "<f4", n_vertices * 3, 12).reshape(-1, 3)
    faces = np.frombuffer(body, "<u4", n_faces * 3, 12 + 12 * n_vertices).reshape(-1, 3)
    assert len(body) == 12 + 12 * n_vertices + 12 * n_faces
    return vertices, faces


# ---- the page and its scripts ----


def test_the_page_loads_three_from_node_modules(
    app: Flask, viewer_client: FlaskClient, dataset: str
) -> None:
    page = viewer_client.get(f"/annotator/{dataset}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '"three": "/vendor/three.module.js"' in html and 'data-role="viewer"' in html
    for name in ("three.module.js", "three.core.js", "OrbitControls.js", "TrackballControls.js"):
        script = viewer_client.get(f"/vendor/{name}")
        assert script.status_code == 200 and b"export" in script.data, name
    assert viewer_client.get("/annotator/static/main.js").status_code == 200
    assert viewer_client.get("/annotator/no-such-dataset").status_code == 404


def test_strangers_are_sent_to_log_in(client: FlaskClient, dataset: str) -> None:
    assert client.get(f"/annotator/{dataset}").status_code == 302
    for path in (
        "state",
        "objects",
        "objects.csv",
        "meshes/1",
        "markers",
        "markers.csv",
        "export?format=obj&segments=1",
    ):
        assert client.get(f"/annotator/api/{dataset}/{path}").status_code == 401, path


def test_state(viewer_client: FlaskClient, dataset: str) -> None:
    state = viewer_client.get(f"/annotator/api/{dataset}/state").get_json()
    assert state["dataset"]["voxel_size"] == list(VOXEL)
    assert state["version"] == 0 and state["markers"] == [] and state["tile_size"] > 0


# ---- meshes ----


def test_a_mesh_arrives_as_binary_in_nm(
    app: Flask, viewer_client: FlaskClient, dataset: str
) -> None:
    ws = app.extensions["unem"].workspace
    for segment in (1, 2, 3):
        response = viewer_client.get(f"/annotator/api/{dataset}/meshes/{segment}")
        assert response.status_code == 200
        assert response.mimetype == "application/octet-stream"
        vertices, faces = parse_mesh(response.data)
        expected = meshes.get_mesh(ws, dataset, segment)
        assert vertices.shape == expected.vertices.shape and faces.shape == expected.faces.shape
        np.testing.assert_array_equal(vertices, expected.vertices)
        assert len(faces) > 0 and faces.max() < len(vertices)
        assert (vertices >= -1e-3).all() and (vertices <= EXTENT + 1e-3).all()
    one = parse_mesh(viewer_client.get(f"/annotator/api/{dataset}/meshes/1").data)[0]
    # segment 1 spans x, y 2..10 px (16..80 nm) and z 1..5 sections (40..200 nm), about
    lo, hi = one.min(axis=0), one.max(axis=0)
    assert np.allclose(lo, [16, 16, 40], atol=VOXEL[0]) and np.allclose(
        hi, [80, 80, 200], atol=VOXEL[0]
    )
    assert hi[2] - lo[2] > 100  # the z extent is in nm (4 sections × 40 nm), not in sections


def test_mesh_levels_of_detail(viewer_client: FlaskClient, dataset: str) -> None:
    fine = parse_mesh(viewer_client.get(f"/annotator/api/{dataset}/meshes/1?lod=0").data)
    coarse = viewer_client.get(f"/annotator/api/{dataset}/meshes/1?lod=2")
    assert coarse.status_code == 200
    assert len(parse_mesh(coarse.data)[1]) <= len(fine[1])
    assert viewer_client.get(f"/annotator/api/{dataset}/meshes/1?lod=x").status_code == 400


def test_meshes_are_revalidated_by_etag_and_change_with_an_edit(
    app: Flask, viewer_client: FlaskClient, dataset: str
) -> None:
    url = f"/annotator/api/{dataset}/meshes/1"
    first = viewer_client.get(url)
    etag = first.headers["ETag"]
    assert "no-cache" in first.headers["Cache-Control"]
    again = viewer_client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    other = viewer_client.get(f"/annotator/api/{dataset}/meshes/2").headers["ETag"]
    merge(app, dataset, [1, 3])
    after = viewer_client.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["ETag"] != etag
    before_faces = len(parse_mesh(first.data)[1])
    assert len(parse_mesh(after.data)[1]) > before_faces  # segment 3's surface joined it
    untouched = viewer_client.get(
        f"/annotator/api/{dataset}/meshes/2", headers={"If-None-Match": other}
    )
    assert untouched.status_code == 304
    gone = viewer_client.get(f"/annotator/api/{dataset}/meshes/3")
    assert gone.status_code == 404 and "error" in gone.get_json()


def test_unknown_meshes_are_404(viewer_client: FlaskClient, dataset: str) -> None:
    for url in (f"/annotator/api/{dataset}/meshes/99", "/annotator/api/nope/meshes/1"):
        response = viewer_client.get(url)
        assert response.status_code == 404 and response.get_json()["error"], url


# ---- the object table ----


def test_the_object_table(app: Flask, viewer_client: FlaskClient, dataset: str) -> None:
    db = app.extensions["unem"].workspace.db
    annotations.rename_object(db, dataset, 2, "dendrite")
    annotations.set_segment_colour(db, dataset, 2, "#00ff00")
    objects = {
        o["id"]: o
        for o in viewer_client.get(f"/annotator/api/{dataset}/objects").get_json()["objects"]
    }
    assert set(objects) == {1, 2, 3}
    voxel_volume = VOXEL[0] * VOXEL[1] * VOXEL[2]
    for segment, count in VOXELS.items():
        assert objects[segment]["voxels"] == count
        assert objects[segment]["volume"] == pytest.approx(count * voxel_volume)
    assert objects[2]["name"] == "dendrite" and objects[2]["colour"] == "#00ff00"
    assert objects[1]["colour"] == annotations.default_colour(1)
    # segment 1: x, y 2..9 px, z 1..4 sections, centroid at the voxel centres in nm
    assert objects[1]["centroid"] == pytest.approx([6 * 8, 6 * 8, 3 * 40])

    response = viewer_client.get(f"/annotator/api/{dataset}/objects.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
    assert set(rows) == {"1", "2", "3"}
    assert rows["2"]["name"] == "dendrite" and rows["2"]["colour"] == "#00ff00"
    assert float(rows["1"]["volume_nm3"]) == pytest.approx(VOXELS[1] * voxel_volume)
    assert float(rows["1"]["centroid_z_nm"]) == pytest.approx(120)


# ---- markers ----

MARKERS_CSV = (
    "name,segment,x_nm,y_nm,z_nm,radius_nm,colour\n"
    "soma,1,48,48,120,16,#ff00ff\n"
    "tip,2,130,110,80,8,#00ffff\n"
)


def test_markers_csv_import_and_export_round_trip(
    proofreader_client: FlaskClient, dataset: str
) -> None:
    url = f"/annotator/api/{dataset}/markers.csv"
    answer = proofreader_client.post(url, json={"csv": MARKERS_CSV})
    assert answer.status_code == 200, answer.get_json()
    markers = answer.get_json()["markers"]
    assert [(m["name"], m["segment"], m["position"], m["user"]) for m in markers] == [
        ("soma", 1, [48.0, 48.0, 120.0], "paul"),
        ("tip", 2, [130.0, 110.0, 80.0], "paul"),
    ]
    listed = proofreader_client.get(f"/annotator/api/{dataset}/markers").get_json()["markers"]
    assert listed == markers
    exported = proofreader_client.get(url)
    assert exported.mimetype == "text/csv"
    again = proofreader_client.post(
        url, json={"csv": exported.get_data(as_text=True), "replace": True}
    )
    keys = ("name", "segment", "position", "radius", "colour")
    assert [[m[k] for k in keys] for m in again.get_json()["markers"]] == [
        [m[k] for k in keys] for m in markers
    ]


def test_a_bad_marker_csv_changes_nothing(proofreader_client: FlaskClient, dataset: str) -> None:
    url = f"/annotator/api/{dataset}/markers.csv"
    proofreader_client.post(url, json={"csv": MARKERS_CSV})
    before = proofreader_client.get(url).data
    bad = MARKERS_CSV + "late,1,1,2,three,4,#000000\n"
    response = proofreader_client.post(url, json={"csv": bad, "replace": True})
    assert response.status_code == 400
    assert (
        "line 4" in response.get_json()["error"]
        and "nothing was imported" in response.get_json()["error"]
    )
    assert proofreader_client.post(url, json={"replace": True}).status_code == 400
    assert (
        proofreader_client.post(url, data=MARKERS_CSV, content_type="text/csv").status_code == 415
    )
    assert proofreader_client.get(url).data == before


def test_viewers_may_not_import_markers(viewer_client: FlaskClient, dataset: str) -> None:
    response = viewer_client.post(
        f"/annotator/api/{dataset}/markers.csv", json={"csv": MARKERS_CSV}
    )
    assert response.status_code == 403 and "role" in response.get_json()["error"]
    assert viewer_client.get(f"/annotator/api/{dataset}/markers").get_json()["markers"] == []


# ---- mesh exports ----


@pytest.mark.parametrize("fmt", ["obj", "stl", "ply", "glb"])
def test_mesh_exports_reload_with_trimesh_in_nm(
    viewer_client: FlaskClient, dataset: str, fmt: str
) -> None:
    one = viewer_client.get(f"/annotator/api/{dataset}/export?format={fmt}&segments=1")
    assert one.status_code == 200, one.get_data(as_text=True)[:300]
    assert "attachment" in one.headers["Content-Disposition"]
    loaded = trimesh.load(io.BytesIO(one.data), file_type=fmt, force="mesh")
    assert len(loaded.faces) > 0
    lo, hi = loaded.bounds
    assert np.allclose(lo, [16, 16, 40], atol=VOXEL[0]) and np.allclose(
        hi, [80, 80, 200], atol=VOXEL[0]
    )
    assert loaded.is_watertight
    assert abs(loaded.volume) == pytest.approx(VOXELS[1] * VOXEL[0] * VOXEL[1] * VOXEL[2], rel=0.35)

    both = viewer_client.post(
        f"/annotator/api/{dataset}/export", json={"format": fmt, "segments": [1, 2]}
    )
    assert both.status_code == 200
    scene = trimesh.load(io.BytesIO(both.data), file_type=fmt, force="mesh")
    assert len(scene.faces) > len(loaded.faces)
    assert scene.bounds[1][0] > 150  # segment 2 reaches x = 20 px = 160 nm


def test_bad_exports_are_refused(viewer_client: FlaskClient, dataset: str) -> None:
    url = f"/annotator/api/{dataset}/export"
    for query, message in (
        ("format=fbx&segments=1", "one of obj"),
        ("format=obj", "Export 1 to"),
        ("format=obj&segments=1,x", "whole numbers"),
    ):
        response = viewer_client.get(f"{url}?{query}")
        assert response.status_code == 400 and message in response.get_json()["error"], query
    for missing in ("99", "0", "1,99"):
        assert viewer_client.get(f"{url}?format=obj&segments={missing}").status_code == 404
    tmp = viewer_client.application.extensions["unem"].workspace.root / "tmp"
    assert not list(tmp.iterdir())  # no export folder left behind
