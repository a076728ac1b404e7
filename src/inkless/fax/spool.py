"""The ``spool`` line: a watched folder shared with a multifunction printer or an external fax server.

Layout under ``fax_spool_dir``::

    in/           received faxes dropped by the device: NAME.tif / NAME.tiff / NAME.pdf,
                  optionally NAME.json with {"calling_number", "called_number", "sub_address",
                  "remote_ident", "bit_rate", "ecm", "duration_s", "received_at"}.
                  Writers create files under a name starting with "." or ending in ".part"
                  and rename them when complete; the sidecar is renamed in before the image.
    processing/   a file being taken in (moved here atomically by rename, so two nodes never
                  take the same file)
    done/         taken in and handed to the fax service
    failed/       could not be read (NAME.error.txt says why); nothing else was affected
    out/          outbound jobs for the external fax server: JOB.tif (TIFF-F, header stamped)
                  and then JOB.json {"job", "number", "ident", "ecm", "created_at"}; the server
                  answers with JOB.result.json {"success", "t30_code", "t30_text", "pages",
                  "bit_rate", "ecm", "compression", "duration_s", "remote_ident"} or
                  {"answer": "busy" | "no answer"}.
    out/expired/  jobs withdrawn because no result came within the dial timeout
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inkless import timefmt
from inkless.clock import Clock, SystemClock
from inkless.errors import FaxError
from inkless.fax import header as fax_header
from inkless.fax import imaging
from inkless.fax.line import BUSY, DEFAULT_DIAL_TIMEOUT_S, NO_ANSWER, IncomingCallHandler, register_line
from inkless.fax.model import CallResult

if TYPE_CHECKING:
    from inkless.config import Settings

log = logging.getLogger("inkless.fax.spool")

INBOUND_SUFFIXES = (".tif", ".tiff", ".pdf")
POLL_SECONDS = 1.0
MAX_SIDECAR_BYTES = 16 * 1024


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _text(value: Any) -> str | None:
    return str(value)[:64] if value not in (None, "") else None


class SpoolLine:
    """A FaxLine backed by a folder: inbound files are picked up, outbound jobs are written out."""

    name = "spool"

    def __init__(self, spool_dir: Path, *, ident: str = "", poll_seconds: float = POLL_SECONDS,
                 clock: Clock | None = None, timezone: tzinfo = timefmt.TOKYO) -> None:
        # The header line shows the office's time of the call (Tokyo), whatever the server's TZ is.
        self.clock: Clock = clock or SystemClock()
        self.timezone = timezone
        self.dir = spool_dir
        self.ident = ident
        self.poll_seconds = poll_seconds
        for sub in ("in", "processing", "done", "failed", "out", "out/expired"):
            (spool_dir / sub).mkdir(parents=True, exist_ok=True)
        self._handler: IncomingCallHandler | None = None
        self._stop = threading.Event()
        self._hung_up = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ inbound

    def listen(self, handler: IncomingCallHandler) -> None:
        """Watch ``in/`` in a background thread; each file taken in goes to ``handler``."""
        self._handler = handler
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="fax-spool", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the watcher must survive a bad file or a full disk
                log.exception("spool line %s: polling failed", self.dir)
            self._stop.wait(self.poll_seconds)

    def poll_once(self, handler: IncomingCallHandler | None = None) -> int:
        """Take in every complete file now in ``in/``; returns how many were handed on."""
        handler = handler or self._handler
        if handler is None:
            raise FaxError("spool line: no handler to give received faxes to")
        taken = 0
        for path in sorted((self.dir / "in").iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in INBOUND_SUFFIXES:
                continue
            claimed = self.dir / "processing" / path.name
            try:
                os.rename(path, claimed)  # atomic: whoever renames first owns the file
            except FileNotFoundError:
                continue
            sidecar = path.with_suffix(".json")
            claimed_sidecar: Path | None = None
            if sidecar.exists():
                claimed_sidecar = self.dir / "processing" / sidecar.name
                with contextlib.suppress(FileNotFoundError):
                    os.rename(sidecar, claimed_sidecar)
            try:
                result = self._take_in(claimed, claimed_sidecar)
            except FaxError as exc:
                log.warning("spool line: %s could not be taken in: %s", path.name, exc)
                self._finish(claimed, claimed_sidecar, "failed", error=str(exc))
                continue
            try:
                handler(result)
            except Exception as exc:  # the service could not take it: keep the file where people look
                log.exception("spool line: the fax service refused %s", path.name)
                self._finish(claimed, claimed_sidecar, "failed", error=f"not taken in: {exc}")
                continue
            self._finish(claimed, claimed_sidecar, "done")
            taken += 1
        return taken

    def _finish(self, image: Path, sidecar: Path | None, where: str, error: str | None = None) -> None:
        target = self.dir / where
        os.replace(image, target / image.name)
        if sidecar is not None and sidecar.exists():
            os.replace(sidecar, target / sidecar.name)
        if error is not None:
            (target / f"{image.name}.error.txt").write_text(error + "\n", encoding="utf-8")

    def _take_in(self, image: Path, sidecar: Path | None) -> CallResult:
        facts: dict[str, Any] = {}
        if sidecar is not None and sidecar.exists():
            raw = sidecar.read_bytes()
            if len(raw) > MAX_SIDECAR_BYTES:
                raise FaxError(f"sidecar {sidecar.name} is larger than {MAX_SIDECAR_BYTES} bytes")
            try:
                facts = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise FaxError(f"sidecar {sidecar.name} is not JSON: {exc}") from None
            if not isinstance(facts, dict):
                raise FaxError(f"sidecar {sidecar.name} is not a JSON object")
        data = image.read_bytes()
        if image.suffix.lower() == ".pdf":
            tiff = imaging.pdf_to_tiff(data)
        else:
            pages = imaging.read_tiff(data)  # validates: dimensions, bombs, damage
            tiff = imaging.join_pages(pages)
        pages = imaging.read_tiff(tiff)
        started = datetime.fromtimestamp(image.stat().st_mtime, UTC)
        if facts.get("received_at"):
            with contextlib.suppress(ValueError, TypeError):
                started = datetime.fromisoformat(str(facts["received_at"]))
        return CallResult(
            success=True,
            t30_code=0,
            t30_text="received by the external fax server",
            pages_transferred=len(pages),
            pages_expected=None,
            remote_ident=_text(facts.get("remote_ident")),
            local_ident=self.ident,
            calling_number=_text(facts.get("calling_number")),
            called_number=_text(facts.get("called_number")),
            sub_address=_text(facts.get("sub_address")),
            bit_rate=int(facts.get("bit_rate") or 0),
            ecm=bool(facts.get("ecm", False)),
            compression="T.6 MMR",
            bad_rows=int(facts.get("bad_rows") or 0),
            duration_s=float(facts.get("duration_s") or 0.0),
            started_at=started,
            received_tiff=tiff,
        )

    # ------------------------------------------------------------------ outbound

    def dial(
        self,
        number: str,
        tiff: bytes,
        *,
        ident: str,
        header: str | None,
        ecm: bool = True,
        timeout_s: float = DEFAULT_DIAL_TIMEOUT_S,
    ) -> CallResult:
        """Write the job to ``out/`` and wait up to ``timeout_s`` for the external server's result."""
        started = self.clock.now()
        if header:
            tiff = fax_header.stamp_tiff(tiff, header, timefmt.to_local(started, self.timezone))
        pages = len(imaging.read_tiff(tiff))
        job = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        out = self.dir / "out"
        _write_atomic(out / f"{job}.tif", tiff)
        _write_atomic(out / f"{job}.json", json.dumps({
            "job": job, "number": number, "ident": ident, "ecm": ecm, "pages": pages,
            "created_at": started.isoformat(),
        }, ensure_ascii=False).encode())
        result_path = out / f"{job}.result.json"
        deadline = time.monotonic() + timeout_s
        while not result_path.exists():
            if self._hung_up.is_set():
                # Withdraw the job if the external server has not taken it yet; either way stop waiting.
                for name in (f"{job}.json", f"{job}.tif"):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(out / name, out / "expired" / name)
                raise FaxError(f"spool line: hung up while waiting for job {job}: this process is stopping")
            if time.monotonic() >= deadline:
                for name in (f"{job}.json", f"{job}.tif"):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(out / name, out / "expired" / name)
                raise FaxError(f"spool line: the external fax server reported no result for job {job}"
                               f" within {timeout_s:.0f} s")
            time.sleep(min(self.poll_seconds, 0.5))
        try:
            facts = json.loads(result_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FaxError(f"spool line: result of job {job} is not JSON: {exc}") from None
        if facts.get("answer") in (BUSY, NO_ANSWER):
            raise FaxError(str(facts["answer"]))
        code = int(facts.get("t30_code", -1))
        sent = int(facts.get("pages", 0))
        return CallResult(
            success=bool(facts.get("success")) and code == 0 and sent == pages,
            t30_code=code,
            t30_text=str(facts.get("t30_text") or ""),
            pages_transferred=sent,
            pages_expected=pages,
            remote_ident=_text(facts.get("remote_ident")),
            local_ident=ident,
            calling_number=ident or None,
            called_number=number,
            sub_address=None,
            bit_rate=int(facts.get("bit_rate") or 0),
            ecm=bool(facts.get("ecm", ecm)),
            compression=str(facts.get("compression") or ""),
            bad_rows=int(facts.get("bad_rows") or 0),
            duration_s=float(facts.get("duration_s") or 0.0),
            started_at=started,
        )

    def hang_up(self) -> None:
        """Stop waiting for the external server's results of jobs in progress."""
        self._hung_up.set()

    def close(self) -> None:
        """Stop watching the folder."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


def _from_settings(settings: Settings, clock: Clock | None) -> SpoolLine:
    return SpoolLine(settings.fax_spool_dir, ident=settings.fax_ident, clock=clock, timezone=settings.tz)


register_line("spool", _from_settings)
