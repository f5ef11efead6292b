"""What the 3D annotator adds to a dataset: marker points, object colours, and CSV tables.

Object names are the segments' names (`unem.proofread.segments`), the same Dojo shows and
edits. Every position here is in nm, in x, y, z order (the order of the meshes' vertices).
Markers and colours are rows of the workspace database, shared by everyone viewing the
dataset.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from unem.errors import BadInput, NotFound
from unem.progress import Progress, no_progress
from unem.proofread import edits
from unem.proofread.edits import write_transaction
from unem.proofread.segments import rename_segment
from unem.volumes.datasets import get_dataset
from unem.volumes.store import TILE
from unem.workspace import Workspace

MAX_NAME = 200
MAX_RADIUS = 1e7  # nm: a centimetre, far beyond any EM volume
MAX_IMPORT_ROWS = 100_000
DEFAULT_RADIUS = 50.0  # nm
DEFAULT_COLOUR = "#ffd400"
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
MARKER_COLUMNS = (
    "id",
    "name",
    "segment",
    "x_nm",
    "y_nm",
    "z_nm",
    "radius_nm",
    "colour",
    "user",
    "created_at",
)
OBJECT_COLUMNS = (
    "id",
    "name",
    "colour",
    "voxels",
    "volume_nm3",
    "surface_area_nm2",
    "centroid_x_nm",
    "centroid_y_nm",
    "centroid_z_nm",
)


@dataclass(frozen=True)
class Marker:
    """A named point on (or near) an object's surface."""

    id: int
    segment: int
    name: str
    position: tuple[float, float, float]  # nm, x y z
    radius: float  # nm
    colour: str
    user: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "segment": self.segment,
            "name": self.name,
            "position": list(self.position),
            "radius": self.radius,
            "colour": self.colour,
            "user": self.user,
            "created_at": self.created_at,
        }

    def csv_row(self) -> list[Any]:
        return [
            self.id,
            self.name,
            self.segment,
            *self.position,
            self.radius,
            self.colour,
            self.user,
            self.created_at,
        ]


# ---- validation: each checks one value and names it in its message ----


def clean_name(value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput("A name is text.")
    if len(value.strip()) > MAX_NAME:
        raise BadInput(f"A name has at most {MAX_NAME} characters.")
    return value.strip()


def clean_colour(value: Any) -> str:
    if not isinstance(value, str) or not COLOUR.match(value.strip()):
        raise BadInput(f"A colour is written #rrggbb, not {value!r}.")
    return value.strip().lower()


def clean_number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise BadInput(f"{what} must be a number, not {value!r}.") from error
    if not math.isfinite(number):
        raise BadInput(f"{what} must be a finite number.")
    return number


def clean_position(value: Any) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise BadInput("A position is [x, y, z] in nm.")
    x, y, z = (clean_number(v, f"{axis} (nm)") for v, axis in zip(value, "xyz", strict=True))
    return x, y, z


def clean_radius(value: Any) -> float:
    radius = clean_number(value, "The radius (nm)")
    if not 0 < radius <= MAX_RADIUS:
        raise BadInput(f"The radius is more than 0 and at most {MAX_RADIUS:g} nm.")
    return radius


def clean_segment(value: Any) -> int:
    try:
        segment = int(value)
    except (TypeError, ValueError) as error:
        raise BadInput(f"The object must be a segment id, not {value!r}.") from error
    if segment < 0 or segment != float(value):
        raise BadInput(f"The object must be a segment id, not {value!r}.")
    return segment


CLEANERS = {
    "name": clean_name,
    "colour": clean_colour,
    "position": clean_position,
    "radius": clean_radius,
    "segment": clean_segment,
}


def clean_marker_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The marker fields among `values`, checked; unknown keys are refused."""
    unknown = set(values) - set(CLEANERS)
    if unknown:
        raise BadInput(f"A marker has no field {', '.join(sorted(unknown))}.")
    return {key: CLEANERS[key](value) for key, value in values.items()}


# ---- markers ----


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _marker(row: Mapping[str, Any]) -> Marker:
    return Marker(
        int(row["id"]),
        int(row["segment"] or 0),
        row["name"] or "",
        (float(row["x"]), float(row["y"]), float(row["z"])),
        float(row["radius"]),
        row["colour"],
        row["user"] or "",
        row["created_at"] or "",
    )


def _row(dataset_id: str, user: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    x, y, z = fields["position"]
    return {
        "dataset_id": dataset_id,
        "segment": fields.get("segment", 0),
        "name": fields.get("name", ""),
        "x": x,
        "y": y,
        "z": z,
        "radius": fields.get("radius", DEFAULT_RADIUS),
        "colour": fields.get("colour", DEFAULT_COLOUR),
        "user": user,
        "created_at": _now(),
    }


def require_dataset(db: Database, dataset_id: str) -> None:
    if db.execute("select 1 from datasets where id = ?", [dataset_id]).fetchone() is None:
        raise NotFound(f"No dataset {dataset_id!r}.")


def list_markers(db: Database, dataset_id: str) -> list[Marker]:
    rows = db.table("markers").rows_where("dataset_id = ?", [dataset_id], order_by="id")
    return [_marker(r) for r in rows]


def get_marker(db: Database, dataset_id: str, marker_id: int) -> Marker:
    rows = list(
        db.table("markers").rows_where("dataset_id = ? and id = ?", [dataset_id, marker_id])
    )
    if not rows:
        raise NotFound(f"No marker {marker_id}.")
    return _marker(rows[0])


def add_marker(db: Database, dataset_id: str, user: str, values: Mapping[str, Any]) -> Marker:
    """Add a marker from `values` (position required; segment, name, radius, colour)."""
    fields = clean_marker_fields(values)
    if "position" not in fields:
        raise BadInput("A marker needs a position [x, y, z] in nm.")
    require_dataset(db, dataset_id)
    row = _row(dataset_id, user, fields)
    marker_id = db.table("markers").insert(row).last_pk
    return get_marker(db, dataset_id, int(str(marker_id)))


def update_marker(
    db: Database, dataset_id: str, marker_id: int, values: Mapping[str, Any]
) -> Marker:
    """Change some fields of a marker (name, segment, position, radius, colour)."""
    fields = clean_marker_fields(values)
    get_marker(db, dataset_id, marker_id)
    changes = {k: v for k, v in fields.items() if k != "position"}
    if "position" in fields:
        changes.update(zip("xyz", fields["position"], strict=True))
    if changes:
        db.table("markers").update(marker_id, changes)
    return get_marker(db, dataset_id, marker_id)


def delete_marker(db: Database, dataset_id: str, marker_id: int) -> None:
    get_marker(db, dataset_id, marker_id)
    db.table("markers").delete(marker_id)


# ---- markers as CSV ----


def markers_csv(markers: Iterable[Marker]) -> str:
    """A CSV table of `markers` (positions and radii in nm) that `import_markers_csv` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MARKER_COLUMNS)
    writer.writerows(m.csv_row() for m in markers)
    return out.getvalue()


