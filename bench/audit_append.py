"""Benchmark: an audit append (Merkle tree, O(log n)) against a plain INSERT of the same bytes.

    .venv/bin/python bench/audit_append.py [--n 2000] [--backend sqlite|postgresql] [--big 50000] [--n-big 500]

Creates a fresh node in a temporary folder (PostgreSQL: a private schema, dropped
afterwards), then, alternating in blocks so that both see the same disk and cache:

* N appends through ``AuditLog.record()``, each in its own transaction;
* N plain INSERTs of the same canonical entry bytes (and leaf hash) into a scratch
  table shaped like ``audit_entries``, each in its own transaction.

It then fast-forwards the log to ``--big`` entries (a bulk load of valid entries and
subtree hashes) and measures again (``--n-big`` of each), to show that the cost of an append does not
grow with the size of the log. Prints appends/s, inserts/s and their ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from inkless.app import Node, init_node
from inkless.audit import merkle
from inkless.audit.log import canonical_entry
from inkless.audit.model import AuditEvent
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db.types import UTCDateTime

# The scratch databases of the test suite (SQLite file or a private PostgreSQL schema).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.db import fresh_database

BLOCK = 100
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"

scratch_md = sa.MetaData()
plain_entries = sa.Table(
    "bench_plain_entries",
    scratch_md,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=True),
    sa.Column("object_id", sa.String(128), nullable=True),
    sa.Column("entry", sa.LargeBinary, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
)
# The same secondary indexes as audit_entries, so that both tables pay for the same upkeep.
sa.Index("ix_bench_plain_action", plain_entries.c.action)
sa.Index("ix_bench_plain_object", plain_entries.c.object_type, plain_entries.c.object_id)


def event(i: int) -> AuditEvent:
    return AuditEvent(
        actor="bench", action="document.sent", object_type="document", object_id=f"doc-{i:08d}",
        digests={"sha256": f"{i:064x}"}, details={"office": "civil-affairs", "pages": i % 17},
    )


def database(backend: str, folder: Path) -> AbstractContextManager[str]:
    """An empty database: the test suite's own scratch databases, on the bench's default server."""
    server = os.environ.get("INKLESS_TEST_POSTGRES_URL") or DEFAULT_PG
    return fresh_database(backend, folder, server=server, prefix="bench_")


@dataclass
class Timing:
    """Wall-clock and CPU seconds of one kind of write, and the statements it ran."""

    wall: float = 0.0
    cpu: float = 0.0
    statements: int = 0


class StatementCounter:
    """Counts SQL statements sent to the database while ``active``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self.active = False
        sa.event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *_args: object) -> None:
        if self.active:
            self.count += 1


def timed(counter: StatementCounter, timing: Timing, block: Callable[[], None]) -> None:
    counter.count, counter.active = 0, True
    wall, cpu = time.perf_counter(), time.process_time()
    block()
    timing.wall += time.perf_counter() - wall
    timing.cpu += time.process_time() - cpu
    counter.active = False
    timing.statements += counter.count


def append_block(node: Node, start: int, count: int) -> None:
    for i in range(start, start + count):
        with node.db.begin() as conn:
            node.audit.record(conn, event(i))


def insert_block(node: Node, start: int, count: int) -> None:
    """Plain INSERTs of the bytes an append would write; building them is timed too, as in record()."""
    for i in range(start, start + count):
        at = datetime.now(UTC)
        e = event(i)
        entry = canonical_entry(i, at, e)
        with node.db.begin() as conn:
            conn.execute(
                plain_entries.insert().values(
                    idx=i, recorded_at=at, actor=e.actor, action=e.action, object_type=e.object_type,
                    object_id=e.object_id, entry=entry, leaf_hash=merkle.leaf_hash(entry),
                )
            )


def measure(node: Node, counter: StatementCounter, n: int, plain_start: int) -> tuple[Timing, Timing]:
    """n appends and n plain inserts, run in alternating blocks so both see the same disk and cache."""
    appends, inserts = Timing(), Timing()
    done = 0
    while done < n:
        count = min(BLOCK, n - done)
        timed(counter, appends, lambda: append_block(node, done, count))  # noqa: B023 - called at once
        timed(counter, inserts, lambda: insert_block(node, plain_start + done, count))  # noqa: B023
        done += count
    return appends, inserts


