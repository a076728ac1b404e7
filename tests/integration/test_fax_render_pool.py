"""The render pool: a long fax drawn in worker processes comes out as the calling process draws it."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inkless.config import Settings
from inkless.errors import FaxError
from inkless.fax import imaging, render, render_pool
from inkless.fax.model import CoverPage
from tests.helpers.faxdocs import three_page_pdf

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_processes() -> Iterator[None]:
    """A pool of two processes whatever the machine (one core would mean no pool), stopped afterwards."""
    render_pool.configure(2)
    try:
        yield
    finally:
        render_pool.shutdown()
        render_pool.configure(0)


def _pages(count: int, *, roll: bool = False) -> bytes:
    """``count`` A4 pages of text, and with ``roll`` a last page three A4 lengths long (three fax pages)."""
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    for n in range(count):
        for row in range(40):
            c.drawString(60, 780 - 18 * row, f"page {n + 1} row {row + 1}: the quick brown fox jumps over the lazy dog")
        c.showPage()
    if roll:
        c.setPageSize((A4[0], A4[1] * 3))
        c.drawString(100, 100, "end of the roll")
        c.showPage()
    c.save()
    return buf.getvalue()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.usefixtures("two_processes")
@pytest.mark.parametrize(("fine", "compression"), [(True, "g4"), (False, "g3")])
def test_the_pool_writes_the_file_the_calling_process_writes(fine: bool, compression: str) -> None:
    pdf = _pages(9, roll=True)
    here = imaging.pdf_to_tiff(pdf, fine=fine, compression=compression, parallel=False)
    pooled = imaging.pdf_to_tiff(pdf, fine=fine, compression=compression)
    assert render_pool.worker_pids()  # drawn by the pool, not here
    assert pooled == here
    # what a reader of the fax checks: the same pages with the same pixels
    got, want = imaging.tiff_images(pooled), imaging.tiff_images(here)
    assert len(got) == 12
    assert [imaging.pixel_difference(a, b) for a, b in zip(got, want, strict=True)] == [0.0] * 12


@pytest.mark.usefixtures("two_processes")
def test_a_fax_with_a_cover_and_several_documents_is_the_same_from_the_pool() -> None:
    cover = CoverPage("市民課", "0312345678", "田中", "0399999999", 0, "件名", datetime(2026, 12, 5, tzinfo=UTC))
    documents = [three_page_pdf(photo=True), _pages(4, roll=True)]
    pooled = render.render_for_fax(documents, cover)
    here = render.render_for_fax(documents, cover, parallel=False)
    assert render_pool.worker_pids()
    assert (pooled.pages, pooled.tiff) == (here.pages, here.tiff) == (11, here.tiff)


@pytest.mark.usefixtures("two_processes")
def test_a_large_pdf_reaches_the_workers_as_a_shared_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_pool, "SHARE_ABOVE_BYTES", 0)  # every PDF counts as large
    pdf = three_page_pdf(photo=True)
    assert imaging.pdf_to_tiff(pdf) == imaging.pdf_to_tiff(pdf, parallel=False)


@pytest.mark.usefixtures("two_processes")
def test_one_or_two_pages_are_drawn_without_starting_the_pool() -> None:
    render_pool.shutdown()
    assert len(imaging.read_tiff(imaging.pdf_to_tiff(_pages(2)))) == 2
    assert render_pool.worker_pids() == []
    assert len(imaging.read_tiff(imaging.pdf_to_tiff(_pages(3)))) == 3
    assert len(render_pool.worker_pids()) == 2


@pytest.mark.usefixtures("two_processes")
def test_a_killed_worker_fails_that_fax_clearly_and_the_next_one_renders() -> None:
    pdf = _pages(6)
    expected = imaging.pdf_to_tiff(pdf, parallel=False)
    assert imaging.pdf_to_tiff(pdf) == expected
    workers = render_pool.worker_pids()
    assert len(workers) == 2
    for pid in workers:
        os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer would
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(FaxError, match="rendering process stopped"):
        imaging.pdf_to_tiff(pdf)
    assert imaging.pdf_to_tiff(pdf) == expected
    assert set(render_pool.worker_pids()).isdisjoint(workers)


@pytest.mark.usefixtures("two_processes")
def test_shutting_the_pool_down_leaves_no_process() -> None:
    imaging.pdf_to_tiff(_pages(3))
    workers = render_pool.worker_pids()
    assert len(workers) == 2
    render_pool.shutdown()
    assert render_pool.worker_pids() == []
    assert not [pid for pid in workers if _alive(pid)]


def test_a_program_that_used_the_pool_exits_at_once_and_leaves_no_process() -> None:
    program = (
        "from inkless.fax import imaging, render_pool\n"
        "from tests.helpers.faxdocs import three_page_pdf\n"
        "render_pool.configure(2)\n"
        "print(len(imaging.read_tiff(imaging.pdf_to_tiff(three_page_pdf()))))\n"
        "print(*render_pool.worker_pids())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    pages, pids = done.stdout.splitlines()
    assert pages == "3" and len(pids.split()) == 2
    assert not [pid for pid in map(int, pids.split()) if _alive(pid)]


def test_the_workers_of_a_killed_process_end_too() -> None:
    # kill -9 of a server stops nothing cleanly: its workers notice they were left and end within seconds.
    program = (
        "import time\n"
        "from inkless.fax import imaging, render_pool\n"
        "from tests.helpers.faxdocs import three_page_pdf\n"
        "render_pool.configure(2)\n"
        "imaging.pdf_to_tiff(three_page_pdf())\n"
        "print(*render_pool.worker_pids(), flush=True)\n"
        "time.sleep(300)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    with subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          text=True) as server:
        try:
            assert server.stdout is not None
            pids = [int(pid) for pid in server.stdout.readline().split()]
            assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        finally:
            server.kill()
    deadline = time.monotonic() + 10 * render_pool.PARENT_WATCH_S + 20
    while [pid for pid in pids if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if _alive(pid)]


def test_a_program_that_renders_from_unguarded_top_level_code_is_told_why(tmp_path: Path) -> None:
    # Spawned workers import the main module again; unguarded, it would start pools of its own.
    script = tmp_path / "fax_it.py"
    script.write_text(
        "from inkless.fax import imaging, render_pool\n"
        "from tests.helpers.faxdocs import three_page_pdf\n"
        "render_pool.configure(2)\n"
        "imaging.pdf_to_tiff(three_page_pdf())\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "FaxError: the fax rendering processes could not start" in done.stderr
    assert "if __name__ == '__main__'" in done.stderr


def test_opening_a_node_sets_its_pool_size(settings: Settings) -> None:
    # Pages are drawn by more than the fax service (the spool, cover pages, previews): the node sets the size.
    from inkless.app import init_node

    node = init_node(dataclasses.replace(settings, fax_render_processes=1))
    try:
        assert render_pool.processes() == 1
        assert not render_pool.worker_pids()
    finally:
        node.close()
        render_pool.configure(0)
