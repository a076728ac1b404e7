"""pyHanko's async validation and signing, called from sync code with and without a running event loop."""

from __future__ import annotations

import asyncio
import threading

from inkless.aio import run_sync


async def _where() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


def test_runs_on_its_own_loop_from_plain_sync_code() -> None:
    assert run_sync(_where()) == threading.current_thread().name


def test_inside_a_running_loop_it_runs_on_a_worker_thread_instead_of_failing() -> None:
    async def route() -> str:
        return run_sync(_where())  # what an async web route calling the sync TSA does

    assert asyncio.run(route()) != threading.current_thread().name
