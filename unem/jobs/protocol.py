"""What a worker tells the server: JSON reports framed as RFC 7464 JSON text sequences.

Each report is one line, `RS {json} LF` (RS = 0x1E). Everything else a worker writes (its
prints, a library's warnings, a traceback) is plain log text. The separator lets a report
be found even right after a `print(..., end="")` of the job's own code.

Reports: `{"report": "started", "pid"}`, `{"report": "progress", "step", "total",
"message", "metrics"}`, `{"report": "result", "result"}`, `{"report": "error", "message"}`.
"""

from __future__ import annotations

import json
import math
from typing import Any

RS = "\x1e"
KINDS = ("started", "progress", "result", "error")


def encode(report: dict[str, Any]) -> bytes:
    """One report as the bytes of one line."""
    return (RS + json.dumps(report, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: str) -> tuple[str, dict[str, Any] | None]:
    """Split a line into its log text and its report (None when it carries none)."""
    text, separator, payload = line.rstrip("\r\n").partition(RS)
    if not separator:
        return text, None
    try:
        report = json.loads(payload)
    except ValueError:
        return text + payload, None
    if not isinstance(report, dict) or report.get("report") not in KINDS:
        return text + payload, None
    return text, report


def clean_metrics(metrics: Any) -> dict[str, float]:
    """Finite numbers by name; anything else a worker sent is left out."""
    if not isinstance(metrics, dict):
        return {}
    clean = {}
    for name, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            clean[str(name)[:64]] = float(value)
    return clean


def integer(value: Any, default: int = 0) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError, OverflowError):
        return default
