"""The software remote fax machine: calls a node's loopback line, or answers the node's outbound calls.

Both directions go through the real modem path: spandsp audio terminals on each
side, V.21/V.27ter/V.29/V.17 modulation, T.30 with ECM, over the loopback socket.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import asdict
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from inkless import timefmt
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
    when: datetime | None = None,
    timezone: tzinfo = timefmt.TOKYO,
) -> CallResult:
    """Call the node on ``socket_path`` as a remote fax machine and send ``document`` (PDF or TIFF).

    ``header`` is stamped with ``when`` (default: now) in ``timezone``, as a Japanese machine would.
    """
    tiff = imaging.document_to_tiff(document, fine=fine)
    if header:
        at = timefmt.to_local(when or datetime.now(UTC), timezone)
        tiff = fax_header.stamp_tiff(tiff, header, at)
    ident = tsi if tsi is not None else (from_number or "")
    setup = CallSetup(called_number=to_number, calling_number=from_number, sub_address=sub_address)
    options = TerminalOptions(ident=ident, ecm=ecm, sub_address=sub_address, compressions=compressions)
    return place_call(
        socket_path, setup, tiff, options=options, timeout_s=timeout_s, hangup_after_page=hangup_after_page
    )


CALL_FILE_RE = re.compile(r"^call-(\d+)\.(?:json|tif)$")


def next_call_number(out_dir: Path) -> int:
    """One more than the highest ``call-NNN`` file in ``out_dir`` (0 for an empty or missing folder)."""
    try:
        names = [p.name for p in out_dir.iterdir()]
    except FileNotFoundError:
        return 0
    numbers = [int(m.group(1)) for m in map(CALL_FILE_RE.match, names) if m]
    return max(numbers, default=-1) + 1


class AnsweringRemote:
    """A remote fax machine that answers calls on ``socket_path`` and files what it receives in ``out_dir``.

    It answers "busy" to the first ``busy`` calls, and with ``hangup_after_page``
    drops each call part-way into the page after that one. ``ecm`` and
    ``compressions`` say what it offers (an old machine: no ECM, T.4 1D only). Every call leaves
    ``call-NNN.json`` (the facts, or the busy signal) and, when pages came,
    ``call-NNN.tif`` in ``out_dir``. Numbering goes on after the highest ``call-NNN`` already in
    ``out_dir`` (a restarted remote keeps what earlier runs received), and a file is never
    overwritten: each is created exclusively, skipping numbers another process took meanwhile.
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
        self._files_lock = threading.Lock()
        self._answerer = Answerer(socket_path, self._on_call, self._decide)

    def _decide(self, setup: CallSetup, n: int) -> str:
        if n < self.busy:
            self._write({"answer": BUSY, "called_number": setup.called_number,
                        "calling_number": setup.calling_number})
            with self.finished:
                self.finished.notify_all()
            return BUSY
        return "ok"

    def _write(self, facts: dict[str, Any], tiff: bytes | None = None) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self._files_lock:
            number = next_call_number(self.out_dir)
            while True:
                # Exclusive create: a number already taken (by another remote on the same folder) is skipped.
                try:
                    fd = os.open(self.out_dir / f"call-{number:03d}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    number += 1
                    continue
                break
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(facts, ensure_ascii=False, indent=2) + "\n")
        if tiff is not None:
            with (self.out_dir / f"call-{number:03d}.tif").open("xb") as image:
                image.write(tiff)

    def _on_call(self, conn: socket.socket, setup: CallSetup) -> None:
        result = answer_call(
            conn, setup, options=self.options, hangup_after_page=self.hangup_after_page
        )
        self._write({"answer": "ok", **result_facts(result)}, result.received_tiff)
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
