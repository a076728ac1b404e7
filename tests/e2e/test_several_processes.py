"""One node on several processes: two ``inkless serve --no-workers`` behind haproxy (configured as
docs/deployment.md says) and two ``inkless worker`` on one PostgreSQL database. Sends spread over both
web processes while one web process and one worker are killed with SIGKILL and started again: every
message is delivered exactly once, the audit log verifies, no blob is missing and none is on disk. And a web
process that loses its database answers 503 on /healthz, and haproxy takes it out until it is back."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from inkless.app import Node, build_node
from inkless.blob_collector import referenced_blobs
from inkless.config import load_settings
from inkless.db.tables_delivery import inbox, outbox
from tests.helpers.cli import inkless
from tests.helpers.db import fresh_database
from tests.helpers.haproxy import haproxy, haproxy_available
from tests.helpers.nodes import INKLESS, clean_env, free_port, wait_healthy
from tests.helpers.tcp_relay import TcpRelay

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not haproxy_available(), reason="haproxy is not installed (scripts/install-system-deps)"),
]

SENDS = 500
CLIENTS = 4
WAIT_SECONDS = 240
FAST = {
    "INKLESS_DELIVERY_POLL_SECONDS": "1",
    "INKLESS_DELIVERY_BACKOFF_BASE_SECONDS": "1",
    "INKLESS_DELIVERY_BACKOFF_CAP_SECONDS": "2",
    "INKLESS_DELIVERY_LEASE_SECONDS": "10",
    "INKLESS_FAX_LINE": "none",
}


@dataclass(eq=False)
class Process:
    """One ``inkless`` process of the node (a web process or a worker)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n--- start {self.name} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen([INKLESS, *self.args], stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None and self.alive(), f"{self.name} is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Cluster:
    data: Path
    env: dict[str, str]
    url: str  # haproxy
    web: list[Process]
    web_ports: list[int]
    workers: list[Process]
    control: Node
    token: str
    logs: list[Path] = field(default_factory=list)
    relay: TcpRelay | None = None  # web1's way to the database, when the test cuts it

    def tails(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs)


@contextmanager
def running_cluster(tmp_path: Path, *, workers: int = 2, web1_through_relay: bool = False) -> Iterator[Cluster]:
    """Two web processes behind haproxy and ``workers`` workers on one fresh PostgreSQL node; with
    ``web1_through_relay``, web1 reaches the database through a relay the test can cut."""
    with fresh_database("postgresql", tmp_path) as url:
        data = tmp_path / "data"
        web_ports = [free_port(), free_port()]
        env = clean_env({"INKLESS_DATABASE_URL": url, **FAST})
        relay = None
        web1_env = env
        if web1_through_relay:
            parsed = make_url(url)
            relay = TcpRelay((parsed.host or "127.0.0.1", parsed.port or 5432))
            through = parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
            web1_env = {**env, "INKLESS_DATABASE_URL": through}
        processes: list[Process] = []
        with haproxy(tmp_path, web_ports) as lb_port:
            lb = f"http://127.0.0.1:{lb_port}"
            settings_env = {k: v for k, v in env.items() if k.startswith("INKLESS_")}
            init = inkless("init", "--demo", "--url", lb, "--data", str(data), "--json", env=settings_env)
            assert init.returncode == 0, init.stderr
            control = build_node(load_settings(data, env=settings_env))
            try:
                assert control.tokens is not None
                token = control.tokens.create("tanaka", "civil-affairs", "several processes").secret
                web = [
                    Process(
                        f"web{i + 1}",
                        ["serve", "--no-workers", "--data", str(data), "--port", str(port)],
                        web1_env if i == 0 else env,
                        tmp_path / f"web{i + 1}.log",
                    )
                    for i, port in enumerate(web_ports)
                ]
                worker_processes = [
                    Process(f"worker{i + 1}", ["worker", "--data", str(data)], env, tmp_path / f"worker{i + 1}.log")
                    for i in range(workers)
                ]
                processes = [*web, *worker_processes]
                for p in processes:
                    p.start()
                for p, port in zip(web, web_ports, strict=True):
                    wait_healthy(f"http://127.0.0.1:{port}", alive=p.alive, log=p.log)
                wait_healthy(lb, log=tmp_path / "haproxy.log")
                yield Cluster(
                    data,
                    settings_env,
                    lb,
                    web,
                    web_ports,
                    worker_processes,
                    control,
                    token,
                    [p.log for p in processes] + [tmp_path / "haproxy.log"],
                    relay,
                )
            finally:
                for p in processes:
                    p.stop()
                control.close()
                if relay is not None:
                    relay.cut()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path) as running:
        yield running


