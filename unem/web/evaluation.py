"""The Evaluate page and its reports: list, show, download as CSV, delete.

An evaluation itself is an `evaluate` job submitted through `/api/jobs` (admins); its
report is kept in the workspace (`unem.evaluation_reports`), which this module only reads.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template, request

from unem import __version__
from unem.evaluation_reports import delete_report, get_report, list_reports, report_csv
from unem.web.auth_views import current_user, requires
from unem.web.state import workspace

blueprint = Blueprint("evaluation", __name__)


def with_links(report: dict[str, Any]) -> dict[str, Any]:
    return {**report, "csv_url": f"/api/evaluations/{report['id']}.csv"}


@blueprint.get("/evaluation")
def evaluation_page() -> str:
    return render_template("evaluation.html", user=current_user(), version=__version__)


@blueprint.get("/api/evaluations")
def reports() -> Any:
    dataset = request.args.get("dataset") or None
    return {"reports": [with_links(report) for report in list_reports(workspace(), dataset)]}


@blueprint.get("/api/evaluations/<int:report_id>")
def report(report_id: int) -> Any:
    return with_links(get_report(workspace(), report_id))


@blueprint.get("/api/evaluations/<int:report_id>.csv")
def report_as_csv(report_id: int) -> Response:
    content = report_csv(get_report(workspace(), report_id))
    disposition = f'attachment; filename="evaluation-{report_id}.csv"'
    return Response(content, mimetype="text/csv", headers={"Content-Disposition": disposition})


@blueprint.delete("/api/evaluations/<int:report_id>")
@requires("admin")
def delete(report_id: int) -> Any:
    delete_report(workspace(), report_id)
    return {"deleted": report_id}


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
