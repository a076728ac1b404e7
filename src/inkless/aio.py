"""Running pyHanko's async APIs from synchronous code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code; inside a running event loop, on a fresh loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # An async route called us directly: its loop cannot be re-entered, so the coroutine gets its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


_thread_loops = threading.local()


def _forget_inherited_loop() -> None:
    """In a forked child: the parent's loop of this thread is not ours (its executor's threads did not
    survive the fork, so ``asyncio.to_thread`` on it would wait for ever); the child makes its own.

    The inherited loop is left alone, not closed: its epoll instance is shared with the parent, and
    closing it would unregister the parent's wake-up pipe (the parent's loop would then never wake)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_loops, "loop", None)
    if loop is not None:
        _inherited.append(loop)  # kept, so that it is never collected (and closed) in the child
    _thread_loops.loop = None


_inherited: list[asyncio.AbstractEventLoop] = []
os.register_at_fork(after_in_child=_forget_inherited_loop)


def run_on_thread_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Like :func:`run_sync`, but on an event loop kept for the calling thread instead of a new one per call.

    Creating and tearing down a loop (what ``asyncio.run`` does) costs about a millisecond, as much as the
    rest of a seal's bookkeeping; CPU-bound pyHanko calls made one after another reuse this thread's loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return run_sync(coro)
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_loops.loop = loop
        # Closed when the thread is gone (or at exit), so that no loop and no socket of it is left open.
        weakref.finalize(threading.current_thread(), loop.close)
    return loop.run_until_complete(coro)
