"""The fax service's state and what inbound and outbound share: routing rules and the block list,
per-office settings, the call log, and the rows they are read from."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from inkless import timefmt
from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.blobs import BlobStore
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_fax import fax_block_list, fax_calls, fax_routing_rules, fax_settings
from inkless.directory.service import DirectoryService
from inkless.errors import ConflictError, NotFoundError
from inkless.fax.jobs import JobSchedule
from inkless.fax.log import FaxCallEntry, FaxJob, OfficeFaxSettings
from inkless.fax.model import CallResult, CoverPage, Ocr, PdfMaker, RenderedFax, Renderer
from inkless.fax.routing import (
    BLOCK_KINDS,
    RULE_KINDS,
    BlockEntry,
    RoutingRule,
    check_pattern,
)
from inkless.metrics import rollup
from inkless.text import check_text

log = logging.getLogger("inkless.fax")

MAX_TEXT = 500
# Converting, OCRing and depositing a received fax takes seconds to minutes; a claim older than this was abandoned.
DELIVERY_CLAIM_SECONDS = 15 * 60
# The advisory lock (PostgreSQL) under which processes count the line's calls and claim jobs for it.
LINE_CLAIM_LOCK = 0x696E6B6C_66617831  # "inkl" "fax1"
# Received faxes are at most internal (内部): they came over an open telephone line.
INBOUND_CLASSIFICATION = 1
UNAUTHENTICATED_LABEL = "送信元未認証（FAX）"


@dataclass(frozen=True)
class ReceivedFax:
    """What became of one inbound call."""

    call_id: int
    status: str
    office_code: str | None
    message_id: str | None


class FaxBase:
    """Routing rules, block list, office settings and the call log."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Clock,
        audit: AuditRecorder,
        directory: DirectoryService,
        node_id: str,
        delivery: Callable[[], Any | None],
        *,
        render: Renderer | None = None,
        to_pdf: PdfMaker | None = None,
        ocr: Ocr | None = None,
        schedule: JobSchedule | None = None,
        timezone: tzinfo = timefmt.TOKYO,
    ) -> None:
        self._db = db
        self._tz = timezone  # cover pages, reports and file names are read by people: the office's zone
        self._blobs = blobs
        self._clock = clock
        self._audit = audit
        self._directory = directory
        self.node_id = node_id
        self._delivery = delivery
        self._render = render or engine_render
        self._to_pdf = to_pdf or engine_tiff_to_pdf
        self._ocr = ocr or default_ocr
        self.default_schedule = schedule or JobSchedule()
        self._stopping = threading.Event()
        # The intake window's URL for an office (None while closed): every cover page invites to it.
        self.invitation_for: Callable[[str], str | None] | None = None

    # --- routing rules and block list (administrators) ------------------------------------

    def add_rule(
        self, kind: str, pattern: str, office_code: str, priority: int = 100, actor: str = "operator"
    ) -> RoutingRule:
        """Add an inbound routing rule; ValidationError for a bad pattern, ConflictError if it exists."""
        pattern = check_pattern(kind, pattern, RULE_KINDS)
        office = self._directory.office(office_code)
        now = self._clock.now()
        with self._db.begin() as conn:
            exists = conn.execute(
                select(fax_routing_rules.c.id).where(
                    fax_routing_rules.c.kind == kind, fax_routing_rules.c.pattern == pattern
                )
            ).scalar()
            if exists is not None:
                raise ConflictError(
                    "a {kind} rule for {pattern!r} exists already (rule {exists})",
                    kind=kind,
                    pattern=pattern,
                    exists=exists,
                )
            rule_id = row_id(
                conn.execute(
                    insert(fax_routing_rules).values(
                        kind=kind,
                        pattern=pattern,
                        office_id=office.id,
                        priority=priority,
                        created_by=actor,
                        created_at=now,
                    )
                )
            )
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor,
                    action="fax.route_added",
                    object_type="fax_rule",
                    object_id=str(rule_id),
                    details={"kind": kind, "pattern": pattern, "office": office.code, "priority": priority},
                ),
                at=now,
            )
        return RoutingRule(int(rule_id), kind, pattern, office.code, priority)

    def remove_rule(self, rule_id: int, actor: str = "operator") -> None:
        """Delete a routing rule; NotFoundError if there is none with this id."""
        now = self._clock.now()
        with self._db.begin() as conn:
            if not conn.execute(delete(fax_routing_rules).where(fax_routing_rules.c.id == rule_id)).rowcount:
                raise NotFoundError("no routing rule {rule_id}", rule_id=rule_id)
            self._audit.record(
                conn,
                AuditEvent(actor=actor, action="fax.route_removed", object_type="fax_rule", object_id=str(rule_id)),
                at=now,
            )

    def rules(self, conn: Connection | None = None) -> list[RoutingRule]:
        """Every routing rule, in the order they are tried."""
        query = (
            select(fax_routing_rules, t.offices.c.code)
            .join(t.offices, t.offices.c.id == fax_routing_rules.c.office_id)
            .order_by(fax_routing_rules.c.priority, fax_routing_rules.c.id)
        )
        if conn is None:
            with self._db.read() as own:
                rows = own.execute(query).all()
        else:
            rows = conn.execute(query).all()
        return [RoutingRule(r.id, r.kind, r.pattern, r.code, r.priority) for r in rows]

    def add_block(self, kind: str, pattern: str, reason: str | None = None, actor: str = "operator") -> BlockEntry:
        """Block calls by calling number (cid) or station id (tsi)."""
        pattern = check_pattern(kind, pattern, BLOCK_KINDS)
        reason = check_text(reason or "", "reason").strip()[:MAX_TEXT] or None
        now = self._clock.now()
        with self._db.begin() as conn:
            exists = conn.execute(
                select(fax_block_list.c.id).where(fax_block_list.c.kind == kind, fax_block_list.c.pattern == pattern)
            ).scalar()
            if exists is not None:
                raise ConflictError(
                    "{kind} {pattern!r} is blocked already (entry {exists})", kind=kind, pattern=pattern, exists=exists
                )
            entry_id = row_id(
                conn.execute(
                    insert(fax_block_list).values(
                        kind=kind,
                        pattern=pattern,
                        reason=reason,
                        created_by=actor,
                        created_at=now,
                    )
                )
            )
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor,
                    action="fax.block_added",
                    object_type="fax_block",
                    object_id=str(entry_id),
                    details={"kind": kind, "pattern": pattern},
                ),
                at=now,
            )
        return BlockEntry(int(entry_id), kind, pattern, reason)

    def remove_block(self, entry_id: int, actor: str = "operator") -> None:
        """Unblock; NotFoundError if there is no such entry."""
        now = self._clock.now()
        with self._db.begin() as conn:
            if not conn.execute(delete(fax_block_list).where(fax_block_list.c.id == entry_id)).rowcount:
                raise NotFoundError("no block-list entry {entry_id}", entry_id=entry_id)
            self._audit.record(
                conn,
                AuditEvent(actor=actor, action="fax.block_removed", object_type="fax_block", object_id=str(entry_id)),
                at=now,
            )

    def blocks(self, conn: Connection | None = None) -> list[BlockEntry]:
        """The block list, oldest entry first."""
        query = select(fax_block_list).order_by(fax_block_list.c.id)
        if conn is None:
            with self._db.read() as own:
                rows = own.execute(query).all()
        else:
            rows = conn.execute(query).all()
        return [BlockEntry(r.id, r.kind, r.pattern, r.reason) for r in rows]

    # --- per-office settings ---------------------------------------------------------------

    def office_settings(self, office_code: str) -> OfficeFaxSettings:
        """An office's fax settings (defaults when never set)."""
        office = self._directory.office(office_code)
        with self._db.read() as conn:
            row = conn.execute(select(fax_settings).where(fax_settings.c.office_id == office.id)).first()
        if row is None:
            return OfficeFaxSettings(office.code)
        return OfficeFaxSettings(office.code, row.fallback_enabled, row.cover_page_default)

    def set_office_settings(
        self,
        office_code: str,
        *,
        fallback_enabled: bool | None = None,
        cover_page_default: bool | None = None,
        actor: str = "operator",
    ) -> OfficeFaxSettings:
        """Change an office's fax settings; audited."""
        current = self.office_settings(office_code)
        office = self._directory.office(office_code)
        new = OfficeFaxSettings(
            office.code,
            current.fallback_enabled if fallback_enabled is None else fallback_enabled,
            current.cover_page_default if cover_page_default is None else cover_page_default,
        )
        now = self._clock.now()
        values = {
            "fallback_enabled": new.fallback_enabled,
            "cover_page_default": new.cover_page_default,
            "updated_by": actor,
            "updated_at": now,
        }
        with self._db.begin() as conn:
            changed = conn.execute(
                update(fax_settings).where(fax_settings.c.office_id == office.id).values(**values)
            ).rowcount
            if not changed:
                conn.execute(insert(fax_settings).values(office_id=office.id, **values))
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor,
                    action="fax.settings_changed",
                    object_type="office",
                    object_id=office.code,
                    details={"fallback_enabled": new.fallback_enabled, "cover_page_default": new.cover_page_default},
                ),
                at=now,
            )
        return new

    # --- the call log ----------------------------------------------------------------------

    def calls(
        self,
        *,
        status: str | None = None,
        direction: str | None = None,
        office_code: str | None = None,
        limit: int = 1000,
    ) -> list[FaxCallEntry]:
        """The call log, oldest first (the last ``limit`` calls)."""
        query = select(fax_calls, t.offices.c.code).outerjoin(t.offices, t.offices.c.id == fax_calls.c.office_id)
        if status is not None:
            query = query.where(fax_calls.c.status == status)
        if direction is not None:
            query = query.where(fax_calls.c.direction == direction)
        if office_code is not None:
            query = query.where(t.offices.c.code == office_code)
        query = query.order_by(fax_calls.c.id.desc()).limit(limit)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [call_entry_of(r) for r in reversed(rows)]

    def call(self, call_id: int) -> FaxCallEntry:
        """One call of the log."""
        with self._db.read() as conn:
            row = conn.execute(
                select(fax_calls, t.offices.c.code)
                .outerjoin(t.offices, t.offices.c.id == fax_calls.c.office_id)
                .where(fax_calls.c.id == call_id)
            ).first()
        if row is None:
            raise NotFoundError("no fax call {call_id}", call_id=call_id)
        return call_entry_of(row)

    def call_report(self, call_id: int) -> bytes:
        """The transmission report PDF of one outbound attempt."""
        with self._db.read() as conn:
            digest = conn.execute(select(fax_calls.c.report_blob).where(fax_calls.c.id == call_id)).scalar()
        if not digest:
            raise NotFoundError("no transmission report for call {call_id}", call_id=call_id)
        return self._blobs.get(digest)


