"""A real node for end-to-end tests: ``inkless init --demo`` and ``inkless serve`` as separate processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.cli import inkless
from tests.helpers.db import fresh_database

INKLESS = str(Path(sys.executable).with_name("inkless"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_LIMIT_SECONDS = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServedNode:
    """A node initialised with the demo data and served by ``inkless serve`` on a free port."""

    url: str
    data: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``inkless ARGS --data DATA`` against this node."""
        return subprocess.run(
            [INKLESS, *args, "--data", str(self.data)],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=120,
        )

    def stop(self) -> int:
        """SIGTERM the server and wait for it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    env.update(extra)
    return env


@pytest.fixture
def served_node(backend: str, tmp_path: Path) -> Iterator[ServedNode]:
    """``inkless init --demo`` then ``inkless serve`` (SQLite, or PostgreSQL in a fresh schema)."""
    data = tmp_path / "node"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with fresh_database(backend, tmp_path) as database_url:
        env = _clean_env({"INKLESS_DATABASE_URL": database_url} if backend == "postgresql" else {})
        # The init in this process (tests/helpers/cli.py); the server below is a real process.
        init = inkless("init", "--data", str(data), "--demo", "--url", url, "--json",
                       env={k: v for k, v in env.items() if k.startswith("INKLESS_")})
        assert init.returncode == 0, init.stderr
        accounts = {a["login"]: a for a in json.loads(init.stdout)["accounts"]}
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [INKLESS, "serve", "--data", str(data), "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        node = ServedNode(url=url, data=data, env=env, process=process, log=log, accounts=accounts)
        try:
            _wait_until_healthy(node)
            yield node
        finally:
            node.stop()


def _wait_until_healthy(node: ServedNode) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            pytest.fail(f"inkless serve exited with {node.process.returncode}:\n{node.log.read_text()}")
        try:
            if httpx.get(f"{node.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"inkless serve did not answer /healthz:\n{node.log.read_text()}")
