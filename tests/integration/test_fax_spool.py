"""The spool line: files dropped by a multifunction printer or HylaFAX are taken in; jobs go out as TIFF-F."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from inkless.errors import FaxError
from inkless.fax import imaging
from inkless.fax.model import CallResult
from inkless.fax.spool import SpoolLine
from tests.helpers.faxdocs import three_page_pdf


def test_dropped_files_are_taken_in_and_bad_ones_set_aside(tmp_path: Path) -> None:
    line = SpoolLine(tmp_path / "spool", ident="0312345678")
    pdf = three_page_pdf()
    tiff = imaging.pdf_to_tiff(pdf, fine=False)
    inbox = line.dir / "in"
    (inbox / "fax0001.tif").write_bytes(tiff)
    (inbox / "fax0001.json").write_text(json.dumps({
        "calling_number": "0298765432", "called_number": "0312345678", "remote_ident": "TSUKUBA",
        "bit_rate": 9600, "ecm": True, "received_at": "2026-04-01T09:00:00+09:00",
    }))
    (inbox / "scan0002.pdf").write_bytes(pdf)
    (inbox / "broken.tif").write_bytes(tiff[: len(tiff) // 4])
    (inbox / "huge.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    (inbox / ".partial.tif").write_bytes(b"being written")
    taken: list[CallResult] = []
    assert line.poll_once(taken.append) == 2

    by_cid = {r.calling_number: r for r in taken}
    fax = by_cid["0298765432"]
    assert fax.success and fax.pages_transferred == 3 and fax.remote_ident == "TSUKUBA"
    assert fax.called_number == "0312345678" and fax.bit_rate == 9600 and fax.ecm
    assert fax.started_at.isoformat() == "2026-04-01T09:00:00+09:00"
    assert fax.received_tiff is not None
    assert [p.y_dpi for p in imaging.read_tiff(fax.received_tiff)] == [98, 98, 98]
    scan = by_cid[None]
    assert scan.pages_transferred == 3 and scan.received_tiff is not None

    assert sorted(p.name for p in (line.dir / "done").iterdir()) == ["fax0001.json", "fax0001.tif", "scan0002.pdf"]
    failed = sorted(p.name for p in (line.dir / "failed").iterdir())
    assert failed == ["broken.tif", "broken.tif.error.txt", "huge.tif", "huge.tif.error.txt"]
    assert "TIFF" in (line.dir / "failed" / "broken.tif.error.txt").read_text()
    assert sorted(p.name for p in inbox.iterdir()) == [".partial.tif"]  # left for its writer to finish
    assert list((line.dir / "processing").iterdir()) == []


def test_outbound_jobs_are_written_for_the_external_fax_server(tmp_path: Path) -> None:
    line = SpoolLine(tmp_path / "spool", poll_seconds=0.05)
    tiff = imaging.pdf_to_tiff(three_page_pdf())
    out = line.dir / "out"

    def external_server(answer: dict[str, object]) -> None:
        # Play HylaFAX: wait for the job file, check the TIFF-F, write the result.
        while not (jobs := sorted(out.glob("*[0-9a-f].json"))):
            threading.Event().wait(0.05)
        job = json.loads(jobs[0].read_text())
        tif = jobs[0].with_suffix(".tif")
        info = subprocess.run(["tiffinfo", str(tif)], capture_output=True, text=True, check=True).stdout
        assert info.count("Compression Scheme: CCITT Group 4") == job["pages"] == 3
        jobs[0].with_name(f"{job['job']}.result.json").write_text(json.dumps(answer))
        jobs[0].rename(out / "expired" / "seen.json")  # keep the glob from finding it again

    server = threading.Thread(target=external_server, args=({
        "success": True, "t30_code": 0, "t30_text": "OK", "pages": 3, "bit_rate": 14400, "ecm": True,
        "compression": "T.6 MMR", "duration_s": 61.5, "remote_ident": "REMOTE",
    },))
    server.start()
    result = line.dial("0399999999", tiff, ident="0312345678", header="法務省 民事局 03-1234-5678", timeout_s=60)
    server.join()
    assert result.success and result.pages_transferred == result.pages_expected == 3
    assert result.remote_ident == "REMOTE" and result.duration_s == 61.5

    server = threading.Thread(target=external_server, args=({"answer": "busy"},))
    server.start()
    with pytest.raises(FaxError, match=r"^busy$"):
        line.dial("0399999999", tiff, ident="0312345678", header=None, timeout_s=60)
    server.join()

    with pytest.raises(FaxError, match="reported no result"):
        line.dial("0399999999", tiff, ident="0312345678", header=None, timeout_s=0.2)
    assert len(list((out / "expired").glob("*.tif"))) == 1