def row_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def call_counts(row: Row[Any], office_code: str | None, procedure_code: str | None = None) -> rollup.Counts:
    """What a logged call counts in the metrics, for the given office (and procedure, else its own)."""
    return rollup.fax_call(
        row.direction,
        row.started_at,
        office_code,
        procedure_code or row.procedure_code,
        row.pages,
        bool(row.success),
        row.status,
    )


def call_values(result: CallResult, direction: str, line_name: str) -> dict[str, Any]:
    return {
        "direction": direction,
        "line": line_name[:64],
        "started_at": result.started_at,
        "duration_s": float(result.duration_s),
        "remote_number": (result.calling_number or None),
        "called_number": result.called_number,
        "sub_address": result.sub_address,
        "remote_ident": (result.remote_ident or "").strip()[:64] or None,
        "local_ident": result.local_ident[:64],
        "pages": result.pages_transferred,
        "pages_expected": result.pages_expected,
        "bit_rate": result.bit_rate,
        "ecm": result.ecm,
        "compression": result.compression[:16],
        "bad_rows": result.bad_rows,
        "t30_code": result.t30_code,
        "t30_text": result.t30_text[:MAX_TEXT],
        "success": result.success,
        "media": result.media,
        "call_id": (result.call_id or None) and result.call_id[:128],
        "gateway": (result.gateway or None) and result.gateway[:128],
    }


