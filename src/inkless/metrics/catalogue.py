"""The procedure catalogue (手続一覧): procedures, their versions, CSV import and export.

Every change writes the new state, a version row (who, when, which fields) and an audit entry in
one transaction, so the history in the catalogue and the signed audit log always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_metrics import procedure_versions, procedures
from inkless.errors import NotFoundError, ValidationError
from inkless.metrics.catalogue_csv import format_catalogue, parse_catalogue
from inkless.metrics.model import (
    ImportSummary,
    Procedure,
    ProcedureFields,
    ProcedureVersion,
    SealRequirement,
    check_procedure_code,
)

# Shown wherever an item has no procedure yet (inbound faxes no routing rule matched).
UNCLASSIFIED = "未分類"


def _fields(row: Row[Any]) -> ProcedureFields:
    return ProcedureFields(
        code=row.code, name=row.name, ministry=row.ministry, office_code=row.office_code,
        legal_basis=row.legal_basis, seal_required=SealRequirement(row.seal_required),
        fax_or_paper_allowed=bool(row.fax_or_paper_allowed),
    )


def _procedure(row: Row[Any]) -> Procedure:
    return Procedure(fields=_fields(row), retired=bool(row.retired), version=row.version,
                     updated_at=row.updated_at, updated_by=row.updated_by)


def _values(f: ProcedureFields) -> dict[str, Any]:
    return {"name": f.name, "ministry": f.ministry, "office_code": f.office_code, "legal_basis": f.legal_basis,
            "seal_required": f.seal_required.value, "fax_or_paper_allowed": f.fax_or_paper_allowed}


class ProcedureCatalogue:
    """Reads and changes the node's procedure catalogue; every change is versioned and audited."""

    def __init__(self, db: Database, audit: AuditRecorder, clock: Clock) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    # --- reading ---------------------------------------------------------------------

    def procedures(self, office_code: str | None = None, *, include_retired: bool = False,
             conn: Connection | None = None) -> list[Procedure]:
        """The procedures, by code; with ``office_code``, that office's own and the node-wide ones."""
        query = select(procedures).order_by(procedures.c.code)
        if not include_retired:
            query = query.where(procedures.c.retired.is_(False))
        if office_code is not None:
            query = query.where((procedures.c.office_code == office_code) | procedures.c.office_code.is_(None))
        if conn is not None:
            return [_procedure(r) for r in conn.execute(query).all()]
        with self._db.read() as c:
            return [_procedure(r) for r in c.execute(query).all()]

    def check_choice(self, code: str | None, office_code: str) -> str | None:
        """The procedure a clerk of ``office_code`` chose for an item: None for none; once the catalogue lists
        procedures for the office, one of them (its own or node-wide, not retired); ValidationError otherwise."""
        text = (code or "").strip()
        if not text:
            return None
        try:
            text = check_procedure_code(text)
        except ValidationError:
            raise ValidationError("the procedure code must be 1-64 letters, digits, '.', '_' or '-'") from None
        listed = {p.code for p in self.procedures(office_code)}
        if listed and text not in listed:
            raise ValidationError("the procedure {code} is not in the procedure catalogue of this office", code=text)
        return text

    def get(self, code: str, conn: Connection | None = None) -> Procedure:
        query = select(procedures).where(procedures.c.code == code)
        if conn is not None:
            row = conn.execute(query).one_or_none()
        else:
            with self._db.read() as c:
                row = c.execute(query).one_or_none()
        if row is None:
            raise NotFoundError(f"no procedure {code!r} in the catalogue")
        return _procedure(row)

    def history(self, code: str) -> list[ProcedureVersion]:
        """Every version of a procedure, oldest first."""
        with self._db.read() as c:
            rows = c.execute(
                select(procedure_versions).where(procedure_versions.c.code == code)
                .order_by(procedure_versions.c.version)
            ).all()
        if not rows:
            raise NotFoundError(f"no procedure {code!r} in the catalogue")
        return [
            ProcedureVersion(
                fields=_fields(r), retired=bool(r.retired), version=r.version, change=r.change,
                changed_fields=tuple(x for x in r.changed_fields.split(",") if x), changed_at=r.changed_at,
                changed_by=r.changed_by, audit_index=r.audit_index,
            )
            for r in rows
        ]

    # --- changing ----------------------------------------------------------------------

    def save(self, new: ProcedureFields, actor: str) -> Procedure:
        """Create a procedure or change it (a restored retired procedure comes back)."""
        with self._db.begin() as conn:
            self._check_office(conn, new.office_code)
            self._save(conn, new, actor)
            return self.get(new.code, conn)

    def save_all(self, procedures: Sequence[ProcedureFields], actor: str) -> ImportSummary:
        """Create or change several procedures in one transaction (the demo, the admin console's bulk edit)."""
        created: list[str] = []
        changed: list[str] = []
        unchanged: list[str] = []
        with self._db.begin() as conn:
            for new in procedures:
                self._check_office(conn, new.office_code)
                outcome = self._save(conn, new, actor)
                {"created": created, "changed": changed, "unchanged": unchanged}[outcome].append(new.code)
        return ImportSummary(created=tuple(created), changed=tuple(changed), unchanged=tuple(unchanged))

    def retire(self, code: str, actor: str) -> Procedure:
        """Take a procedure out of the catalogue's lists; its history and counts stay."""
        code = check_procedure_code(code)
        with self._db.begin() as conn:
            current = self.get(code, conn)
            if current.retired:
                return current
            self._write(conn, current.fields, current, actor, change="retired", changed=["retired"], retired=True)
            return self.get(code, conn)

    def import_csv(self, data: bytes, actor: str, encoding: str | None = None) -> ImportSummary:
        """Create or change the procedures of a CSV file, all or nothing (see catalogue_csv)."""
        with self._db.begin() as conn:
            offices = {r.code: r.code for r in conn.execute(select(t.offices.c.code, t.offices.c.name)).all()}
            by_name = {r.name: r.code for r in conn.execute(select(t.offices.c.code, t.offices.c.name)).all()}

            def resolve(text: str) -> str | None:
                return offices.get(text) or by_name.get(text)

            rows = parse_catalogue(data, encoding, resolve)
            created: list[str] = []
            changed: list[str] = []
            unchanged: list[str] = []
            for row in rows:
                outcome = self._save(conn, row.fields, actor)
                {"created": created, "changed": changed, "unchanged": unchanged}[outcome].append(row.fields.code)
            self._audit.record(conn, AuditEvent(
                actor=actor, action="procedure.imported", object_type="catalogue", object_id="procedures",
                details={"created": len(created), "changed": len(changed), "unchanged": len(unchanged)},
            ), at=self._clock.now())
        return ImportSummary(created=tuple(created), changed=tuple(changed), unchanged=tuple(unchanged))

    def export_csv(self, encoding: str = "utf-8", office_code: str | None = None,
                   include_retired: bool = False) -> bytes:
        return format_catalogue(self.procedures(office_code, include_retired=include_retired), encoding)

    # --- internals -----------------------------------------------------------------------

    def _check_office(self, conn: Connection, office_code: str | None) -> None:
        if office_code is None:
            return
        if conn.execute(select(t.offices.c.id).where(t.offices.c.code == office_code)).first() is None:
            raise ValidationError(f"office: this node has no office {office_code!r}")

    def _save(self, conn: Connection, new: ProcedureFields, actor: str) -> str:
        row = conn.execute(select(procedures).where(procedures.c.code == new.code)).one_or_none()
        if row is None:
            self._write(conn, new, None, actor, change="created", changed=[])
            return "created"
        current = _procedure(row)
        differences = new.differences(current.fields)
        if not differences and not current.retired:
            return "unchanged"
        change = "restored" if current.retired else "changed"
        self._write(conn, new, current, actor, change=change,
                    changed=differences + (["retired"] if current.retired else []))
        return "changed"

    def _write(self, conn: Connection, new: ProcedureFields, current: Procedure | None, actor: str, *,
               change: str, changed: Sequence[str], retired: bool = False) -> None:
        now = self._clock.now()
        version = 1 if current is None else current.version + 1
        values = _values(new)
        index = self._audit.record(conn, AuditEvent(
            actor=actor, action=f"procedure.{change}", object_type="procedure", object_id=new.code,
            details={"version": version, "fields": list(changed)},
        ), at=now)
        if current is None:
            conn.execute(insert(procedures).values(code=new.code, retired=False, version=version, updated_at=now,
                                                   updated_by=actor, **values))
        else:
            conn.execute(update(procedures).where(procedures.c.code == new.code).values(
                retired=retired, version=version, updated_at=now, updated_by=actor, **values))
        conn.execute(insert(procedure_versions).values(
            code=new.code, version=version, retired=retired, change=change, changed_fields=",".join(changed),
            changed_at=now, changed_by=actor, audit_index=index, **values,
        ))
