"""The render pool: fax pages drawn in worker processes, so that a long fax keeps every core busy.

pdfium is not thread-safe (one lock per process, :mod:`inkless.pdfium_lock`): threads cannot draw
two pages at once, processes can. The pool is started on the first document long enough to use it
and kept for the life of the process, because a worker is a fresh interpreter (``spawn``: nothing is
inherited from a server full of threads, held locks and open sockets) that pays about 0.4 s to load
pdfium, Pillow and libtiff; a pool per document would pay that on every fax.

Each task is a range of pages of one PDF. The worker draws, thresholds and compresses them with the
same code as the calling process and sends back only the compressed strips (tens of kilobytes a
page, not the 4 MB grey raster); the calling process writes them into the one TIFF, in page order,
with :meth:`~inkless.fax.tiff_writer.TiffWriter.add_strip`, so the file is byte for byte the one the
single-process path writes. At most two ranges per worker are in flight: memory stays bounded for
a fax of 500 pages.

A worker that dies (killed, out of memory) breaks the pool: the render in progress fails with a
:class:`~inkless.errors.FaxError` saying so, the pool is let go, and the next render starts a new
one. At interpreter exit ``concurrent.futures`` stops idle workers and waits for them.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from inkless.config import MAX_FAX_RENDER_PROCESSES
from inkless.errors import FaxError

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future, ProcessPoolExecutor

    from inkless.fax.tiff_writer import TiffWriter

# Pillow, pdfium and the process pool are imported where they are used: the fax service sets the
# pool's size while a node is built, which must not load them.

# One or two pages are drawn in the calling process: handing them to the pool costs more than it saves.
POOL_MIN_PAGES = 3
# The default is one process per core, at most this many (a fax is rarely longer than a few dozen pages).
DEFAULT_MAX_PROCESSES = 8
# A document is cut in about this many ranges per process, so that the processes finish together.
_RANGES_PER_PROCESS = 4
MAX_RANGE_PAGES = 8
_IN_FLIGHT_PER_PROCESS = 2
# A PDF larger than this reaches the workers as the name of an in-memory file, not as bytes in every task.
SHARE_ABOVE_BYTES = 1024 * 1024

Strip = tuple[int, int, bytes]  # width, rows, compressed strip of one fax page
Plan = TypeVar("Plan")  # what the drawing code needs to know of a page, opaque here

_lock = threading.Lock()
_documents = itertools.count(1)  # names each document of each render, for the workers' open copy
_configured = 0
_executor: ProcessPoolExecutor | None = None
_executor_pid = 0
_proven: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()  # have drawn a range: their workers did start


def default_processes() -> int:
    """One process per core this process may use, at most :data:`DEFAULT_MAX_PROCESSES`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(DEFAULT_MAX_PROCESSES, cores))


def processes() -> int:
    """How many processes draw a long fax (1: the calling process alone, no pool)."""
    return _configured or default_processes()


def configure(count: int) -> None:
    """Set the number of render processes (``fax_render_processes``): 0 = one per core, 1 = no pool."""
    global _configured, _executor
    if not 0 <= count <= MAX_FAX_RENDER_PROCESSES:
        raise FaxError(f"fax_render_processes must be between 0 (one per core) and {MAX_FAX_RENDER_PROCESSES}")
    with _lock:
        before = processes()
        _configured = count
        old = _executor if processes() != before and _executor_pid == os.getpid() else None
        if old is not None:
            _executor = None
    if old is not None:
        old.shutdown(wait=False)  # renders already in it finish there; the next one starts the new size


def shutdown() -> None:
    """Stop the pool's processes and wait for them; the next long render starts a new pool."""
    global _executor
    with _lock:
        executor = _executor if _executor_pid == os.getpid() else None
        _executor = None
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=True)


def worker_pids() -> list[int]:
    """The process ids of the pool's live workers (none before the first render that uses it)."""
    with _lock:
        executor = _executor if _executor_pid == os.getpid() else None
    if executor is None:
        return []
    workers = dict(executor._processes or {})  # the executor keeps no public list of its processes
    return sorted(pid for pid, process in workers.items() if process.is_alive())


def _pool(prepare: Callable[[], None]) -> ProcessPoolExecutor:
    from concurrent.futures import ProcessPoolExecutor

    global _executor, _executor_pid
    with _lock:
        # A forked child inherits the parent's executor object, whose processes are not its own.
        if _executor is None or _executor_pid != os.getpid():
            _executor = ProcessPoolExecutor(
                max_workers=processes(), mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                initargs=(os.getpid(), prepare),
            )
            _executor_pid = os.getpid()
        return _executor


