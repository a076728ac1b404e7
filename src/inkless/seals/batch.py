"""Batch sealing: the same seal on many PDFs, in parallel worker processes, one result per file.

Sealing is CPU-bound Python (pyHanko, asn1crypto), so threads would share one core: each worker is a
process that opens the node once and then seals file after file. A file that cannot be sealed (not a
PDF, no such page, a seal box outside the page, …) is reported by name with the reason, and the others
go on. The results come back in the order the files were given; ``progress`` is called as each one
finishes.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from inkless.errors import InklessError, ValidationError
from inkless.seals.model import SealKind, SealPlacement

if TYPE_CHECKING:
    from concurrent.futures import Future

    from inkless.app import Node
    from inkless.config import Settings


@dataclass(frozen=True)
class SealOrder:
    """What to press on every file of a batch, and where."""

    signer: str
    kind: SealKind
    page: int = 1
    at: tuple[float, float] | None = None  # lower-left corner in points; or
    field_name: str | None = None  # an existing empty signature field
    size_mm: float | None = None
    reason: str | None = None
    certify: bool = False


@dataclass(frozen=True)
class BatchItem:
    """One file to seal and where its sealed copy goes."""

    source: Path
    out: Path


@dataclass(frozen=True)
class BatchResult:
    """How one file of a batch went: ``error`` is None when it was sealed and written to ``item.out``."""

    item: BatchItem
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


Progress = Callable[[int, int, BatchResult], None]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def plan_batch(sources: Sequence[Path], out_dir: Path) -> list[BatchItem]:
    """The PDFs named (files, or every ``*.pdf`` of a folder) and their places in ``out_dir``.

    Refuses, before anything is sealed, a source that does not exist, two sources of the same name
    (one would overwrite the other) and an output folder that is a source folder.
    """
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            if source.resolve() == out_dir.resolve():
                raise ValidationError(f"--out {out_dir} is the folder being sealed: choose another folder")
            files.extend(sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() == ".pdf"))
        elif source.is_file():
            files.append(source)
        else:
            raise ValidationError(f"no such file or folder: {source}")
    if not files:
        raise ValidationError("no PDF to seal: the folders given hold no *.pdf files")
    seen: dict[str, Path] = {}
    for path in files:
        if path.name in seen:
            raise ValidationError(f"two files are named {path.name} ({seen[path.name]} and {path}): "
                                  "their sealed copies would overwrite each other in --out")
        seen[path.name] = path
    return [BatchItem(path, out_dir / path.name) for path in files]


def seal_one(node: Node, order: SealOrder, item: BatchItem, actor: str) -> BatchResult:
    """Seal one file of a batch with ``node``; any refusal becomes the result's error, not an exception."""
    service = node.sealing
    if service is None:
        return BatchResult(item, "this node has no sealing service")
    try:
        pdf = item.source.read_bytes()
        if order.field_name:
            placement = SealPlacement(page=order.page, field_name=order.field_name)
        else:
            assert order.at is not None
            placement = service.placement_at(order.signer, order.kind, order.page, *order.at, order.size_mm)
        sealed = service.seal(pdf, order.signer, order.kind, placement, actor=actor, reason=order.reason,
                              certify=order.certify, size_mm=order.size_mm)
        item.out.write_bytes(sealed)
    except InklessError as exc:
        return BatchResult(item, str(exc))
    except OSError as exc:
        return BatchResult(item, f"{exc.strerror or exc}: {exc.filename or item.source}")
    return BatchResult(item)


# --- worker processes ---------------------------------------------------------------------


def _warm(settings: Settings, order: SealOrder, node: Node | None) -> None:
    # Render the imprint here, before the workers fork: they inherit it (and the fonts it needed) instead
    # of each loading the CJK fonts again, which costs more than sealing a few documents.
    from inkless.app import build_node
    from inkless.seals.sealing import imprint_for, imprint_pdf

    own = node or build_node(settings)
    try:
        user = own.directory.user(order.signer)
        office = own.directory.office_by_id(user.office_id)
        imprint_pdf(imprint_for(user, office.name, order.kind, own.clock.now(), order.size_mm, settings.tz))
    except InklessError:
        pass  # the workers report it for every file
    finally:
        if node is None:
            own.close()


_worker_node: Node | None = None

J = TypeVar("J")
R = TypeVar("R")


def _start_worker(settings: Settings) -> None:
    global _worker_node
    from inkless.app import build_node

    _worker_node = build_node(settings)


def _work(work: Callable[[Node, J], R], failed: Callable[[J, str], R], job: J) -> R:
    assert _worker_node is not None
    try:
        return work(_worker_node, job)
    except Exception as exc:  # a bug in one job must not lose the others' results
        return failed(job, f"{type(exc).__name__}: {exc}")


