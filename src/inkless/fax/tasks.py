"""Background work of the fax service: dial due outbound jobs, finish interrupted inbound faxes, disaster fallback.

Outbound calls run in a small thread pool per process (at most ``fax_max_calls`` at once), so a
call that keeps the line for minutes never holds up the other periodic tasks. Jobs are claimed
in the database (``SKIP LOCKED`` on PostgreSQL), so any number of processes can share the queue.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from inkless.workers import PeriodicTask, register

log = logging.getLogger("inkless.fax.tasks")

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}
_in_flight: dict[int, set[Future[Any]]] = {}


def _pool(node: Any) -> tuple[ThreadPoolExecutor, set[Future[Any]]]:
    with _lock:
        key = id(node)
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(max_workers=node.settings.fax_max_calls, thread_name_prefix="fax-out")
            _in_flight[key] = set()
        return _pools[key], _in_flight[key]


def dial_due_jobs(node: Any) -> int:
    """Claim due outbound jobs for the free call slots and dial each in the pool; returns how many started."""
    from inkless.fax.station import station_line

    fax = getattr(node, "fax", None)
    if fax is None:
        return 0
    fax.expire_jobs()  # also when no line is configured: a job never waits past its kill time
    line = station_line(node)
    if line is None:
        return 0
    pool, running = _pool(node)
    with _lock:
        for done in [f for f in running if f.done()]:
            running.discard(done)
        free = node.settings.fax_max_calls - len(running)
    if free <= 0:
        return 0
    job_ids = fax.claim_due_jobs(limit=free, max_calls=node.settings.fax_max_calls)
    for job_id in job_ids:
        future = pool.submit(fax.attempt, job_id, line)
        future.add_done_callback(_log_failure(job_id))
        with _lock:
            running.add(future)
    return len(job_ids)


def _log_failure(job_id: int) -> Any:
    def check(future: Future[Any]) -> None:
        exc = future.exception()
        if exc is not None:  # the claim runs out and the job is tried again
            log.error("fax job %s: attempt failed unexpectedly: %s", job_id, exc)

    return check


# How long stopping waits for interrupted calls to be handed back (well inside a 10 s stop).
HAND_BACK_SECONDS = 5.0


def hang_up_calls(node: Any) -> None:
    """On stop: drop the outbound calls in progress and wait until their jobs are back in the queue."""
    from concurrent.futures import wait

    from inkless.fax.station import current_line

    fax = getattr(node, "fax", None)
    line = current_line(node)
    with _lock:
        pool = _pools.pop(id(node), None)
        running = _in_flight.pop(id(node), set())
    if fax is not None and line is not None:
        fax.hang_up(line)
    if running:
        _done, late = wait(running, timeout=HAND_BACK_SECONDS)
        if late:  # their claims run out and another worker takes the jobs over
            log.warning("%d fax call(s) did not end within %.0f s of hanging up", len(late), HAND_BACK_SECONDS)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def deliver_pending(node: Any) -> int:
    """Deposit received faxes whose delivery was interrupted (a crash between logging and the inbox)."""
    fax = getattr(node, "fax", None)
    return 0 if fax is None else int(fax.deliver_pending())


def disaster_fallback(node: Any) -> int:
    """Send urgent traffic to long-unreachable peers by fax, where the sending office allows it."""
    from inkless.fax.fallback import DisasterFallback

    if getattr(node, "fax", None) is None or getattr(node, "delivery", None) is None:
        return 0
    fallback = DisasterFallback(
        node.db, node.audit, node.clock, node.node_id, node.settings.fax_fallback_after_minutes, node.fax,
        delivery=lambda: node.delivery, peers=lambda: node.peers,
    )
    return len(fallback.scan())


register(PeriodicTask(name="fax.outbound", interval=lambda node: float(node.settings.fax_poll_seconds),
                      run=dial_due_jobs, stop=hang_up_calls))
register(PeriodicTask(name="fax.inbound_pending", interval=lambda _node: 30.0, run=deliver_pending))
def fallback_interval(node: Any) -> float:
    """How often the fallback looks: every minute, more often when the configured delay is shorter."""
    return min(60.0, max(5.0, float(node.settings.fax_fallback_after_minutes) * 30.0))


register(PeriodicTask(name="fax.fallback", interval=fallback_interval, run=disaster_fallback))
