"""The software remote fax machine keeps what it received: a restarted ``--answer`` never overwrites a call."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.fax import imaging
from inkless.fax.loopback import LoopbackLine
from inkless.fax.simulate import AnsweringRemote
from tests.helpers.faxdocs import three_page_pdf


@pytest.fixture
def sockets() -> Iterator[Path]:
    # Unix socket paths are short: not under pytest's long tmp_path.
    folder = Path(tempfile.mkdtemp(prefix="inksim-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _call(sockets: Path, out: Path, ident: str) -> None:
    line = LoopbackLine(sockets / "own.sock", sockets / "remote.sock")
    tiff = imaging.document_to_tiff(three_page_pdf(), fine=False)
    with AnsweringRemote(sockets / "remote.sock", out) as remote:
        result = line.dial("03-5253-8111", tiff, ident=ident, header=None)
        assert result.success, result
        assert remote.wait_for_results(1, timeout_s=120)


def test_a_restarted_answering_remote_continues_the_numbering(sockets: Path, tmp_path: Path) -> None:
    out = tmp_path / "received"
    _call(sockets, out, "FIRST")
    first = (out / "call-000.tif").read_bytes()
    assert json.loads((out / "call-000.json").read_text())["remote_ident"].strip() == "FIRST"
    # Someone left a later-numbered call in the folder (an earlier, longer session): numbering goes on after it.
    shutil.copy(out / "call-000.json", out / "call-006.json")

    _call(sockets, out, "SECOND")  # the same folder, a new process would start counting at 0 again

    assert (out / "call-000.tif").read_bytes() == first  # the first fax is still there, untouched
    assert json.loads((out / "call-000.json").read_text())["remote_ident"].strip() == "FIRST"
    assert json.loads((out / "call-007.json").read_text())["remote_ident"].strip() == "SECOND"
    assert (out / "call-007.tif").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        "call-000.json", "call-000.tif", "call-006.json", "call-007.json", "call-007.tif"]