def run_batch(settings: Settings, jobs: Sequence[J], work: Callable[[Node, J], R], failed: Callable[[J, str], R],
              *, workers: int | None = None, progress: Callable[[int, int, R], None] | None = None,
              node: Node | None = None) -> list[R]:
    """``work(node, job)`` for every job, in ``workers`` processes (default: one per core) or here for one.

    ``work`` and ``failed`` are module-level functions (they are sent to the workers); ``work`` turns
    expected refusals into its result, ``failed(job, reason)`` stands for a job whose worker raised or
    died. Results come back in the order of ``jobs``; ``progress(done, total, result)`` as each finishes.
    With one worker the jobs run here, on ``node`` if given (else one built from ``settings``).
    """
    workers = min(workers or default_workers(), len(jobs)) or 1
    results: list[R | None] = [None] * len(jobs)
    done = 0

    def finished(index: int, result: R) -> None:
        nonlocal done
        results[index] = result
        done += 1
        if progress is not None:
            progress(done, len(jobs), result)

    if workers == 1:
        from inkless.app import build_node

        own = node or build_node(settings)
        try:
            for index, job in enumerate(jobs):
                finished(index, work(own, job))
        finally:
            if node is None:
                own.close()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # fork starts a worker in milliseconds (spawn would import everything again, about a second each);
        # the workers open their own database connections after the fork.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        # Objects that exist before the fork move out of the collector's reach: otherwise each worker's
        # first full collection writes to every inherited page (reference counts) and copies them all.
        gc.freeze()
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                                     initargs=(settings,)) as pool:
                futures: dict[Future[R], int] = {
                    pool.submit(_work, work, failed, job): index for index, job in enumerate(jobs)
                }
                for future in as_completed(futures):
                    index = futures[future]
                    try:
                        result = future.result()
                    except Exception as exc:  # a worker died (killed, out of memory): say so for its job
                        result = failed(jobs[index], f"the worker doing it stopped: {type(exc).__name__}: {exc}")
                    finished(index, result)
        finally:
            gc.unfreeze()
    return [r for r in results if r is not None]


def _seal_job(node: Node, job: tuple[SealOrder, BatchItem, str]) -> BatchResult:
    return seal_one(node, *job)


def _seal_failed(job: tuple[SealOrder, BatchItem, str], reason: str) -> BatchResult:
    return BatchResult(job[1], reason)


def seal_batch(settings: Settings, order: SealOrder, items: Sequence[BatchItem], *, actor: str,
               workers: int | None = None, progress: Progress | None = None,
               node: Node | None = None) -> list[BatchResult]:
    """Seal every item; ``workers`` processes (default: one per core), or this process for one worker.

    With one worker the batch runs here, on ``node`` if given (else one built from ``settings``).
    """
    if min(workers or default_workers(), len(items)) > 1:
        _warm(settings, order, node)
    jobs = [(order, item, actor) for item in items]
    return run_batch(settings, jobs, _seal_job, _seal_failed, workers=workers, progress=progress, node=node)


# --- approval routes --------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteOutcome:
    """How stamping one route of a batch went: ``done`` says what happened, or ``error`` why not."""

    route_id: int
    done: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def finish_route(node: Node, job: tuple[int, str, SealKind | None, str | None]) -> RouteOutcome:
    """``login`` stamps their box of route ``route_id``, or presses the office seal when the route awaits it."""
    from inkless.seals.routes import RouteState

    route_id, login, kind, comment = job
    routes = node.routes
    if routes is None:
        return RouteOutcome(route_id, error="this node has no approval routes")
    try:
        current = routes.route(route_id)
        if kind is SealKind.OFFICE or (kind is None and current.state is RouteState.AWAITING_OFFICE_SEAL):
            route = routes.office_seal(route_id, login)
            done = f"pressed the office seal on route {route.id}: completed, extended to PAdES B-LTA"
            if route.delivered_message_id:
                done += f", delivered to {route.deliver_to} as message {route.delivered_message_id}"
        else:
            route = routes.approve(route_id, login, kind or SealKind.PERSONAL, comment)
            done = f"{login} stamped route {route.id}"
    except InklessError as exc:
        return RouteOutcome(route_id, error=str(exc))
    return RouteOutcome(route_id, done)


def _route_failed(job: tuple[int, str, SealKind | None, str | None], reason: str) -> RouteOutcome:
    return RouteOutcome(job[0], error=reason)


def finish_routes(settings: Settings, route_ids: Sequence[int], login: str, kind: SealKind | None,
                  comment: str | None, *, workers: int | None = None,
                  progress: Callable[[int, int, RouteOutcome], None] | None = None) -> list[RouteOutcome]:
    """Stamp (or office-seal) many routes in parallel, one result per route, in the order given."""
    jobs = [(route_id, login, kind, comment) for route_id in route_ids]
    return run_batch(settings, jobs, finish_route, _route_failed, workers=workers, progress=progress)
