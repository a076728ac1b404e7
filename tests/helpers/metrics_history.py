"""Generated history for the metrics tests and bench/metrics.py: source rows written the way the services
write them (the row and its roll-up counts in one transaction), with the totals they must add up to.

The plan is deterministic: for every week, office and procedure it says how many messages went out and
came in, how many faxes (and pages) arrived and left, how many documents were digitally sealed. Events
fall at the edges of Tokyo weeks (Monday 00:30 JST is still Sunday in UTC) so that a week computed in
UTC would be caught.

    python -m tests.helpers.metrics_history DATABASE_URL EVENTS   # one transaction per event, until killed
"""

from __future__ import annotations

import secrets
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_delivery import inbox, messages
from inkless.db.tables_fax import fax_calls
from inkless.db.tables_seals import route_documents, routes
from inkless.metrics import rollup
from inkless.metrics.periods import TOKYO, week_monday

OFFICES = ("civil-affairs", "criminal-affairs", "secretariat")
WEEKS = ("2026-W46", "2026-W47", "2026-W48", "2026-W49")
# Per office: procedures and what each does per week: (out, in, fax_in calls, fax_in pages each,
# fax_out calls, fax_out pages each, seals, intake submissions). A procedure with no fax is fully
# digital; with no message or submission still fax or paper; the rest mixed.
PLAN: dict[str, dict[str | None, tuple[int, int, int, int, int, int, int, int]]] = {
    "civil-affairs": {
        "MOJ-MIN-001": (3, 2, 0, 0, 0, 0, 1, 2),   # fully digital
        "MOJ-MIN-005": (1, 1, 2, 3, 1, 2, 0, 0),   # mixed
        "MOJ-MIN-006": (0, 0, 4, 2, 0, 0, 0, 0),   # still fax
        None: (0, 0, 1, 5, 0, 0, 0, 0),            # 未分類 faxes
    },
    "criminal-affairs": {
        "MOJ-KEI-001": (0, 0, 3, 4, 2, 1, 0, 0),   # still fax
        "MOJ-KEI-003": (2, 1, 0, 0, 0, 0, 2, 0),   # fully digital
    },
    "secretariat": {
        "MOJ-KAN-006": (1, 0, 0, 0, 1, 1, 1, 1),   # mixed
    },
}
REMOTES = ("03-5555-0001", "06-6666-0002", "011-777-0003")


