"""Procedures remembered per counterpart: what an office chose for a fax number or an address last time.

When a clerk sends a fax or a message with a procedure, the office remembers that procedure for each
counterpart (the fax number; each office address and e-mail address the message went to), in the
transaction that queues it. The next fax or message of the same office to that counterpart starts with
it chosen. Counterparts compare as their kind compares: fax numbers by digits (+81 written as 0),
addresses without regard to case.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from inkless.db.tables_metrics import procedure_memory
from inkless.fax.routing import normalise_number


def fax_counterpart(number: str | None) -> str | None:
    """The key of a fax number (None without digits)."""
    digits = normalise_number(number)
    return f"fax:{digits}" if digits.strip("+") else None


def address_counterpart(address: str | None) -> str | None:
    """The key of an office address (``civil-affairs@moj``) or an e-mail address (None when empty)."""
    text = (address or "").strip().lower()
    return f"addr:{text}"[:300] if text else None


def remember(conn: Connection, office_id: int, counterparts: Iterable[str | None], procedure_code: str,
             actor: str, now: datetime) -> None:
    """Remember ``procedure_code`` for each counterpart of the office, in the caller's transaction."""
    rows = [{"office_id": office_id, "counterpart": c, "procedure_code": procedure_code, "chosen_by": actor[:64],
             "chosen_at": now} for c in sorted({c for c in counterparts if c})]
    if not rows:
        return
    stmt: Any = (postgresql.insert(procedure_memory) if conn.dialect.name == "postgresql"
                 else sqlite.insert(procedure_memory))
    stmt = stmt.on_conflict_do_update(
        index_elements=[procedure_memory.c.office_id, procedure_memory.c.counterpart],
        set_={"procedure_code": stmt.excluded.procedure_code, "chosen_by": stmt.excluded.chosen_by,
              "chosen_at": stmt.excluded.chosen_at})
    conn.execute(stmt, rows)


def recall(conn: Connection, office_id: int, counterparts: Iterable[str | None]) -> list[str]:
    """The procedures the office chose for these counterparts, the most recent choice first."""
    keys = sorted({c for c in counterparts if c})
    if not keys:
        return []
    m = procedure_memory.c
    rows = conn.execute(select(m.procedure_code, m.chosen_at).where(
        m.office_id == office_id, m.counterpart.in_(keys)).order_by(m.chosen_at.desc(), m.procedure_code)).all()
    return list(dict.fromkeys(r.procedure_code for r in rows))
