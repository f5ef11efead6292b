"""What one tool of the server tells the others, without importing them (blinker signals).

The sender is always the Flask app, so each app's subscribers hear only their own app.
"""

from __future__ import annotations

from typing import Any

from blinker import NamedSignal, Namespace
from flask import current_app

SIGNALS = Namespace()

# An edit was committed and broadcast by Dojo: kwargs dataset (id), edit (unem.proofread Edit).
# The 3D annotator re-meshes the segments it touched.
edit_committed = SIGNALS.signal("edit-committed")

# Dojo renamed a segment: kwargs dataset, segment, name. The 3D annotator tells its viewers.
segment_renamed = SIGNALS.signal("segment-renamed")


def send(signal: NamedSignal, **kwargs: Any) -> None:
    """Send `signal` from the current app (the sender its subscribers listen to)."""
    signal.send(current_app._get_current_object(), **kwargs)  # type: ignore[attr-defined]
