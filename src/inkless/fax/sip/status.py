"""What the SIP line shows and keeps outside its process.

* The line status file (``DATA/fax/sip-status.json``), rewritten every second by the process
  that runs the line, read by ``inkless fax line status`` and the FAX設定 page.
* The softmodem memory: remote numbers whose T.38 failed start their next call in G.711
  (table ``fax_sip_softmodem``).
* Audit events for refused INVITEs (untrusted sources).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from inkless.fax.sip.register import RegistrationState

if TYPE_CHECKING:
    from inkless.config import Settings
    from inkless.fax.sip.call import SipCall
    from inkless.fax.sip.message import SipMessage
    from inkless.fax.sip.transaction import Address

log = logging.getLogger("inkless.fax.sip")

# A status file older than this was left by a process that is gone.
STALE_AFTER_S = 10.0


@dataclass
class CallStatus:
    """One call in progress, as the status shows it."""

    call_id: str
    direction: str
    number: str | None
    started_at: datetime
    media: str | None = None
    phase: str | None = None
    page: int = 0
    pages: int | None = None
    bit_rate: int = 0
    gateway: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def refreshed(self, call: SipCall) -> dict[str, Any]:
        """The call as JSON, with the media session's latest progress."""
        progress = getattr(call.session, "progress", None)
        media = getattr(call.session, "media", None) or (call.media.kind if call.media else None)
        data = {
            "call_id": self.call_id, "direction": self.direction, "number": self.number,
            "started_at": self.started_at.isoformat(),
            "media": "t38" if media == "t38" else ("g711" if media else None),
            "gateway": call.gateway,
            "phase": _attr(progress, "phase"), "page": _attr(progress, "pages", default=0),
            "pages": _attr(progress, "pages_expected"), "bit_rate": _attr(progress, "bit_rate", default=0),
            "tones": list(getattr(progress, "tones", ()) or ()),
        }
        return data


def _attr(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value if isinstance(value, (int, float, str)) else str(value)
    return default


class LineStatusFile:
    """Writes and reads the status file atomically (write, then rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.refusals = 0
        self.last_refusal: dict[str, Any] | None = None
        self._audit: Any = None

    def write(self, registration: RegistrationState, calls: list[dict[str, Any]], *, listen: str,
              malformed: int) -> None:
        reg = asdict(registration)
        for key in ("expires_at", "registered_at"):
            reg[key] = reg[key].isoformat() if reg[key] else None
        data = {
            "line": "sip", "pid": os.getpid(), "listen": listen, "updated_at": datetime.now(UTC).isoformat(),
            "registration": reg, "calls": calls, "malformed_datagrams": malformed,
            "refused_invites": self.refusals, "last_refusal": self.last_refusal,
        }
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("cannot write the SIP line status %s: %s", self.path, exc)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def set_audit(self, audit: Any) -> None:
        self._audit = audit

    def audit_refusal(self, source: Address, request: SipMessage) -> None:
        self.refusals += 1
        self.last_refusal = {"source": f"{source[0]}:{source[1]}", "at": datetime.now(UTC).isoformat(),
                             "call_id": request.call_id[:128]}
        if self._audit is not None:
            self._audit("fax.sip_refused", {"source": source[0], "port": source[1], "status": 403,
                                            "reason": "untrusted source", "call_id": request.call_id[:128]})


def read_status(data_dir: Path) -> dict[str, Any]:
    """The line status for ``inkless fax line status`` (``running: false`` when no process runs the line)."""
    path = data_dir / "fax" / "sip-status.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"line": "sip", "running": False, "registration": None, "calls": []}
    age = time.time() - path.stat().st_mtime
    data["running"] = age < STALE_AFTER_S
    return data


class SoftmodemMemory:
    """Remote numbers that need G.711 (their T.38 failed), kept in the node's database."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._db: Any = None
        self._cache: dict[str, bool] = {}
        self._warned = False

    def _database(self) -> Any:
        if self._db is None:
            from inkless.db.engine import Database

            self._db = Database(self._settings.database_url)
        return self._db

    def remembered(self, number: str) -> bool:
        if not number:
            return False
        from inkless.db.tables_fax import fax_sip_softmodem

        try:
            with self._database().begin() as conn:
                row = conn.execute(select(fax_sip_softmodem.c.number).where(
                    fax_sip_softmodem.c.number == number[:64])).first()
        except Exception as exc:  # no memory is no reason to refuse a call
            if not self._warned:  # once, not once per call
                self._warned = True
                log.warning("softmodem memory unavailable (kept in memory only): %s", exc)
            return self._cache.get(number, False)
        return row is not None

    def remember(self, number: str, reason: str) -> None:
        if not number:
            return
        from inkless.db.tables_fax import fax_sip_softmodem

        self._cache[number] = True
        try:
            with self._database().begin() as conn:
                conn.execute(delete(fax_sip_softmodem).where(fax_sip_softmodem.c.number == number[:64]))
                conn.execute(insert(fax_sip_softmodem).values(number=number[:64], reason=reason[:200],
                                                              learned_at=datetime.now(UTC)))
        except Exception as exc:
            log.warning("cannot remember %s for the softmodem: %s", number, exc)

    def audit(self, action: str, details: dict[str, Any]) -> None:
        """Record an audit event of the line (actor ``system``)."""
        from inkless.audit.log import AuditLog
        from inkless.audit.model import AuditEvent
        from inkless.clock import SystemClock

        try:
            with self._database().begin() as conn:
                AuditLog(SystemClock()).record(conn, AuditEvent(actor="system", action=action, object_type="fax_line",
                                                                object_id="sip", details=details))
        except Exception as exc:  # an audit failure is logged, the line goes on
            log.warning("cannot record %s: %s", action, exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