def no_session(started: datetime, ident: str, number: str, code: int, text: str) -> CallResult:
    return CallResult(
        success=False,
        t30_code=code,
        t30_text=text,
        pages_transferred=0,
        pages_expected=None,
        remote_ident=None,
        local_ident=ident,
        calling_number=None,
        called_number=number,
        sub_address=None,
        bit_rate=0,
        ecm=False,
        compression="",
        bad_rows=0,
        duration_s=0.0,
        started_at=started,
    )


def call_facts(row: Row[Any]) -> dict[str, Any]:
    """The fax facts that travel with the inbox copy (shown beside the document)."""
    return {
        "from": row.remote_number or (row.remote_ident or "").strip() or "unknown",
        "authenticated": False,
        "sender_status": UNAUTHENTICATED_LABEL,
        "cid": row.remote_number,
        "tsi": (row.remote_ident or "").strip() or None,
        "did": row.called_number,
        "sub_address": row.sub_address,
        "pages": row.pages,
        "received_at": row.started_at.isoformat(),
        "duration_s": round(row.duration_s, 1),
        "bad_rows": row.bad_rows,
        "bit_rate": row.bit_rate,
        "ecm": row.ecm,
        "compression": row.compression,
        "t30_code": row.t30_code,
        "t30_text": row.t30_text,
        "fax_call_id": row.id,
    }


