"""Background tasks of the server process (imports, exports, demo), with progress events.

Each task runs in a thread; its progress, completion and failure are emitted on the
`/datasets` namespace. Long-running compute (training, inference, FFN) does not belong
here: it runs in worker processes through the job manager.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from unem.errors import UnemError
from unem.progress import Progress
from unem.web.events import EVENTS, NAMESPACES

log = logging.getLogger(__name__)
EMIT_INTERVAL = 0.2  # seconds between progress events of one task: enough for a smooth bar
KEEP_FINISHED = 50


@dataclass
class Task:
    id: int
    kind: str
    title: str
    user: str
    state: str = "running"  # running | done | failed
    step: int = 0
    total: int = 0
    message: str = ""
    started_at: float = field(default_factory=time.time)
    result: Any = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class TaskRunner:
    def __init__(self, app: Flask, socketio: SocketIO) -> None:
        self.app = app
        self.socketio = socketio
        self.tasks: dict[int, Task] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def start(self, kind: str, title: str, user: str, work: Callable[[Progress], Any]) -> Task:
        """Run `work(progress)` in a thread; its return value becomes the task's result.

        `work` runs inside an app context, so it may use `app_state()` like a view does.
        """
        task = Task(next(self.ids), kind, title, user)
        with self.lock:
            self.tasks[task.id] = task
            self._forget_old()
        threading.Thread(
            target=self._run, args=(task, work), daemon=True, name=f"task-{task.id}"
        ).start()
        return task

    def list(self) -> list[Task]:
        with self.lock:
            return sorted(self.tasks.values(), key=lambda t: t.id, reverse=True)

    def _forget_old(self) -> None:
        finished = [t.id for t in self.tasks.values() if t.state != "running"]
        for task_id in sorted(finished)[:-KEEP_FINISHED]:
            del self.tasks[task_id]

    def _run(self, task: Task, work: Callable[[Progress], Any]) -> None:
        try:
            with self.app.app_context():
                task.result = work(self._reporter(task))
            task.state = "done"
            self._emit(EVENTS["TASK_DONE"], task)
        except UnemError as error:
            self._fail(task, error.message)
        except Exception as error:
            log.exception("task %s failed", task.id)
            self._fail(task, f"Unexpected error: {error}")

    def _fail(self, task: Task, message: str) -> None:
        task.state, task.error = "failed", message
        self._emit(EVENTS["TASK_FAILED"], task)

    def _reporter(self, task: Task) -> Progress:
        last = [0.0]

        def report(step: int, total: int, message: str = "") -> None:
            task.step, task.total, task.message = step, total, message
            now = time.monotonic()
            if now - last[0] >= EMIT_INTERVAL or step >= total:
                last[0] = now
                self._emit(EVENTS["TASK_PROGRESS"], task)

        return report

    def _emit(self, event: str, task: Task) -> None:
        self.socketio.emit(event, task.to_json(), namespace=NAMESPACES["DATASETS"])
