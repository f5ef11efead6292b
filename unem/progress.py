"""Progress reporting shared by the CLI (a bar), the web (socket events) and jobs (JSON lines)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Called as work advances: `step` of `total` units done, with a short message."""

    def __call__(self, step: int, total: int, message: str = "") -> None: ...


def no_progress(step: int, total: int, message: str = "") -> None:
    """A Progress that reports nothing, for callers that do not watch."""
