"""pyHanko's async validation and signing, called from sync code with and without a running event loop."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import threading

from inkless.aio import _thread_loops, run_on_thread_loop, run_sync


async def _where() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


def test_runs_on_its_own_loop_from_plain_sync_code() -> None:
    assert run_sync(_where()) == threading.current_thread().name


def test_inside_a_running_loop_it_runs_on_a_worker_thread_instead_of_failing() -> None:
    async def route() -> str:
        return run_sync(_where())  # what an async web route calling the sync TSA does

    assert asyncio.run(route()) != threading.current_thread().name


async def _loop_id() -> int:
    await asyncio.sleep(0)
    return id(asyncio.get_running_loop())


def test_a_thread_reuses_its_loop_and_closes_it_when_the_thread_ends() -> None:
    seen: list[int] = []
    loops: list[asyncio.AbstractEventLoop] = []

    def work() -> None:
        seen.extend(run_on_thread_loop(_loop_id()) for _ in range(3))
        loops.append(_thread_loops.loop)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert len(set(seen)) == 1  # one loop for the three calls
    del thread
    gc.collect()
    assert loops[0].is_closed()


def test_inside_a_running_loop_it_does_not_reenter_that_loop() -> None:
    async def route() -> str:
        return run_on_thread_loop(_where())

    assert asyncio.run(route()) != threading.current_thread().name


async def _off_the_loop() -> str:
    return await asyncio.to_thread(lambda: "done")  # the loop's default executor


def test_a_forked_child_does_not_inherit_its_parents_loop() -> None:
    """The parent's loop of this thread has executor threads that do not exist in a forked child: reusing it
    there waited for ever (batch sealing in worker processes hung). The child gets a loop of its own."""
    assert run_on_thread_loop(_off_the_loop()) == "done"  # the parent's loop now has an executor thread
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(run_on_thread_loop_in_child)
        assert result.get(timeout=30) == "done"
    # and the parent's loop still works: the child left it alone (closing it there unregistered the
    # parent's wake-up pipe from their shared epoll, and the parent then waited for ever)
    assert run_on_thread_loop(asyncio.wait_for(_off_the_loop(), timeout=10)) == "done"


def run_on_thread_loop_in_child() -> str:
    return run_on_thread_loop(_off_the_loop())
