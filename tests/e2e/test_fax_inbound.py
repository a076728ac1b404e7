"""Both directions through a running ``inkless serve``: a fax sent by ``inkless fax simulate`` lands, searchable,
in the right inbox; a fax queued with ``inkless fax send`` is dialled by the node's workers, retried after a
busy signal, and received by a simulated remote with the header line on its pages."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from inkless.config import load_settings
from inkless.db.tables_fax import fax_calls
from inkless.fax import imaging
from tests.e2e.conftest import INKLESS, ServedNode
from tests.helpers.faxdocs import JAPANESE_PHRASE, three_page_pdf

ARRIVAL_LIMIT_SECONDS = 240


# One node, one backend for both directions: a node start costs seconds, and both backends are
# covered by tests/integration/test_fax_service.py.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_fax_both_ways_through_a_running_node(served_node: ServedNode, tmp_path: Path) -> None:
    inbound = tmp_path / "inbound"
    outbound = tmp_path / "outbound"
    inbound.mkdir()
    outbound.mkdir()
    _simulated_fax_arrives_in_the_office_inbox_as_a_searchable_pdf(served_node, inbound)
    _fax_send_is_dialled_by_the_workers_retried_after_busy_and_stamped(served_node, outbound)


def _simulated_fax_arrives_in_the_office_inbox_as_a_searchable_pdf(served_node: ServedNode, tmp_path: Path) -> None:
    source = three_page_pdf()
    document = tmp_path / "notice.pdf"
    document.write_bytes(source)
    socket_path = served_node.data / "fax" / "loopback.sock"
    deadline = time.monotonic() + ARRIVAL_LIMIT_SECONDS
    while not socket_path.exists():  # the workers open the line shortly after start-up
        assert time.monotonic() < deadline, served_node.log.read_text()
        time.sleep(0.2)

    # The DID is civil-affairs' published fax number (demo data): that is the only routing there is.
    sent = served_node.cli("fax", "simulate", "--to", "03-3580-4111", str(document),
                           "--from-number", "06-6941-0351", "--tsi", "OSAKA PREF")
    assert sent.returncode == 0, sent.stderr

    # Wait in the database (cheap) until the node has converted, OCRed and deposited the fax.
    settings = load_settings(served_node.data, env=served_node.env)
    engine = sa.create_engine(settings.database_url)
    try:
        while True:
            with engine.connect() as conn:
                status = conn.execute(sa.select(fax_calls.c.status).where(fax_calls.c.direction == "RECV")).scalar()
            if status not in (None, "routed"):
                break
            assert time.monotonic() < deadline, served_node.log.read_text()
            time.sleep(0.5)
    finally:
        engine.dispose()
    assert status == "delivered", served_node.log.read_text()
    listing = served_node.cli("inbox", "civil-affairs", "--as", "tanaka", "--json")
    assert listing.returncode == 0, listing.stderr
    [item] = [i for i in json.loads(listing.stdout) if i["source"] == "fax"]
    assert item["authenticated"] is False and "06-6941-0351" in item["from"]
    # Nothing went to the other offices.
    other = served_node.cli("inbox", "criminal-affairs", "--as", "takahashi", "--json")
    assert other.returncode == 0 and json.loads(other.stdout) == []

    out = tmp_path / "export"
    exported = served_node.cli("message", "export", item["message_id"], "--out", str(out), "--as", "tanaka")
    assert exported.returncode == 0, exported.stderr
    [pdf] = sorted(out.rglob("*.pdf"))

    # OCR: page 1 is searchable for the Japanese phrase (Tesseract may put spaces between characters).
    page1 = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, check=True)
    assert JAPANESE_PHRASE in re.sub(r"\s+", "", page1.stdout.decode())

    # The page images are the fax data as received: the same bitmaps the remote rendered and sent.
    pages = tmp_path / "pages"
    pages.mkdir()
    listed = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, check=True).stdout.decode()
    assert listed.count("ccitt") == 3
    subprocess.run(["pdfimages", "-tiff", str(pdf), str(pages / "p")], check=True)
    from PIL import Image

    received = [Image.open(p).convert("1") for p in sorted(pages.glob("p-*.tif"))]
    sent_pages = imaging.tiff_images(imaging.document_to_tiff(source))
    assert len(received) == len(sent_pages) == 3
    for theirs, ours in zip(received, sent_pages, strict=True):
        assert imaging.pixel_difference(theirs, ours) < 0.01

    log = served_node.cli("fax", "log")
    assert log.returncode == 0, log.stderr
    [line] = [f.split("\t") for f in log.stdout.splitlines() if "\tRECV\t" in f]
    assert (line[1], line[5], line[6], line[9], line[10], line[16]) == (
        "RECV", "civil-affairs", "06-6941-0351", "OSAKA PREF", "3", "delivered")


def _answering_remote(node: ServedNode, out: Path, busy: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        remote = subprocess.Popen(
            [INKLESS, "fax", "simulate", "--answer", "--out", str(out), "--busy", str(busy), "--calls", "1",
             "--tsi", "OSAKA PREF", "--data", str(node.data)],
            env=node.env, stdout=sink, stderr=subprocess.STDOUT,
        )
    socket_path = node.data / "fax" / "remote.sock"
    deadline = time.monotonic() + 60
    while not socket_path.exists():
        assert remote.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return remote


def _fax_send_is_dialled_by_the_workers_retried_after_busy_and_stamped(
    served_node: ServedNode, tmp_path: Path
) -> None:
    source = three_page_pdf()
    document = tmp_path / "notice.pdf"
    document.write_bytes(source)
    out = tmp_path / "remote"
    remote = _answering_remote(served_node, out, busy=1, log=tmp_path / "remote.log")
    try:
        queued = served_node.cli("fax", "send", "--from", "civil-affairs", "--to", "06-6941-0351", str(document),
                                 "--as", "tanaka", "--tries", "3", "--interval", "1s", "--kill-time", "10m")
        assert queued.returncode == 0, queued.stderr
        assert remote.wait(timeout=ARRIVAL_LIMIT_SECONDS) == 0
    finally:
        if remote.poll() is None:
            remote.kill()
            remote.wait()
    busy = json.loads((out / "call-000.json").read_text())
    answered = json.loads((out / "call-001.json").read_text())
    assert busy["answer"] == "busy" and answered["pages_transferred"] == 3 and answered["t30_code"] == 0
    # The pages arrived as rendered, with the header line (sender, number, page n/m) across the top.
    received = imaging.tiff_images((out / "call-001.tif").read_bytes())
    rendered = imaging.tiff_images(imaging.document_to_tiff(source))
    for theirs, ours in zip(received, rendered, strict=True):
        band = (0, 0, theirs.width, 30)
        assert imaging.pixel_difference(theirs.crop(band), ours.crop(band)) > 0.005  # the stamped header
        body = (0, 40, theirs.width, theirs.height)
        assert imaging.pixel_difference(theirs.crop(body), ours.crop(body)) < 0.01

    deadline = time.monotonic() + 60
    while True:  # the worker records the outcome right after the call
        jobs = served_node.cli("fax", "jobs", "--json")
        assert jobs.returncode == 0, jobs.stderr
        [job] = json.loads(jobs.stdout)
        if job["state"] == "done":
            break
        assert time.monotonic() < deadline, served_node.log.read_text()
        time.sleep(1)
    assert job["tries"] == 2 and job["last_code"] == 0
    log = served_node.cli("fax", "log")
    sends = [f.split("\t") for f in log.stdout.splitlines() if "\tSEND\t" in f]
    assert [(s[16], s[18]) for s in sends] == [("retry", "busy"), ("done", "OK")]
    report = tmp_path / "report.pdf"
    assert served_node.cli("fax", "report", str(job["id"]), "--out", str(report)).returncode == 0
    text = subprocess.run(["pdftotext", str(report), "-"], capture_output=True, check=True).stdout.decode()
    assert "送信成功" in text and "06-6941-0351" in text