@dataclass
class History:
    """What was generated: the expected counters (period, office, procedure, metric) and fax calls per remote."""

    expected: dict[tuple[str, str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    remote_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    remote_pages: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count(self, week: str, office: str | None, procedure: str | None, metric: str, value: int = 1) -> None:
        if value:
            self.expected[(week, office or "", procedure or "", metric)] += value

    def total(self, metric: str, week: str | None = None, office: str | None = None,
              procedure: str | None = None) -> int:
        return sum(v for (w, o, p, m), v in self.expected.items()
                   if m == metric and (week is None or w == week) and (office is None or o == office)
                   and (procedure is None or p == procedure))


def event_times(week: str, n: int) -> Iterator[datetime]:
    """n times inside the Tokyo week, the first at Monday 00:30 JST, the second on Sunday 23:30 JST."""
    monday = week_monday(week)
    starts = [datetime.combine(monday, time(0, 30), TOKYO), datetime.combine(monday + timedelta(days=6),
                                                                            time(23, 30), TOKYO)]
    for i in range(n):
        at = starts[i] if i < 2 else datetime.combine(monday + timedelta(days=i % 5), time(10, i % 60), TOKYO)
        yield at.astimezone(UTC)


class Writer:
    """Writes source rows and their counts like the services do."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.offices = {r.code: r.id for r in conn.execute(select(t.offices.c.code, t.offices.c.id))}
        self.users = {r.office_id: r.id for r in conn.execute(select(t.users.c.office_id, t.users.c.id))}
        self._routes: dict[tuple[str, str | None], tuple[int, int]] = {}

    def message_out(self, at: datetime, office: str, procedure: str | None) -> None:
        self.conn.execute(insert(messages).values(
            id=str(uuid.uuid4()), office_id=self.offices[office], sender_login="gen", classification=0,
            priority="normal", procedure_code=procedure, subject_enc=b"x", envelope_sha256="0" * 64,
            envelope_size=1, document_count=1, created_at=at))
        rollup.add(self.conn, rollup.message_out(at, office, procedure))

    def message_in(self, at: datetime, office: str, procedure: str | None) -> None:
        self.conn.execute(insert(inbox).values(
            message_id=str(uuid.uuid4()), office_id=self.offices[office], sender="x@peer", classification=0,
            priority="normal", subject_enc=b"x", envelope_sha256="0" * 64, envelope_size=1, document_count=1,
            source="inkless", authenticated=True, received_at=at, procedure_code=procedure))
        rollup.add(self.conn, rollup.message_in(at, office, procedure, "inkless"))

    def intake(self, at: datetime, office: str, procedure: str | None) -> None:
        """A submission through the intake window: the inbox row the window deposits is what counts."""
        self.conn.execute(insert(inbox).values(
            message_id=str(uuid.uuid4()), office_id=self.offices[office], sender=f"intake:R{secrets.token_hex(4)}",
            classification=1, priority="normal", subject_enc=b"x", envelope_sha256="0" * 64, envelope_size=1,
            document_count=2, source="intake", authenticated=False, received_at=at, procedure_code=procedure))
        rollup.add(self.conn, rollup.message_in(at, office, procedure, "intake"))

    def fax(self, direction: str, at: datetime, office: str | None, procedure: str | None, pages: int,
            remote: str, success: bool = True, status: str | None = None) -> int:
        status = status or ("delivered" if direction == "RECV" else "done")
        call_id = self.conn.execute(insert(fax_calls).values(
            direction=direction, line="loopback", started_at=at, duration_s=30.0, remote_number=remote,
            remote_ident=f"TSI {remote}", pages=pages, bit_rate=9600, ecm=True, compression="T.4", bad_rows=0,
            t30_code=0, t30_text="OK", success=success, status=status,
            office_id=self.offices[office] if office else None, procedure_code=procedure,
        )).inserted_primary_key[0]  # type: ignore[index]
        rollup.add(self.conn, rollup.fax_call(direction, at, office, procedure, pages, success, status))
        return int(call_id)

    def seal(self, at: datetime, office: str, procedure: str | None) -> None:
        key = (office, procedure)
        if key not in self._routes:
            route_id = self.conn.execute(insert(routes).values(
                office_id=self.offices[office], starter_id=self.users[self.offices[office]], document_name="d.pdf",
                state="in_progress", current_step=0, revision=0, original_digest="0" * 64, strip_page=0,
                procedure_code=procedure, created_at=at, updated_at=at)).inserted_primary_key[0]  # type: ignore[index]
            self._routes[key] = (int(route_id), 0)
        route_id, revision = self._routes[key]
        self._routes[key] = (route_id, revision + 1)
        self.conn.execute(insert(route_documents).values(
            route_id=route_id, revision=revision + 1, blob_digest="0" * 64, kind="stamp", created_at=at))
        rollup.add(self.conn, rollup.seal(at, office, procedure, "stamp"))


def plan_events(weeks: tuple[str, ...] = WEEKS, scale: int = 1) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every event of the plan, in order: (kind, arguments)."""
    for week in weeks:
        for office, procedures in PLAN.items():
            for procedure, (out, inn, fin, fin_pages, fout, fout_pages, seals, intake) in procedures.items():
                for at in event_times(week, out * scale):
                    yield "message_out", {"at": at, "office": office, "procedure": procedure}
                for at in event_times(week, inn * scale):
                    yield "message_in", {"at": at, "office": office, "procedure": procedure}
                for i, at in enumerate(event_times(week, fin * scale)):
                    yield "fax_in", {"at": at, "office": office, "procedure": procedure, "pages": fin_pages,
                                     "remote": REMOTES[i % len(REMOTES)]}
                for i, at in enumerate(event_times(week, fout * scale)):
                    yield "fax_out", {"at": at, "office": office, "procedure": procedure, "pages": fout_pages,
                                      "remote": REMOTES[(i + 1) % len(REMOTES)]}
                for at in event_times(week, seals * scale):
                    yield "seal", {"at": at, "office": office, "procedure": procedure}
                for at in event_times(week, intake * scale):
                    yield "intake", {"at": at, "office": office, "procedure": procedure}


def apply(writer: Writer, history: History, kind: str, a: dict[str, Any]) -> None:
    from inkless.metrics.periods import week_of

    week, office, procedure = week_of(a["at"]), a["office"], a["procedure"]
    if kind == "message_out":
        writer.message_out(a["at"], office, procedure)
        history.count(week, office, procedure, rollup.MESSAGES_OUT)
    elif kind == "message_in":
        writer.message_in(a["at"], office, procedure)
        history.count(week, office, procedure, rollup.MESSAGES_IN)
    elif kind == "intake":
        writer.intake(a["at"], office, procedure)
        history.count(week, office, procedure, rollup.INTAKE)
    elif kind in ("fax_in", "fax_out"):
        direction = "RECV" if kind == "fax_in" else "SEND"
        writer.fax(direction, a["at"], office, procedure, a["pages"], a["remote"])
        history.count(week, office, procedure, rollup.FAX_IN if kind == "fax_in" else rollup.FAX_OUT)
        history.count(week, office, procedure, rollup.FAX_IN_PAGES if kind == "fax_in" else rollup.FAX_OUT_PAGES,
                      a["pages"])
        history.remote_calls[a["remote"] + ":" + direction] += 1
        history.remote_pages[a["remote"] + ":" + direction] += a["pages"]
    else:
        writer.seal(a["at"], office, procedure)
        history.count(week, office, procedure, rollup.SEALS_DIGITAL)


def generate(db: Database, weeks: tuple[str, ...] = WEEKS, scale: int = 1) -> History:
    """The whole plan, one transaction per week."""
    history = History()
    current: str | None = None
    events = list(plan_events(weeks, scale))
    by_week: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for kind, a in events:
        by_week[a["at"].astimezone(TOKYO).strftime("%G-W%V")].append((kind, a))
    for current in sorted(by_week):
        with db.begin() as conn:
            writer = Writer(conn)
            for kind, a in by_week[current]:
                apply(writer, history, kind, a)
    return history


def main() -> None:
    """Write events one transaction each, for ever (the kill test stops this process with SIGKILL)."""
    db = Database(sys.argv[1])
    limit = int(sys.argv[2])
    history = History()
    done = 0
    while done < limit:
        for kind, a in plan_events():
            with db.begin() as conn:
                apply(Writer(conn), history, kind, a)
            done += 1
            if done == 20:
                print("started", flush=True)
    print(secrets.token_hex(2), flush=True)


if __name__ == "__main__":
    main()