def _let_go(executor: ProcessPoolExecutor) -> None:
    global _executor
    with _lock:
        if _executor is executor:
            _executor = None
    executor.shutdown(wait=False, cancel_futures=True)


def write_pages(
    documents: Sequence[tuple[bytes, Sequence[Plan]]], y_dpi: int, x_dpi: int, writer: TiffWriter, *,
    draw: Callable[[str, str | bytes, tuple[Plan, ...], int, str], list[Strip]], prepare: Callable[[], None],
) -> None:
    """Draw the planned pages of each PDF in the pool and write them into ``writer``, in order.

    ``draw(key, source, plans, y_dpi, compression)`` runs in a worker (a module-level function: it is
    sent by name) and returns the compressed strips of its range of page plans; ``prepare`` runs once
    in each new worker. :mod:`inkless.fax.imaging` supplies both: this module only schedules.
    """
    from concurrent.futures.process import BrokenProcessPool

    executor = _pool(prepare)
    count = processes()
    with contextlib.ExitStack() as stack:
        ranges: list[tuple[str, str | bytes, tuple[Plan, ...]]] = []
        for pdf, plans in documents:
            key = f"{os.getpid()}:{next(_documents)}"
            source = stack.enter_context(_shared(pdf))
            size = max(1, min(MAX_RANGE_PAGES, math.ceil(len(plans) / (count * _RANGES_PER_PROCESS))))
            ranges += [(key, source, tuple(plans[i : i + size])) for i in range(0, len(plans), size)]
        pending: deque[Future[list[Strip]]] = deque()
        try:
            for key, source, plans_of_range in ranges:
                if len(pending) >= count * _IN_FLIGHT_PER_PROCESS:
                    _write(pending.popleft(), writer, y_dpi, x_dpi, executor)
                pending.append(executor.submit(draw, key, source, plans_of_range, y_dpi, writer.compression))
            while pending:
                _write(pending.popleft(), writer, y_dpi, x_dpi, executor)
        except BrokenProcessPool:
            started = executor in _proven
            _let_go(executor)
            if not started:
                # Typically a program whose top-level code renders, unguarded: each spawned worker
                # imports the main module again and would start a pool of its own.
                raise FaxError(
                    "the fax rendering processes could not start (a program that renders faxes keeps its"
                    " top-level code under if __name__ == '__main__'; fax_render_processes = 1 draws in"
                    " the calling process)"
                ) from None
            raise FaxError(
                "a fax rendering process stopped (killed, or out of memory), so the fax was not rendered;"
                " the next try starts new processes"
            ) from None
        finally:
            for future in pending:
                future.cancel()


def _write(future: Future[list[Strip]], writer: TiffWriter, y_dpi: int, x_dpi: int,
           executor: ProcessPoolExecutor) -> None:
    for width, rows, strip in future.result():
        writer.add_strip(strip, width, rows, y_dpi, x_dpi)
    _proven.add(executor)


@contextlib.contextmanager
def _shared(pdf: bytes) -> Iterator[str | bytes]:
    """The PDF as the workers reach it: a small one as bytes in each task; a large one written once
    to an in-memory file of this process, whose /proc name the workers (same user) open."""
    if len(pdf) <= SHARE_ABOVE_BYTES or not hasattr(os, "memfd_create"):
        yield pdf
        return
    fd = os.memfd_create("inkless-fax-pdf", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as file:
            file.write(pdf)
        yield f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- in the workers


# How often a worker looks whether the process that started it is still there.
PARENT_WATCH_S = 1.0


def _start_worker(parent: int, prepare: Callable[[], None]) -> None:
    # Ctrl-C is for the parent, which stops the pool; a worker would only print a second traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="fax-render-parent", daemon=True).start()
    prepare()


def _watch_parent(parent: int) -> None:
    """End this worker once the process that started it is gone.

    A server killed with SIGKILL never stops its pool: the workers would wait for work forever,
    orphans holding pdfium's memory. (Not PR_SET_PDEATHSIG: it fires when the *thread* that
    started the worker ends, and the pool starts workers from whichever thread submits.)
    """
    while os.getppid() == parent:
        time.sleep(PARENT_WATCH_S)
    os._exit(0)
