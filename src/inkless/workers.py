"""Background work that every node process runs: periodic tasks registered by feature packages.

``inkless serve`` runs these in a thread beside the web server; ``inkless worker``
runs them alone. Every task must be safe to run in several processes at once
(use row locks / ``SKIP LOCKED`` for anything claimed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from inkless.app import Node

log = logging.getLogger("inkless.workers")


@dataclass(frozen=True)
class PeriodicTask:
    """Run ``run(node)`` every ``interval(node)`` seconds; ``stop(node)`` when the workers stop."""

    name: str
    interval: Callable[[Node], float]
    run: Callable[[Node], object]
    stop: Callable[[Node], object] | None = None


TASKS: list[PeriodicTask] = []


def register(task: PeriodicTask) -> PeriodicTask:
    TASKS.append(task)
    return task


def _load_tasks() -> None:
    # Feature packages register their tasks when imported.
    import importlib

    for module in ("inkless.directory.tasks", "inkless.audit.tasks", "inkless.delivery.tasks",
                   "inkless.fax.station", "inkless.fax.tasks", "inkless.blob_collector", "inkless.mail.tasks",
                   "inkless.web.drafts", "inkless.intake.tasks", "inkless.metrics.tasks"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def run_forever(node: Node, stop: threading.Event, tick: float = 0.5) -> None:
    """Run every registered task on its schedule until ``stop`` is set; a failing task never stops the others."""
    _load_tasks()
    log.info("background tasks running: %s", ", ".join(task.name for task in TASKS))
    due = {task.name: 0.0 for task in TASKS}
    while not stop.is_set():
        now = time.monotonic()
        for task in TASKS:
            if now < due[task.name]:
                continue
            try:
                task.run(node)
            except Exception:
                log.exception("background task %s failed", task.name)
            due[task.name] = time.monotonic() + task.interval(node)
        stop.wait(tick)
    # Release what tasks hold before the process exits, last registered first: a task may use what an
    # earlier one opened (outbound calls hang up on the line before the station closes it).
    log.info("background tasks stopping")
    for task in reversed(TASKS):
        if task.stop is not None:
            try:
                task.stop(node)
            except Exception:
                log.exception("stopping background task %s failed", task.name)
