"""Benchmark: blobs in PostgreSQL (sealed 1 MiB chunks, streamed) against the blob folder and a plain bytea row.

    .venv/bin/python bench/blobs.py [--count 40] [--size-mb 4] [--postgres URL]

Creates a fresh node on PostgreSQL (a private schema, dropped afterwards) and, in alternating
rounds so that all three see the same machine, writes and reads back ``--count`` blobs of
``--size-mb`` MiB of random bytes:

* ``database``: the node's store (``DatabaseBlobStore``: AES-256-GCM chunks in ``blob_chunks``,
  every read verified against the SHA-256 address);
* ``folder``: the file store the node uses on SQLite (``LocalBlobStore``, the same sealing, fsync);
* ``bytea``: one plain INSERT / SELECT of the same bytes into a one-column table, in clear, unchecked.

Prints MB/s for each and the ratios of the database store to the two peers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from inkless.app import init_node
from inkless.blobs import LocalBlobStore
from inkless.config import load_settings
from inkless.db.blob_store import DatabaseBlobStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.db import fresh_database

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
ROUNDS = 4

plain_md = sa.MetaData()
plain = sa.Table(
    "bench_plain_blobs",
    plain_md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--size-mb", type=int, default=4)
    parser.add_argument("--postgres", default=os.environ.get("INKLESS_TEST_POSTGRES_URL") or DEFAULT_PG)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    per_round = max(1, args.count // ROUNDS)
    with tempfile.TemporaryDirectory() as folder, fresh_database("postgresql", Path(folder), args.postgres) as url:
        node = init_node(
            load_settings(Path(folder) / "node", env={}, overrides={"node_id": "bench", "database_url": url})
        )
        try:
            assert isinstance(node.blobs, DatabaseBlobStore)
            database = node.blobs
            files = LocalBlobStore(Path(folder) / "files", node.box)
            plain_md.create_all(node.db.engine)
            seconds = {name: [0.0, 0.0] for name in ("database", "folder", "bytea")}
            next_id = 0
            for _ in range(ROUNDS):
                blobs = [os.urandom(size) for _ in range(per_round)]
                for name, store in (("database", database), ("folder", files)):
                    digests: list[str] = []
                    seconds[name][0] += timed(lambda s=store, d=digests, bs=blobs: d.extend(s.put(b) for b in bs))
                    seconds[name][1] += timed(lambda s=store, d=digests: [s.get(x) for x in d])
                ids = list(range(next_id, next_id + per_round))
                next_id += per_round

                def insert_plain(ids: list[int] = ids, blobs: list[bytes] = blobs) -> None:
                    for i, b in zip(ids, blobs, strict=True):
                        with node.db.begin() as conn:
                            conn.execute(sa.insert(plain).values(id=i, data=b))

                def select_plain(ids: list[int] = ids) -> None:
                    for i in ids:
                        with node.db.read() as conn:
                            conn.execute(sa.select(plain.c.data).where(plain.c.id == i)).scalar_one()

                seconds["bytea"][0] += timed(insert_plain)
                seconds["bytea"][1] += timed(select_plain)
        finally:
            node.close()
    total_mb = per_round * ROUNDS * size / 1e6
    print(f"{per_round * ROUNDS} blobs of {args.size_mb} MiB, {ROUNDS} alternating rounds")
    rates = {name: (total_mb / w, total_mb / r) for name, (w, r) in seconds.items()}
    for name, (write, read) in rates.items():
        print(f"  {name:9} write {write:8.1f} MB/s   read {read:8.1f} MB/s")
    for peer in ("folder", "bytea"):
        print(
            f"  database / {peer}: write {rates['database'][0] / rates[peer][0]:.2f}x, "
            f"read {rates['database'][1] / rates[peer][1]:.2f}x"
        )


if __name__ == "__main__":
    main()
