"""Running nodes for federation tests: in-process servers (integration) and real processes (e2e).

:class:`NodeProcess` runs the real console script: ``inkless init`` with its own data
folder (SQLite, or a fresh PostgreSQL schema), then ``inkless serve`` on a free
loopback port; it can stop the server with SIGTERM, kill it with SIGKILL, and start
it again on the same port and data. :class:`ThreadedServer` serves an in-process
:class:`~inkless.app.Node` with uvicorn in a thread, for integration tests that
need real HTTP between nodes without the cost of processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import update

from inkless.app import Node, build_node
from inkless.config import load_settings
from inkless.db.tables_delivery import outbox
from inkless.db.tables_fax import fax_jobs
from inkless.db.tables_mail import mail_outbox
from tests.helpers.db import fresh_database

INKLESS = str(Path(sys.executable).with_name("inkless"))
STARTUP_LIMIT_SECONDS = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_refusing: socket.socket | None = None


def refused_port() -> int:
    """A loopback TCP port that refuses connections for the whole test run, whatever else runs on the machine.

    The port is bound by this process and never listened on, so no other program can take it; use it
    for node addresses that must not be reached (a node's own ``base_url`` in a test without a server,
    an unreachable peer), never a fixed number such as 8080 or 9.
    """
    global _refusing
    if _refusing is None:
        _refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _refusing.bind(("127.0.0.1", 0))
    return int(_refusing.getsockname()[1])


def refused_url(path: str = "") -> str:
    """``http://127.0.0.1:<refused_port()>`` + ``path``."""
    return f"http://127.0.0.1:{refused_port()}{path}"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without INKLESS_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    env.update(extra or {})
    return env


def wait_healthy(url: str, alive: Any = None, limit: float = STARTUP_LIMIT_SECONDS, log: Path | None = None) -> None:
    """Poll ``url``/healthz until it answers 200; ``alive()`` False means the server died."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise AssertionError(f"the server at {url} exited:\n{log.read_text() if log else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server at {url} did not answer /healthz:\n{log.read_text() if log else ''}")


@dataclass(eq=False)
class NodeProcess:
    """A node with its own data folder, served by a real ``inkless serve`` process."""

    node_id: str
    data: Path
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    fingerprint: str = ""
    starts: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``inkless ARGS --data DATA``; with ``check`` a non-zero exit fails with stderr shown."""
        result = subprocess.run(
            [INKLESS, *args, "--data", str(self.data)],
            capture_output=True, text=True, env=self.env, check=False, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"inkless {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def init(self, *offices: tuple[str, str]) -> None:
        """``inkless init`` with this node's id and URL, then the offices (code, name)."""
        self.finish_init(self.begin_init(), offices)

    def begin_init(self) -> subprocess.CompletedProcess[str]:
        """``inkless init`` for this node, run in this process (tests/helpers/cli.py): the command costs
        a tenth of a second here against seconds of imports and key generation in a process of its own."""
        from tests.helpers.cli import inkless

        env = {k: v for k, v in self.env.items() if k.startswith("INKLESS_")}
        return inkless("init", "--node-id", self.node_id, "--url", self.url, "--json", "--data", str(self.data),
                       env=env)

    def finish_init(self, process: subprocess.CompletedProcess[str], offices: tuple[tuple[str, str], ...]) -> None:
        """Check ``inkless init`` and add the offices.

        The offices are added in-process, as ``inkless office add`` would: that command has its own tests.
        """
        out, err = process.stdout, process.stderr
        if process.returncode != 0:
            raise AssertionError(f"inkless init exited {process.returncode}:\n{err}")
        self.fingerprint = str(json.loads(out)["node"]["ca_fingerprint"])
        node = self.control()
        try:
            for code, name in offices:
                node.directory.add_office(code, name, actor="cli")
        finally:
            node.close()

    def control(self) -> Node:
        """The node's data opened in this process, as a second process (``inkless send``, a worker) would."""
        return build_node(load_settings(self.data, env=self.env))

    def start(self, *, workers: bool = True, wait: bool = True) -> None:
        """``inkless serve --port P`` in the background; with ``wait``, returns once /healthz answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n--- start {self.starts} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [INKLESS, "serve", "--data", str(self.data), "--port", str(self.port),
                 *([] if workers else ["--no-workers"])],
                stdout=out, stderr=subprocess.STDOUT, env=self.env,
            )
        if wait:
            self.wait()

    def wait(self) -> None:
        """Wait until the started server answers /healthz (fails if it exits first)."""
        process = self.process
        assert process is not None
        wait_healthy(self.url, alive=lambda: process.poll() is None, log=self.log)

    def stop(self) -> int | None:
        """SIGTERM and wait (the server finishes its current work first); returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@contextmanager
def node_processes(
    backend: str, folder: Path, node_ids: list[str], settings: dict[str, str] | None = None
) -> Iterator[dict[str, NodeProcess]]:
    """Nodes (not yet initialised or started) with separate data folders and databases; stopped at the end.

    ``settings`` become INKLESS_* variables of every node (e.g. a short outbox poll interval).
    """
    with ExitStack() as stack:
        nodes: dict[str, NodeProcess] = {}
        for node_id in node_ids:
            home = folder / node_id
            home.mkdir(parents=True)
            database_url = stack.enter_context(fresh_database(backend, home))
            extra = {f"INKLESS_{k.upper()}": v for k, v in (settings or {}).items()}
            if backend == "postgresql":
                extra["INKLESS_DATABASE_URL"] = database_url
            nodes[node_id] = NodeProcess(
                node_id=node_id, data=home / "data", port=free_port(), env=clean_env(extra), log=home / "serve.log",
            )
        try:
            yield nodes
        finally:
            for node in nodes.values():
                node.stop()


def init_nodes(offices: dict[NodeProcess, tuple[tuple[str, str], ...]]) -> None:
    """Initialise several nodes, each with its offices."""
    started = [(node, node.begin_init()) for node in offices]
    for node, process in started:
        node.finish_init(process, offices[node])


def start_nodes(*nodes: NodeProcess) -> None:
    """Start several ``inkless serve`` processes at once and wait until all answer."""
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        node.wait()


def settle_pending_work(node: Node) -> None:
    """The explicit reset between tests that share one node: no work of an earlier test stays queued.

    Outbox rows still waiting (queued, retrying, or handed to the fax fallback) and mails not yet sent
    are marked expired and unfinished fax jobs failed, so that a test's delivery and fax runs see only what
    the test queued.
    """
    reason = "settled between tests"
    with node.db.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.state.in_(("queued", "retrying", "fax")))
                     .values(state="expired", last_error=reason))
        conn.execute(update(fax_jobs).where(fax_jobs.c.state.in_(("queued", "sending", "retrying")))
                     .values(state="failed", last_text=reason))
        conn.execute(update(mail_outbox).where(mail_outbox.c.state.in_(("queued", "retrying")))
                     .values(state="expired", body_enc=None, last_error=reason))


class ThreadedServer:
    """An in-process node served over real HTTP by uvicorn in a thread (no workers)."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_healthy(self.url, alive=self.thread.is_alive, limit=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