CSV_FIELDS = {"name": "name", "segment": "segment", "radius_nm": "radius", "colour": "colour"}


def _csv_fields(record: Mapping[str, str | None]) -> dict[str, Any]:
    position = [record.get(f"{axis}_nm") for axis in "xyz"]
    fields: dict[str, Any] = {"position": position}
    for column, key in CSV_FIELDS.items():
        value = record.get(column)
        if value not in (None, ""):
            fields[key] = value
    return clean_marker_fields(fields)


def parse_markers_csv(text: str) -> list[dict[str, Any]]:
    """The markers of a CSV table, checked; BadInput names every bad line (up to ten)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = {"x_nm", "y_nm", "z_nm"} - set(reader.fieldnames or ())
    if missing:
        raise BadInput(
            "The CSV needs the columns x_nm, y_nm, z_nm (missing: "
            f"{', '.join(sorted(missing))}); nothing was imported."
        )
    markers: list[dict[str, Any]] = []
    problems: list[str] = []
    for record in reader:
        if len(markers) >= MAX_IMPORT_ROWS:
            raise BadInput(f"At most {MAX_IMPORT_ROWS} markers can be imported at once.")
        try:
            markers.append(_csv_fields(record))
        except BadInput as error:
            problems.append(f"line {reader.line_num}: {error.message}")
    if problems:
        raise BadInput(
            f"The CSV has {len(problems)} bad line(s); nothing was imported. "
            + "; ".join(problems[:10]),
            detail=problems,
        )
    return markers


def import_markers_csv(
    db: Database, dataset_id: str, user: str, text: str, replace: bool = False
) -> list[Marker]:
    """Add the markers of a CSV table (all or none), after deleting the dataset's markers
    if `replace`; the dataset's markers afterwards."""
    require_dataset(db, dataset_id)
    rows = [_row(dataset_id, user, fields) for fields in parse_markers_csv(text)]
    with write_transaction(db):
        if replace:
            db.execute("delete from markers where dataset_id = ?", [dataset_id])
        if rows:
            db.table("markers").insert_all(rows)
    return list_markers(db, dataset_id)


# ---- object colours ----


