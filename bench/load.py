"""Benchmark: many clerks at once against one served node, and the same requests against a bare endpoint.

    .venv/bin/python bench/load.py [--clerks 200] [--seconds 30] [--backend sqlite|postgresql]

Builds a demo node in a temporary folder (PostgreSQL: a private database, dropped afterwards), seeds
each office's inbox with delivered messages, and serves it with a real ``inkless serve`` process on a
free loopback port. Then ``--clerks`` simulated clerks (asyncio + httpx, one connection each, each with
its own logged-in browser session and API token) loop for ``--seconds``, each iteration one of:

* the inbox page (HTML, 受信箱) — 40 %
* a message page (HTML: decrypting and verifying the envelope, the audit entry) — 30 %
* the inbox as JSON (``GET /api/v1/offices/CODE/inbox``) — 10 %
* sending a one-page PDF to the other office (``POST /api/v1/messages``) — 10 %
* stamping a one-page PDF with the clerk's seal (``POST /api/v1/seal``, PAdES + timestamp) — 10 %

Prints, per kind of request, the count, errors (any status other than the expected one, or a
transport error) and p50/p95/p99 latency; then the throughput in requests/s.

The peer, measured in the same run with the same clerks, connections and request mix: a bare FastAPI
app served by uvicorn (one process, as ``inkless serve`` is) whose endpoints answer the same bytes the
node answered for each kind, without authentication, database or crypto. The ratio of throughputs is
what inkless's work costs over the web stack it is built on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.nodes import free_port, wait_healthy

INKLESS = Path(sys.executable).with_name("inkless")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
OFFICES = {"tanaka": ("civil-affairs", "criminal-affairs"), "takahashi": ("criminal-affairs", "civil-affairs")}
MIX = [("inbox", 40), ("message", 30), ("inbox_api", 10), ("send", 10), ("seal", 10)]
EXPECTED = {"inbox": 200, "message": 200, "inbox_api": 200, "send": 201, "seal": 200}


@dataclass
class Clerk:
    login: str
    office: str
    other: str
    cookie: str
    csrf: str
    bearer: str
    messages: list[str]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: dict[str, str] = field(default_factory=dict)  # one error per kind, for the reader
    bodies: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)  # one answer per kind


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None
        return
    from tests.helpers.db import fresh_database

    server = os.environ.get("INKLESS_TEST_POSTGRES_URL", DEFAULT_PG)
    with fresh_database(backend, folder, server=server, prefix="bench_") as url:
        yield url


def prepare(root: Path, port: int, database_url: str | None, clerks: int) -> list[Clerk]:
    """A demo node with delivered messages in both offices, and a session and token per clerk."""
    from tests.helpers.seals import sample_pdf
    from tests.helpers.web import bearer, browser_login

    from inkless.app import init_node
    from inkless.config import load_settings
    from inkless.delivery.service import NewDocument
    from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo

    overrides = {"node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "base_url": f"http://127.0.0.1:{port}",
                 "fax_line": "none", "max_connections": max(256, 2 * clerks)}
    if database_url:
        overrides["database_url"] = database_url
    node = init_node(load_settings(root, env={}, overrides=overrides))
    try:
        create_demo(node.directory)
        assert node.delivery is not None
        pdf = sample_pdf()
        inboxes: dict[str, list[str]] = defaultdict(list)
        for i in range(20):
            for login, (office, other) in OFFICES.items():
                node.delivery.send(login, office, [f"{other}@{DEMO_NODE_ID}"], [], f"負荷試験 {i}",
                                   [NewDocument(f"doc-{i}.pdf", pdf)], classification=1)
        node.delivery.deliver_due(limit=100)
        for login, (office, _) in OFFICES.items():
            inboxes[office] = [item.message_id for item in node.delivery.inbox(office, login)]
        out = []
        logins = list(OFFICES)
        tokens = {login: bearer(node, login)["Authorization"] for login in logins}
        for i in range(clerks):
            login = logins[i % len(logins)]
            office, other = OFFICES[login]
            session = browser_login(node, login, client=f"clerk-{i}")
            token = tokens[login]
            out.append(Clerk(login, office, other, session.cookie, session.csrf, token, inboxes[office]))
        return out
    finally:
        node.close()


async def clerk_loop(clerk: Clerk, base: str, until: float, tally: Tally, rng: random.Random, pdf: bytes,
                     bare: bool) -> None:
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120, cookies={"inkless_session": clerk.cookie},
                                 headers={"Accept-Language": "ja"}) as client:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            started = time.perf_counter()
            try:
                response = await _request(client, kind, clerk, rng, pdf, bare)
                status = response.status_code
                detail = response.text[:200] if status != EXPECTED[kind] else ""
                if kind not in tally.bodies and status == EXPECTED[kind]:
                    tally.bodies[kind] = (status, response.headers.get("content-type", ""), response.content)
            except httpx.HTTPError as exc:
                status, detail = 0, f"{type(exc).__name__}: {exc}"
            tally.latencies[kind].append(time.perf_counter() - started)
            if status != EXPECTED[kind]:
                tally.errors[kind] += 1
                tally.samples.setdefault(kind, f"HTTP {status}: {detail}")


async def _request(client: httpx.AsyncClient, kind: str, clerk: Clerk, rng: random.Random, pdf: bytes,
                   bare: bool) -> httpx.Response:
    auth = {"Authorization": clerk.bearer}
    if kind == "inbox":
        return await client.get(f"/offices/{clerk.office}/inbox")
    if kind == "message":
        return await client.get(f"/messages/{rng.choice(clerk.messages)}")
    if kind == "inbox_api":
        return await client.get(f"/api/v1/offices/{clerk.office}/inbox", headers=auth)
    if kind == "send":
        data = {"to": f"{clerk.other}@moj", "subject": "負荷試験の送付", "classification": "1"}
        if bare:
            return await client.post("/api/v1/messages", headers=auth, content=pdf)
        return await client.post("/api/v1/messages", headers=auth, data=data,
                                 files={"files": ("load.pdf", pdf, "application/pdf")})
    if bare:
        return await client.post("/api/v1/seal", headers=auth, content=pdf)
    return await client.post("/api/v1/seal", headers=auth, data={"x": "400", "y": "700"},
                             files={"file": ("load.pdf", pdf, "application/pdf")})


async def drive(clerks: list[Clerk], base: str, seconds: float, pdf: bytes, bare: bool) -> tuple[Tally, float]:
    tally = Tally()
    until = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(clerk_loop(c, base, until, tally, random.Random(i), pdf, bare)
                           for i, c in enumerate(clerks)))
    return tally, time.perf_counter() - started


@contextmanager
def served(root: Path, topology: str, port: int, env: dict[str, str]) -> Iterator[str]:
    """The node served as ``topology`` says; yields the URL the clerks use."""
    data = str(root / "node")
    if topology == "one":
        commands = {"serve": ["serve", "--data", data, "--port", str(port)]}
        ports = {"serve": port}
    else:
        web = [port, free_port()]
        commands = {
            f"web{i + 1}": ["serve", "--no-workers", "--data", data, "--port", str(p)] for i, p in enumerate(web)
        }
        commands.update({f"worker{i + 1}": ["worker", "--data", data] for i in range(2)})
        ports = {"web1": web[0], "web2": web[1]}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            with open(root / f"{name}.log", "wb") as log:
                procs.append(subprocess.Popen([str(INKLESS), *command], stdout=log, stderr=subprocess.STDOUT, env=env))
        by_name = dict(zip(commands, procs, strict=True))
        for name, p in ports.items():
            wait_healthy(f"http://127.0.0.1:{p}", alive=lambda proc=by_name[name]: proc.poll() is None,
                         log=root / f"{name}.log")
        if topology == "one":
            yield f"http://127.0.0.1:{port}"
        else:
            from tests.helpers.haproxy import haproxy

            with haproxy(root, list(ports.values())) as lb_port:
                yield f"http://127.0.0.1:{lb_port}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        for name in commands:  # what the server said about the errors the clerks saw
            lines = (root / f"{name}.log").read_text(errors="replace").splitlines()
            problems = list(dict.fromkeys(line for line in lines if " ERROR " in line or line.startswith(
                ("sqlalchemy.", "inkless.errors.", "psycopg.", "sqlite3."))))
            for line in problems[:8]:
                print(f"  {name} log: {line[:300]}")


BARE_APP = '''
import os, pickle
from fastapi import FastAPI, Request
from fastapi.responses import Response
with open(os.environ["BARE_BODIES"], "rb") as f:
    bodies = pickle.load(f)
app = FastAPI()

def answer(kind):
    status, media, body = bodies[kind]
    return Response(body, status_code=status, media_type=media or None)

@app.get("/offices/{code}/inbox")
async def inbox(code: str): return answer("inbox")

@app.get("/messages/{message_id}")
async def message(message_id: str): return answer("message")

@app.get("/api/v1/offices/{code}/inbox")
async def inbox_api(code: str): return answer("inbox_api")

@app.post("/api/v1/messages")
async def send(request: Request):
    await request.body()
    return answer("send")

@app.post("/api/v1/seal")
async def seal(request: Request):
    await request.body()
    return answer("seal")

@app.get("/healthz")
async def healthz(): return {"ok": True}
'''


def report(name: str, tally: Tally, elapsed: float) -> float:
    total = sum(len(v) for v in tally.latencies.values())
    print(f"\n{name}: {total} requests in {elapsed:.1f} s = {total / elapsed:.1f} requests/s")
    print(f"  {'request':<10} {'count':>6} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind, _ in MIX:
        values = sorted(tally.latencies.get(kind, []))
        if not values:
            continue
        q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
        print(f"  {kind:<10} {len(values):>6} {tally.errors.get(kind, 0):>6} {q[49] * 1000:>8.0f} "
              f"{q[94] * 1000:>8.0f} {q[98] * 1000:>8.0f}")
    for kind, sample in tally.samples.items():
        print(f"  first error of {kind}: {sample}")
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clerks", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--topology", choices=("one", "haproxy"), default="one",
                        help="one inkless serve, or haproxy in front of two serve --no-workers and two workers "
                             "(PostgreSQL only; the configuration of docs/deployment.md)")
    args = parser.parse_args()
    if args.topology == "haproxy" and args.backend != "postgresql":
        parser.error("--topology haproxy needs --backend postgresql (processes share the node through it)")
    from tests.helpers.seals import sample_pdf

    pdf = sample_pdf()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "INKLESS_FAX_LINE": "none",
           "INKLESS_MAX_CONNECTIONS": str(max(256, 2 * args.clerks))}
    with tempfile.TemporaryDirectory() as tmp, database(args.backend, Path(tmp)) as url:
        root = Path(tmp)
        port = free_port()
        clerks = prepare(root / "node", port, url, args.clerks)
        with served(root, args.topology, port, env) as base:
            print(f"{args.clerks} clerks for {args.seconds:.0f} s each run; node on {args.backend}, {args.topology}")
            tally, elapsed = asyncio.run(drive(clerks, base, args.seconds, pdf, False))
            inkless_rate = report(f"inkless ({args.topology})", tally, elapsed)
        missing = [k for k, _ in MIX if k not in tally.bodies]
        if missing:
            raise SystemExit(f"no successful answer of {', '.join(missing)} to replay; see the logs in {root}")
        import pickle

        (root / "bodies.pickle").write_bytes(pickle.dumps(tally.bodies))
        (root / "bare.py").write_text(BARE_APP)
        bare_port = free_port()
        with open(root / "bare.log", "wb") as log:
            bare = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "bare:app", "--host", "127.0.0.1", "--port", str(bare_port),
                 "--log-level", "warning", "--no-access-log"],
                cwd=root, stdout=log, stderr=subprocess.STDOUT,
                env={**env, "PYTHONPATH": str(root), "BARE_BODIES": str(root / "bodies.pickle")})
            try:
                wait_healthy(f"http://127.0.0.1:{bare_port}", alive=lambda: bare.poll() is None, log=root / "bare.log")
                tally, elapsed = asyncio.run(drive(clerks, f"http://127.0.0.1:{bare_port}", args.seconds, pdf, True))
                bare_rate = report("bare FastAPI endpoints answering the same bytes", tally, elapsed)
            finally:
                bare.terminate()
                bare.wait(timeout=60)
        print(f"\nratio inkless / bare FastAPI (throughput): {inkless_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
