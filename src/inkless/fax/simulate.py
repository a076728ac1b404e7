"""The software remote fax machine: calls a node's loopback line, or answers the node's outbound calls.

Both directions go through the real modem path: spandsp audio terminals on each
side, V.21/V.27ter/V.29/V.17 modulation, T.30 with ECM, over the loopback socket.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from inkless.fax import header as fax_header
from inkless.fax import imaging
from inkless.fax.line import BUSY, DEFAULT_DIAL_TIMEOUT_S
from inkless.fax.loopback import Answerer, answer_call, place_call
from inkless.fax.model import CallResult, CallSetup
from inkless.fax.terminal import ALL_COMPRESSIONS, TerminalOptions


def result_facts(result: CallResult) -> dict[str, Any]:
    """A CallResult as JSON-ready facts (without the received image)."""
    facts = asdict(result)
    facts.pop("received_tiff", None)
    facts["started_at"] = result.started_at.isoformat()
    return facts


def send_document(
    socket_path: Path,
    to_number: str,
    document: bytes,
    *,
    from_number: str | None = None,
    tsi: str | None = None,
    sub_address: str | None = None,
    header: str | None = None,
    ecm: bool = True,
    fine: bool = True,
    hangup_after_page: int | None = None,
    timeout_s: float = DEFAULT_DIAL_TIMEOUT_S,
    compressions: int = ALL_COMPRESSIONS,
) -> CallResult:
    """Call the node on ``socket_path`` as a remote fax machine and send ``document`` (PDF or TIFF)."""
    tiff = imaging.document_to_tiff(document, fine=fine)
    if header:
        tiff = fax_header.stamp_tiff(tiff, header, datetime.now().astimezone())
    ident = tsi if tsi is not None else (from_number or "")
    setup = CallSetup(called_number=to_number, calling_number=from_number, sub_address=sub_address)
    options = TerminalOptions(ident=ident, ecm=ecm, sub_address=sub_address, compressions=compressions)
    return place_call(
        socket_path, setup, tiff, options=options, timeout_s=timeout_s, hangup_after_page=hangup_after_page
    )


class AnsweringRemote:
    """A remote fax machine that answers calls on ``socket_path`` and files what it receives in ``out_dir``.

    It answers "busy" to the first ``busy`` calls, and with ``hangup_after_page``
    drops each call part-way into the page after that one. ``ecm`` and
    ``compressions`` say what it offers (an old machine: no ECM, T.4 1D only). Every call leaves
    ``call-NNN.json`` (the facts, or the busy signal) and, when pages came,
    ``call-NNN.tif`` in ``out_dir``.
    """

    def __init__(
        self,
        socket_path: Path,
        out_dir: Path,
        *,
        busy: int = 0,
        hangup_after_page: int | None = None,
        ident: str = "REMOTE",
        ecm: bool = True,
        compressions: int = ALL_COMPRESSIONS,
    ) -> None:
        self.out_dir = out_dir
        self.options = TerminalOptions(ident=ident, ecm=ecm, compressions=compressions)
        self.busy = busy
        self.hangup_after_page = hangup_after_page
        self.ident = ident
        self.results: list[CallResult] = []
        self.finished = threading.Condition()
        self._local = threading.local()
        self._answerer = Answerer(socket_path, self._on_call, self._decide)

    def _decide(self, setup: CallSetup, n: int) -> str:
        self._local.n = n  # the same thread goes on to _on_call for this call
        if n < self.busy:
            self._write(n, {"answer": BUSY, "called_number": setup.called_number,
                            "calling_number": setup.calling_number})
            with self.finished:
                self.finished.notify_all()
            return BUSY
        return "ok"

    def _write(self, n: int, facts: dict[str, Any], tiff: bytes | None = None) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if tiff is not None:
            (self.out_dir / f"call-{n:03d}.tif").write_bytes(tiff)
        (self.out_dir / f"call-{n:03d}.json").write_text(json.dumps(facts, ensure_ascii=False, indent=2) + "\n")

    def _on_call(self, conn: socket.socket, setup: CallSetup) -> None:
        n: int = self._local.n
        result = answer_call(
            conn, setup, options=self.options, hangup_after_page=self.hangup_after_page
        )
        self._write(n, {"answer": "ok", **result_facts(result)}, result.received_tiff)
        with self.finished:
            self.results.append(result)
            self.finished.notify_all()

    @property
    def calls(self) -> int:
        """Calls offered so far (busy ones included)."""
        return self._answerer.calls_started

    def start(self) -> AnsweringRemote:
        """Start answering in background threads."""
        self._answerer.start()
        return self

    def wait_for_results(self, count: int, timeout_s: float) -> list[CallResult]:
        """Block until ``count`` answered calls have finished (or the timeout passes)."""
        with self.finished:
            self.finished.wait_for(lambda: len(self.results) >= count, timeout=timeout_s)
            return list(self.results)

    def stop(self) -> None:
        """Stop answering and remove the socket."""
        self._answerer.stop()

    def __enter__(self) -> AnsweringRemote:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
