"""The 3D annotator's core: markers (CRUD, CSV round trip, all-or-nothing import), object
colours and names shared with Dojo, and the object table as CSV."""

# No `from __future__ import annotations`: it would shadow the module `unem.annotations`.
import csv
import io
import json
import shutil
import subprocess

import numpy as np
import pytest

from tests.conftest import ROOT
from unem import annotations
from unem.errors import BadInput, NotFound
from unem.proofread.segments import segment_names
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace


def small_dataset(ws: Workspace, name: str = "cells") -> Dataset:
    labels = np.zeros((4, 16, 16), np.uint32)
    labels[:, 2:8, 2:8], labels[:, 9:14, 9:14] = 1, 2
    sources = {
        "image": array_source(np.full(labels.shape, 120, np.uint8)),
        "segmentation": array_source(labels),
    }
    return import_dataset(ws, name, sources, (40.0, 8.0, 8.0))


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    small_dataset(workspace)
    return workspace


DATASET = "cells"
A_MARKER = {
    "position": [12.5, 30.0, 80.0],
    "segment": 1,
    "name": 'synapse, "big" – α',
    "radius": 20.0,
    "colour": "#FF0000",
}


def fields(marker: annotations.Marker) -> tuple[object, ...]:
    return (marker.segment, marker.name, marker.position, marker.radius, marker.colour)


# ---- markers ----


def test_markers_are_added_listed_changed_and_deleted(ws: Workspace) -> None:
    db = ws.db
    first = annotations.add_marker(db, DATASET, "ann", A_MARKER)
    second = annotations.add_marker(db, DATASET, "bob", {"position": [1, 2, 3]})
    assert fields(first) == (1, A_MARKER["name"], (12.5, 30.0, 80.0), 20.0, "#ff0000")
    assert (first.user, second.user) == ("ann", "bob")
    assert fields(second) == (
        0,
        "",
        (1.0, 2.0, 3.0),
        annotations.DEFAULT_RADIUS,
        annotations.DEFAULT_COLOUR,
    )
    assert [m.id for m in annotations.list_markers(db, DATASET)] == [first.id, second.id]

    changed = annotations.update_marker(
        db, DATASET, first.id, {"name": " soma ", "radius": 5, "position": [0, 0, 40]}
    )
    assert fields(changed) == (1, "soma", (0.0, 0.0, 40.0), 5.0, "#ff0000")
    assert annotations.get_marker(db, DATASET, first.id) == changed

    annotations.delete_marker(db, DATASET, first.id)
    assert annotations.list_markers(db, DATASET) == [second]
    with pytest.raises(NotFound):
        annotations.delete_marker(db, DATASET, first.id)
    assert second.to_json()["position"] == [1.0, 2.0, 3.0]