def _mix(n: int) -> int:
    """Dojo's 32-bit integer hash (murmur3's finaliser, dojo/static/labels.js)."""
    h = n & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def _hsv_to_hex(h: float, s: float, v: float) -> str:
    i = math.floor(h * 6)
    f = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return "#" + "".join(f"{math.floor(c * 255 + 0.5):02x}" for c in rgb)


def default_colour(segment: int) -> str:
    """The colour Dojo gives `segment`, so an object looks the same in both tools."""
    h = _mix(segment)
    return _hsv_to_hex(
        (h & 0xFFFF) / 0x10000,
        0.55 + ((h >> 16) & 0xFF) / 255 * 0.4,
        0.8 + ((h >> 24) & 0xFF) / 255 * 0.2,
    )


def segment_colours(db: Database, dataset_id: str) -> dict[int, str]:
    """The colours users chose, by segment (others have their `default_colour`)."""
    rows = db.execute(
        "select segment, colour from segments where dataset_id = ? and colour is not null",
        [dataset_id],
    ).fetchall()
    return {int(s): str(c) for s, c in rows}


def set_segment_colour(db: Database, dataset_id: str, segment: int, colour: str | None) -> str:
    """Store an object's colour (None: back to its default); the colour it now has."""
    segment = clean_segment(segment)
    if segment == 0:
        raise BadInput("Only segments (id > 0) have colours.")
    stored = None if colour is None else clean_colour(colour)
    require_dataset(db, dataset_id)
    db.execute(
        "insert into segments (dataset_id, segment, colour) values (?, ?, ?) "
        "on conflict (dataset_id, segment) do update set colour = excluded.colour",
        [dataset_id, segment, stored],
    )
    return stored or default_colour(segment)


def with_colours(
    objects: Sequence[Mapping[str, Any]], colours: Mapping[int, str]
) -> list[dict[str, Any]]:
    """`objects` (rows with an "id") with each one's stored or default colour."""
    return [
        {**o, "colour": colours.get(int(o["id"])) or default_colour(int(o["id"]))} for o in objects
    ]


def objects_csv(objects: Iterable[Mapping[str, Any]]) -> str:
    """The object table as CSV: sizes in voxels, nm³ and nm², centroids in nm."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OBJECT_COLUMNS)
    for o in objects:
        centroid = o.get("centroid") or [None, None, None]
        writer.writerow(
            [
                o["id"],
                o.get("name") or "",
                o.get("colour") or "",
                o.get("voxels"),
                _blank(o.get("volume")),
                _blank(o.get("surface_area")),
                *(_blank(c) for c in centroid),
            ]
        )
    return out.getvalue()


def _blank(value: Any) -> Any:
    return "" if value is None else value


# ---- what the annotator shows ----


def object_table(ws: Workspace, dataset_id: str) -> list[dict[str, Any]]:
    """The dataset's objects (`unem.meshes.object_table`) with their colours."""
    from unem import meshes

    return with_colours(meshes.object_table(ws, dataset_id), segment_colours(ws.db, dataset_id))


def rename_object(db: Database, dataset_id: str, segment: int, name: Any) -> str:
    """Rename an object: its segment's name, the one Dojo shows too."""
    require_dataset(db, dataset_id)
    return rename_segment(db, dataset_id, clean_segment(segment), clean_name(name))


def viewer_state(ws: Workspace, dataset_id: str) -> dict[str, Any]:
    """What the annotator page starts from: the dataset, its edit version and its markers."""
    dataset = get_dataset(ws, dataset_id)
    proofreader = edits.proofreader(ws, dataset_id)
    proofreader.ensure_ready()
    return {
        "dataset": dataset.to_json(),
        "version": proofreader.version(),
        "markers": [m.to_json() for m in list_markers(ws.db, dataset_id)],
        "tile_size": TILE,
    }


def remesh_touched(
    ws: Workspace, dataset_id: str, since_version: int, progress: Progress = no_progress
) -> list[dict[str, Any]]:
    """Mesh again the segments edited after `since_version`; a "mesh updated" note for each
    (`removed` when the segment no longer exists, e.g. merged into another)."""
    from unem import meshes

    touched = meshes.touched_segments(ws, dataset_id, since_version)
    made = meshes.remesh(ws, dataset_id, sorted(touched), progress)
    version = edits.proofreader(ws, dataset_id).version()
    notes = [
        {
            "dataset": dataset_id,
            "segment": int(m.segment),
            "version": int(m.version),
            "removed": False,
        }
        for m in made
    ]
    gone = sorted(touched - {int(m.segment) for m in made})
    return notes + [
        {"dataset": dataset_id, "segment": s, "version": version, "removed": True} for s in gone
    ]