def inbound_subject(row: Row[Any]) -> str:
    who = row.remote_number or (row.remote_ident or "").strip() or "番号通知なし"
    return f"FAX受信 {who}（{row.pages}枚）"


def call_entry_of(r: Row[Any]) -> FaxCallEntry:
    return FaxCallEntry(
        id=r.id,
        direction=r.direction,
        line=r.line,
        started_at=r.started_at,
        duration_s=r.duration_s,
        remote_number=r.remote_number,
        called_number=r.called_number,
        sub_address=r.sub_address,
        remote_ident=r.remote_ident,
        local_ident=r.local_ident,
        pages=r.pages,
        pages_expected=r.pages_expected,
        bit_rate=r.bit_rate,
        ecm=r.ecm,
        compression=r.compression,
        bad_rows=r.bad_rows,
        t30_code=r.t30_code,
        t30_text=r.t30_text,
        success=r.success,
        status=r.status,
        office_code=r.code,
        job_id=r.job_id,
        attempt=r.attempt,
        routed_by=r.routed_by,
        message_id=r.message_id,
        has_pdf=bool(r.pdf_blob or r.tiff_blob),
        has_report=bool(r.report_blob),
        resolved_by=r.resolved_by,
        media=r.media,
        call_id=r.call_id,
        gateway=r.gateway,
    )


def job_of(r: Row[Any]) -> FaxJob:
    return FaxJob(
        id=r.id,
        office_code=r.code,
        created_by=r.created_by,
        number=r.number,
        pages=r.pages,
        cover_page=r.cover_page,
        classification=r.classification,
        state=r.state,
        tries=r.tries,
        max_tries=r.max_tries,
        interval_s=r.interval_s,
        kill_at=r.kill_at,
        next_attempt_at=r.next_attempt_at,
        last_code=r.last_code,
        last_text=r.last_text,
        origin=r.origin,
        outbox_ref=r.outbox_ref,
        created_at=r.created_at,
        updated_at=r.updated_at,
        has_report=bool(r.report_blob),
        procedure_code=r.procedure_code,
    )


def transmission_report(
    row: Row[Any], result: CallResult, status: str, text: str, tiff: bytes, now: datetime, tz: tzinfo
) -> bytes:
    from inkless.fax.report import TransmissionReport, render_report

    return render_report(
        TransmissionReport(
            job_id=row.id,
            attempt=row.tries,
            office_name=row.office_name,
            office_number=row.office_number,
            number=row.number,
            status=status,
            pages_sent=result.pages_transferred,
            pages_total=row.pages,
            duration_s=result.duration_s,
            bit_rate=result.bit_rate,
            ecm=result.ecm,
            compression=result.compression,
            remote_ident=(result.remote_ident or "").strip() or None,
            t30_code=result.t30_code,
            t30_text=text,
            started_at=result.started_at,
            finished_at=now,
        ),
        tiff,
        tz,
    )


def join_pdfs(documents: Sequence[bytes]) -> bytes:
    import pikepdf

    out = pikepdf.Pdf.new()
    for doc in documents:
        with pikepdf.open(io.BytesIO(doc)) as src:
            out.pages.extend(src.pages)
    buf = io.BytesIO()
    out.save(buf)
    return buf.getvalue()


def engine_render(documents: Sequence[bytes], cover: CoverPage | None) -> RenderedFax:
    from inkless.fax.render import render_for_fax

    return render_for_fax(documents, cover)


def engine_tiff_to_pdf(tiff: bytes) -> bytes:
    from inkless.fax.imaging import tiff_to_pdf

    return tiff_to_pdf(tiff)


def default_ocr(pdf: bytes) -> tuple[bytes, bool]:
    from inkless.fax.ocr import searchable_pdf

    return searchable_pdf(pdf)


def call_entry(row: Row[Any]) -> FaxCallEntry:
    """A ``fax_calls`` row (joined with its office code) as a log entry."""
    return call_entry_of(row)