def test_markers_belong_to_their_dataset(ws: Workspace) -> None:
    small_dataset(ws, "other")
    mine = annotations.add_marker(ws.db, DATASET, "ann", A_MARKER)
    assert annotations.list_markers(ws.db, "other") == []
    with pytest.raises(NotFound):
        annotations.update_marker(ws.db, "other", mine.id, {"name": "stolen"})
    with pytest.raises(NotFound):
        annotations.add_marker(ws.db, "no-such-dataset", "ann", A_MARKER)
    assert annotations.get_marker(ws.db, DATASET, mine.id).name == A_MARKER["name"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"position": [1, 2]}, "position"),
        ({"position": [1, "x", 3]}, r"y \(nm\) must be a number"),
        ({"position": [1, 2, float("nan")]}, "finite"),
        ({"position": [1, 2, 3], "radius": 0}, "radius"),
        ({"position": [1, 2, 3], "radius": -4}, "radius"),
        ({"position": [1, 2, 3], "colour": "red"}, "#rrggbb"),
        ({"position": [1, 2, 3], "segment": -1}, "segment id"),
        ({"position": [1, 2, 3], "segment": 1.5}, "segment id"),
        ({"position": [1, 2, 3], "name": "n" * 201}, "200"),
        ({"position": [1, 2, 3], "owner": "me"}, "no field owner"),
        ({"name": "nowhere"}, "needs a position"),
    ],
)
def test_bad_markers_are_refused_and_nothing_is_stored(
    ws: Workspace, values: dict[str, object], message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        annotations.add_marker(ws.db, DATASET, "ann", values)
    assert annotations.list_markers(ws.db, DATASET) == []


def test_a_bad_update_changes_nothing(ws: Workspace) -> None:
    marker = annotations.add_marker(ws.db, DATASET, "ann", A_MARKER)
    with pytest.raises(BadInput):
        annotations.update_marker(ws.db, DATASET, marker.id, {"name": "ok", "colour": "#12"})
    assert annotations.get_marker(ws.db, DATASET, marker.id) == marker


# ---- markers as CSV ----


def test_markers_csv_round_trip(ws: Workspace) -> None:
    small_dataset(ws, "copy")
    annotations.add_marker(ws.db, DATASET, "ann", A_MARKER)
    annotations.add_marker(
        ws.db, DATASET, "ann", {"position": [0.125, 1e6, 3.5], "name": "line\nbreak", "radius": 0.5}
    )
    original = annotations.list_markers(ws.db, DATASET)
    text = annotations.markers_csv(original)
    header = next(csv.reader(io.StringIO(text)))
    assert header == list(annotations.MARKER_COLUMNS)

    imported = annotations.import_markers_csv(ws.db, "copy", "bob", text)
    assert [fields(m) for m in imported] == [fields(m) for m in original]
    assert {m.user for m in imported} == {"bob"}  # who imported them
    # and again through the export of the copy: nothing drifts
    again = annotations.markers_csv(imported)
    assert again.splitlines()[1].split(",")[1:8] == text.splitlines()[1].split(",")[1:8]


def test_import_adds_or_replaces(ws: Workspace) -> None:
    annotations.add_marker(ws.db, DATASET, "ann", A_MARKER)
    text = "x_nm,y_nm,z_nm,name\n1,2,3,new one\n"
    added = annotations.import_markers_csv(ws.db, DATASET, "ann", text)
    assert [m.name for m in added] == [A_MARKER["name"], "new one"]
    replaced = annotations.import_markers_csv(ws.db, DATASET, "ann", text, replace=True)
    assert [m.name for m in replaced] == ["new one"]
    assert (
        annotations.import_markers_csv(ws.db, DATASET, "ann", "x_nm,y_nm,z_nm\n", replace=True)
        == []
    )


def test_import_reads_a_spreadsheet_csv_with_a_bom_and_few_columns(ws: Workspace) -> None:
    text = (
        "\ufeffz_nm,y_nm,x_nm,radius_nm,colour,segment\r\n40,8,16,,,\r\n80,16,32,12,#00ff00,2\r\n"
    )
    markers = annotations.import_markers_csv(ws.db, DATASET, "ann", text)
    assert [fields(m) for m in markers] == [
        (0, "", (16.0, 8.0, 40.0), annotations.DEFAULT_RADIUS, annotations.DEFAULT_COLOUR),
        (2, "", (32.0, 16.0, 80.0), 12.0, "#00ff00"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "needs the columns x_nm, y_nm, z_nm"),
        ("name,x,y,z\na,1,2,3\n", "missing: x_nm, y_nm, z_nm"),
        ("x_nm,y_nm,z_nm\n1,2,3\n4,five,6\n", "line 3: y \\(nm\\) must be a number"),
        ("x_nm,y_nm,z_nm,colour\n1,2,3,#00ff00\n1,2,3,green\n", "line 3: A colour"),
        ("x_nm,y_nm,z_nm,radius_nm\n1,2,3,-1\n", "line 2: The radius"),
        ("x_nm,y_nm,z_nm\n1,2\n", "line 2: z \\(nm\\) must be a number"),
        ("x_nm,y_nm,z_nm,segment\n1,2,3,seven\n", "line 2: The object must be a segment id"),
    ],
)
def test_a_bad_csv_is_refused_with_its_line_and_nothing_changes(
    ws: Workspace, text: str, message: str
) -> None:
    before = [annotations.add_marker(ws.db, DATASET, "ann", A_MARKER)]
    for replace in (False, True):
        with pytest.raises(BadInput, match=message) as refused:
            annotations.import_markers_csv(ws.db, DATASET, "ann", text, replace=replace)
        assert "nothing was imported" in refused.value.message
        assert annotations.list_markers(ws.db, DATASET) == before


