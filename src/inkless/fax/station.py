"""The node's fax station: the configured line, opened once per process, answering into the fax service.

A background task (run by ``inkless serve`` and ``inkless worker``) starts the
line on its first run. Only one process answers a loopback socket: a process
that finds another one already answering leaves it be (it still dials out).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from inkless.fax.line import FaxLine, open_line
from inkless.fax.loopback import connect
from inkless.workers import PeriodicTask, register

log = logging.getLogger("inkless.fax.station")

_lock = threading.Lock()
_lines: dict[int, FaxLine | None] = {}
_listening: set[int] = set()


def _someone_answers(path: Path) -> bool:
    try:
        probe = connect(path, 1.0)
    except OSError:
        return False
    probe.close()
    return True


def _load_drivers() -> None:
    """Import the line drivers; each registers itself with the line interface (``register_line``)."""
    import inkless.fax.loopback
    import inkless.fax.sip.line
    import inkless.fax.spool  # noqa: F401


def station_line(node: Any) -> FaxLine | None:
    """The line this process uses for ``node`` (None when ``fax_line = "none"``)."""
    _load_drivers()
    with _lock:
        key = id(node)
        if key not in _lines:
            _lines[key] = open_line(node.settings, node.clock)
        return _lines[key]


def current_line(node: Any) -> FaxLine | None:
    """The line this process opened for ``node``, if any (never opens one)."""
    with _lock:
        return _lines.get(id(node))


def start_answering(node: Any) -> bool:
    """Answer inbound calls on the node's line into its fax service; True if this process now answers."""
    line = station_line(node)
    if line is None or getattr(node, "fax", None) is None:
        return False
    with _lock:
        if id(node) in _listening:
            return True
        socket_path = getattr(line, "socket_path", None)
        if isinstance(socket_path, Path) and _someone_answers(socket_path):
            log.info("fax line %s is answered by another process", line.name)
            return False
        line.listen(node.fax.handler(line.name))
        _listening.add(id(node))
    log.info("fax line %s answering", line.name)
    return True


def stop_answering(node: Any) -> None:
    """Close the node's line in this process (calls in progress finish first)."""
    with _lock:
        line = _lines.pop(id(node), None)
        _listening.discard(id(node))
    if line is not None:
        line.close()


register(PeriodicTask(name="fax.station", interval=lambda _node: 5.0, run=start_answering, stop=stop_answering))
