"""The fax call log and outbound jobs as domain types, and the xferfaxlog-style line format.

``inkless fax log`` prints one tab-separated line per call, oldest first, in this column order
(empty fields are empty strings, never missing, so every line has the same 22 columns):

 1. time        start of the call, ISO 8601 UTC
 2. direction   SEND or RECV
 3. call        call id (fax_calls.id)
 4. line        the line that carried it
 5. job         outbound job id (SEND) or empty
 6. office      office code (sender for SEND, recipient for RECV; empty if unroutable or blocked)
 7. remote      SEND: the number dialled; RECV: the calling number (CID)
 8. called      RECV: the number called (DID)
 9. subaddr     RECV: the T.30 sub-address
10. ident       the far end's station id (CSI for SEND, TSI for RECV)
11. pages       pages transferred
12. duration    line seconds, one decimal
13. bitrate     bits per second of the page transfer
14. ecm         ECM or -
15. compression T.6 MMR, T.4 2D MR, T.4 1D MH
16. badrows     bad rows received
17. status      SEND: done, retry, failed; RECV: delivered, routed, unroutable, blocked, failed, voice
18. code        T.30 result code (0 = OK; -1 = no fax session: busy, no answer)
19. reason      T.30 result text or the reason of the failure
20. media       g711 or t38 (SIP line; empty on loopback and spool)
21. call_id     the SIP Call-ID (SIP line)
22. gateway     the SIP gateway an outbound call went through (SIP line)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

LOG_COLUMNS = (
    "time", "direction", "call", "line", "job", "office", "remote", "called", "subaddr", "ident",
    "pages", "duration", "bitrate", "ecm", "compression", "badrows", "status", "code", "reason",
    "media", "call_id", "gateway",
)


@dataclass(frozen=True)
class FaxCallEntry:
    """One call in the log: a SEND attempt or a RECV, with its T.30 facts."""

    id: int
    direction: str
    line: str
    started_at: datetime
    duration_s: float
    remote_number: str | None
    called_number: str | None
    sub_address: str | None
    remote_ident: str | None
    local_ident: str | None
    pages: int
    pages_expected: int | None
    bit_rate: int
    ecm: bool
    compression: str
    bad_rows: int
    t30_code: int
    t30_text: str
    success: bool
    status: str
    office_code: str | None
    job_id: int | None
    attempt: int | None
    routed_by: str | None
    message_id: str | None
    has_pdf: bool
    has_report: bool
    resolved_by: str | None
    media: str | None = None
    call_id: str | None = None
    gateway: str | None = None


@dataclass(frozen=True)
class FaxJob:
    """An outbound fax and how far it got."""

    id: int
    office_code: str
    created_by: str
    number: str
    pages: int
    cover_page: bool
    classification: int
    state: str
    tries: int
    max_tries: int
    interval_s: int
    kill_at: datetime
    next_attempt_at: datetime
    last_code: int | None
    last_text: str | None
    origin: str
    outbox_ref: str | None
    created_at: datetime
    updated_at: datetime
    has_report: bool
    procedure_code: str | None = None


@dataclass(frozen=True)
class OfficeFaxSettings:
    """An office's fax choices: disaster fallback on or off, cover page by default."""

    office_code: str
    fallback_enabled: bool = False
    cover_page_default: bool = False


def _clean(value: object) -> str:
    # Tabs and newlines would break the one-line-per-call format; a TSI may contain anything.
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def log_line(entry: FaxCallEntry) -> str:
    """The tab-separated xferfaxlog line of one call (see the module docstring for the columns)."""
    fields: list[object] = [
        entry.started_at.isoformat(timespec="seconds"),
        entry.direction,
        entry.id,
        entry.line,
        entry.job_id,
        entry.office_code,
        entry.remote_number,
        entry.called_number,
        entry.sub_address,
        (entry.remote_ident or "").strip(),
        entry.pages,
        f"{entry.duration_s:.1f}",
        entry.bit_rate,
        "ECM" if entry.ecm else "-",
        entry.compression,
        entry.bad_rows,
        entry.status,
        entry.t30_code,
        entry.t30_text,
        entry.media,
        entry.call_id,
        entry.gateway,
    ]
    return "\t".join(_clean(f) for f in fields)