def test_every_bad_line_is_named(ws: Workspace) -> None:
    text = "x_nm,y_nm,z_nm\n" + "".join(f"{i},x,1\n" for i in range(12))
    with pytest.raises(BadInput) as refused:
        annotations.import_markers_csv(ws.db, DATASET, "ann", text)
    assert "12 bad line(s)" in refused.value.message
    assert len(refused.value.detail) == 12  # type: ignore[arg-type]
    assert refused.value.message.count("line ") == 10  # the message names the first ten


# ---- names and colours ----


def test_object_names_are_dojos_segment_names(ws: Workspace) -> None:
    assert annotations.rename_object(ws.db, DATASET, 2, "  dendrite ") == "dendrite"
    assert segment_names(ws.db, DATASET) == {2: "dendrite"}
    with pytest.raises(BadInput):
        annotations.rename_object(ws.db, DATASET, 0, "background")
    with pytest.raises(NotFound):
        annotations.rename_object(ws.db, "no-such-dataset", 2, "x")


def test_colours_are_stored_per_segment_beside_names(ws: Workspace) -> None:
    db = ws.db
    annotations.rename_object(db, DATASET, 1, "axon")
    assert annotations.set_segment_colour(db, DATASET, 1, "#00AA11") == "#00aa11"
    assert annotations.set_segment_colour(db, DATASET, 2, "#123456") == "#123456"
    annotations.rename_object(db, DATASET, 1, "axon 2")  # a rename keeps the colour
    assert annotations.segment_colours(db, DATASET) == {1: "#00aa11", 2: "#123456"}
    assert segment_names(db, DATASET) == {1: "axon 2"}  # a colour keeps the name
    assert annotations.set_segment_colour(db, DATASET, 2, None) == annotations.default_colour(2)
    assert annotations.segment_colours(db, DATASET) == {1: "#00aa11"}
    for bad in ("#12345", "blue", "#gggggg"):
        with pytest.raises(BadInput):
            annotations.set_segment_colour(db, DATASET, 1, bad)
    with pytest.raises(BadInput):
        annotations.set_segment_colour(db, DATASET, 0, "#ffffff")
    assert annotations.segment_colours(db, DATASET) == {1: "#00aa11"}
    table = annotations.with_colours([{"id": 1}, {"id": 3}], {1: "#00aa11"})
    assert table == [
        {"id": 1, "colour": "#00aa11"},
        {"id": 3, "colour": annotations.default_colour(3)},
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_default_colours_are_dojos(tmp_path) -> None:  # type: ignore[no-untyped-def]
    segments = [1, 2, 3, 17, 255, 1000, 65537, 123456789, 2**32 - 1]
    script = tmp_path / "colours.mjs"
    labels = (ROOT / "dojo" / "static" / "labels.js").as_uri()
    script.write_text(
        f'import {{ segmentColour }} from "{labels}";\n'
        f"console.log(JSON.stringify({segments}.map((s) => '#' + segmentColour(s)"
        ".map((c) => c.toString(16).padStart(2, '0')).join(''))));\n"
    )
    output = subprocess.run(["node", str(script)], capture_output=True, text=True, check=True)
    assert json.loads(output.stdout) == [annotations.default_colour(s) for s in segments]


def test_the_object_table_as_csv() -> None:
    objects = [
        {
            "id": 7,
            "name": "axon, left",
            "colour": "#010203",
            "voxels": 10,
            "volume": 2560.0,
            "surface_area": None,
            "centroid": [1.5, 2.5, 40.0],
        },
        {
            "id": 9,
            "name": None,
            "colour": "#ffffff",
            "voxels": 1,
            "volume": 256.0,
            "surface_area": 96.0,
            "centroid": [0.0, 0.0, 0.0],
        },
    ]
    rows = list(csv.reader(io.StringIO(annotations.objects_csv(objects))))
    assert rows == [
        list(annotations.OBJECT_COLUMNS),
        ["7", "axon, left", "#010203", "10", "2560.0", "", "1.5", "2.5", "40.0"],
        ["9", "", "#ffffff", "1", "256.0", "96.0", "0.0", "0.0", "0.0"],
    ]