def fast_forward(node: Node, target: int) -> float:
    """Bulk-load valid entries (and their subtree hashes) until the log has ``target`` entries."""
    began = time.perf_counter()
    e = t.audit_entries.c
    with node.db.begin() as conn:
        size = node.audit.tree_size(conn)
        builder = merkle.TreeBuilder()
        for (leaf,) in conn.execute(sa.select(e.leaf_hash).order_by(e.idx)):
            builder.append(bytes(leaf))
        at = datetime.now(UTC)
        batch_entries: list[dict[str, object]] = []
        batch_nodes: list[dict[str, object]] = []
        for i in range(size, target):
            ev = event(i)
            entry = canonical_entry(i, at, ev)
            leaf = merkle.leaf_hash(entry)
            batch_entries.append({
                "idx": i, "recorded_at": at, "actor": ev.actor, "action": ev.action,
                "object_type": ev.object_type, "object_id": ev.object_id, "entry": entry, "leaf_hash": leaf,
            })
            batch_nodes.extend({"level": lv, "idx": ix, "hash": h} for lv, ix, h in builder.append(leaf))
            if len(batch_entries) >= 5000 or i == target - 1:
                conn.execute(t.audit_entries.insert(), batch_entries)
                conn.execute(t.audit_nodes.insert(), batch_nodes)
                batch_entries, batch_nodes = [], []
        conn.execute(t.audit_state.update().values(tree_size=target))
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="appends (and plain inserts) per measurement")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--big", type=int, default=50_000, help="log size for the second measurement")
    parser.add_argument("--n-big", type=int, default=500, help="appends (and inserts) at the larger size")
    parser.add_argument("--verify", action="store_true", help="also run a full verify() at the end")
    args = parser.parse_args()
    if args.n < BLOCK or args.n_big < BLOCK:
        parser.error(f"--n and --n-big must be at least {BLOCK}")

    with tempfile.TemporaryDirectory(prefix="inkless-bench-") as tmp, database(args.backend, Path(tmp)) as url:
        settings = load_settings(Path(tmp), env={}, overrides={"node_id": "bench", "database_url": url})
        node = init_node(settings)
        try:
            scratch_md.create_all(node.db.engine)
            print(f"inkless audit append benchmark: backend {args.backend}, one transaction per write")

            counter = StatementCounter(node.db.engine)
            with node.db.begin() as conn:
                small = node.audit.tree_size(conn)
            a1, i1 = measure(node, counter, args.n, plain_start=0)
            loaded = fast_forward(node, max(args.big, small + args.n + 1))
            with node.db.begin() as conn:
                large = node.audit.tree_size(conn)
            a2, i2 = measure(node, counter, args.n_big, plain_start=args.n)

            def row(label: str, tm: Timing, n: int) -> str:
                return (
                    f"  {label:<40}{n / tm.wall:>8,.0f} /s {tm.wall / n * 1e6:>8,.0f} µs each"
                    f"  (CPU {tm.cpu / n * 1e6:,.0f} µs, {tm.statements / n:.1f} statements)"
                )

            for label, lo, n, (a, i) in (
                ("", small, args.n, (a1, i1)),
                (f" (fast-forwarded in {loaded:.1f} s)", large, args.n_big, (a2, i2)),
            ):
                print(f"\nat log size {lo:,} -> {lo + n:,}{label}:")
                print(row("audit appends (record(): Merkle tree)", a, n))
                print(row("plain INSERTs of the same bytes", i, n))
                print(f"  ratio appends/inserts: {i.wall / a.wall:.2f}  "
                      f"(an append costs {a.wall / i.wall:.2f}x a plain insert)")

            reads = [len(merkle.append_siblings(k)) for k in range(large, large + args.n_big)]
            print(f"\ndoes an append get dearer as the log grows ({small:,} -> {large:,} entries)?")
            print(f"  append/insert wall-time ratio: {a1.wall / i1.wall:.2f}x -> {a2.wall / i2.wall:.2f}x "
                  "(plain inserts in the same run are the yardstick: fsync time varies)")
            print(f"  CPU per append: {a1.cpu / args.n * 1e6:,.0f} µs -> {a2.cpu / args.n_big * 1e6:,.0f} µs")
            print(f"  subtree hashes read per append at {large:,}: average {sum(reads) / len(reads):.2f}, "
                  f"at most {max(reads)} (log2 n = {math.log2(large):.1f}); no append reads other entries")
            if args.verify:
                began = time.perf_counter()
                with node.db.begin() as conn:
                    report = node.audit.verify(conn)
                print(f"verify(): {report.entries:,} entries recomputed in {time.perf_counter() - began:.1f} s")
        finally:
            node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