class Sender:
    """Clerks' programs sending through haproxy; a send whose answer was lost is looked up in the sent
    list (as a clerk would) before it is sent again, never blindly repeated."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.acknowledged: dict[int, str] = {}
        self.served_by: Counter[str] = Counter()
        self.lost_answers = 0
        self.committed_before_loss = 0
        self.phase = "before the kill"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []

    def _client(self) -> httpx.Client:
        if not hasattr(self._local, "client"):
            self._local.client = httpx.Client(
                base_url=self.cluster.url, timeout=60, headers={"Authorization": f"Bearer {self.cluster.token}"}
            )
            with self._lock:
                self._clients.append(self._local.client)
        client: httpx.Client = self._local.client
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _already_sent(self, subject: str) -> str | None:
        assert self.cluster.control.delivery is not None
        with self._lock:
            sent = self.cluster.control.delivery.sent("civil-affairs", "tanaka")
        found = [m.message_id for m in sent if m.subject == subject]
        assert len(found) <= 1, f"{subject!r} was sent {len(found)} times"
        return found[0] if found else None

    def send(self, number: int) -> None:
        subject = f"several processes {number}"
        while True:
            try:
                answer = self._client().post(
                    "/api/v1/messages",
                    data={
                        "to": "criminal-affairs@moj",
                        "subject": subject,
                        "classification": "0",
                    },
                    files={"files": (f"notice-{number}.txt", f"notice {number}\n".encode(), "text/plain")},
                )
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 201:
                with self._lock:
                    self.acknowledged[number] = answer.json()["message_id"]
                    self.served_by[answer.headers.get("X-Inkless-Web", "?")] += 1
                    self.served_by[f"{answer.headers.get('X-Inkless-Web', '?')} {self.phase}"] += 1
                return
            assert answer is None or answer.status_code in (502, 503, 504), (answer.status_code, answer.text)
            with self._lock:
                self.lost_answers += 1
            message_id = self._already_sent(subject)
            if message_id is not None:
                with self._lock:
                    self.acknowledged[number] = message_id
                    self.committed_before_loss += 1
                return
            time.sleep(0.2)


def outbox_states(node: Node) -> Counter[str]:
    with node.db.read() as conn:
        rows = conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()
    return Counter({str(r[0]): int(r[1]) for r in rows})


def wait_until(condition: object, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{cluster.tails()}")
        time.sleep(0.2)


def test_sends_through_haproxy_survive_kill_9_of_a_web_process_and_a_worker(cluster: Cluster) -> None:
    sender = Sender(cluster)
    web1, worker1 = cluster.web[0], cluster.workers[0]
    with ThreadPoolExecutor(CLIENTS) as pool:
        # The second half is handed out once haproxy sends to web1 again: on a busy machine the first half
        # could all be answered by web2 before haproxy's health checks bring the restarted web1 back.
        futures = [pool.submit(sender.send, i) for i in range(SENDS // 2)]
        wait_until(lambda: len(sender.acknowledged) >= SENDS // 3, "a third of the sends", cluster)
        web1.kill()
        sender.phase = "while down"
        web1.start()
        wait_healthy(f"http://127.0.0.1:{cluster.web_ports[0]}", alive=web1.alive, log=web1.log)
        with httpx.Client(base_url=cluster.url, timeout=30) as probe:
            wait_until(lambda: "web1" in {probe.get("/healthz").headers.get("X-Inkless-Web") for _ in range(6)},
                       "haproxy sending to the restarted web1", cluster)
        sender.phase = "after its restart"
        futures += [pool.submit(sender.send, i) for i in range(SENDS // 2, SENDS)]
        wait_until(lambda: outbox_states(cluster.control)["delivered"] >= SENDS // 2, "half delivered", cluster)
        at_kill = outbox_states(cluster.control)
        worker1.kill()  # with deliveries claimed and in progress
        worker1.start()
        try:
            for future in futures:
                future.result()
        finally:
            sender.close()
    print(
        f"{SENDS} sends; answers lost to the kill and looked up: {sender.lost_answers} "
        f"({sender.committed_before_loss} had been stored, the others were sent again); "
        f"served by {dict(sender.served_by)}; outbox when the worker was killed: {dict(at_kill)}"
    )

    ids = sorted(set(sender.acknowledged.values()))
    assert len(ids) == SENDS
    wait_until(lambda: outbox_states(cluster.control)["delivered"] == SENDS, f"{SENDS} deliveries", cluster)
    assert outbox_states(cluster.control) == Counter({"delivered": SENDS})
    # Both web processes took sends, web1 before its kill and after its restart.
    assert sender.served_by["web1 before the kill"] > 0 and sender.served_by["web1 after its restart"] > 0
    assert sender.served_by["web2"] > 0

    # Exactly once: one sent message per send, one inbox copy each, each with its receipt.
    delivery = cluster.control.delivery
    assert delivery is not None
    subjects = Counter(m.subject for m in delivery.sent("civil-affairs", "tanaka"))
    assert subjects == Counter({f"several processes {i}": 1 for i in range(SENDS)})
    with cluster.control.db.read() as conn:
        copies = dict(conn.execute(select(inbox.c.message_id, func.count()).group_by(inbox.c.message_id)).all())
    assert copies == {message_id: 1 for message_id in ids}
    for message_id in ids[:: SENDS // 25]:
        [status] = delivery.status(message_id, "tanaka")
        assert status.state == "delivered" and status.has_receipt

    # The audit log recomputes; every blob a record names is there and matches its address; none on disk.
    verify = inkless("audit", "verify", "--data", str(cluster.data), env=cluster.env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    blobs = referenced_blobs(cluster.control)
    assert len(blobs) >= SENDS
    for digest in blobs:
        cluster.control.blobs.get(digest)
    on_disk = [p for p in (cluster.data / "blobs").rglob("*") if p.is_file()]
    assert on_disk == []
    # A clerk of the receiving office reads a message through haproxy.
    opened = delivery.open_message(ids[-1], "takahashi")
    assert opened.documents[0].data.startswith(b"notice ")


def test_haproxy_takes_out_a_web_process_that_lost_its_database_and_brings_it_back(tmp_path: Path) -> None:
    with (
        running_cluster(tmp_path, workers=0, web1_through_relay=True) as cluster,
        httpx.Client(base_url=cluster.url, timeout=30, headers={"Authorization": f"Bearer {cluster.token}"}) as client,
    ):
        assert cluster.relay is not None

        def served_by() -> str:
            """Which web process answered a clerk's request, or "failed" (before haproxy took web1 out)."""
            answer = client.get("/api/v1/offices")
            return answer.headers["X-Inkless-Web"] if answer.status_code == 200 else "failed"

        wait_until(lambda: {served_by() for _ in range(6)} == {"web1", "web2"}, "both web processes", cluster)
        cluster.relay.cut()
        direct = httpx.get(f"http://127.0.0.1:{cluster.web_ports[0]}/healthz", timeout=30)
        assert direct.status_code == 503 and direct.json()["database_reachable"] is False
        # haproxy's checks see the 503 and take web1 out: from then on every request succeeds, on web2.
        wait_until(lambda: {served_by() for _ in range(6)} == {"web2"}, "web1 taken out", cluster)
        assert {served_by() for _ in range(20)} == {"web2"}
        cluster.relay.restore()
        wait_until(lambda: "web1" in {served_by() for _ in range(6)}, "web1 back in", cluster)
