"""``inkless worker`` as an operator runs it: it logs at ``log_level`` and stops promptly on SIGTERM.

The fax job in progress dials the node's loopback remote, here a socket we hold: a remote that
never answers the call, or one that answers and then goes silent. Stopping must not wait for the
600 s dial timeout: the worker hangs up and hands the job back to the queue.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.fax.loopback import socket_address
from tests.helpers.nodes import INKLESS, clean_env
from tests.helpers.seals import sample_pdf

STOP_LIMIT_SECONDS = 10.0


def inkless(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INKLESS, *args], capture_output=True, text=True, env=clean_env(), check=False,
                          timeout=120)


class SilentRemote:
    """A fax number that takes the call and then never answers (or answers, then sends nothing)."""

    def __init__(self, path: Path, answer: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with socket_address(path) as address:
            self.server.bind(address)
        self.server.listen(4)
        self.answer = answer
        self.called = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        self.held.append(conn)
        if self.answer:
            conn.recv(4096)  # the call setup line
            conn.sendall(b'{"answer": "ok"}\n')  # and then not one audio frame
        self.called.set()

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.server.close()


@pytest.fixture
def node_with_a_queued_fax(tmp_path: Path) -> Path:
    data = tmp_path / "node"
    assert inkless("init", "--data", str(data), "--demo").returncode == 0
    document = tmp_path / "notice.pdf"
    document.write_bytes(sample_pdf())
    queued = inkless("fax", "send", str(document), "--from", "civil-affairs", "--to", "0312345678",
                     "--no-cover", "--data", str(data))
    assert queued.returncode == 0, queued.stderr
    return data


@pytest.fixture(params=["never answers", "answers then falls silent"])
def remote(request: pytest.FixtureRequest, node_with_a_queued_fax: Path) -> Iterator[SilentRemote]:
    silent = SilentRemote(node_with_a_queued_fax / "fax" / "remote.sock", answer=request.param != "never answers")
    try:
        yield silent
    finally:
        silent.close()


def test_sigterm_hangs_up_and_hands_the_job_back_within_10_seconds(
    node_with_a_queued_fax: Path, remote: SilentRemote, tmp_path: Path
) -> None:
    data = node_with_a_queued_fax
    log_file = tmp_path / "worker.log"
    with log_file.open("w") as stderr:
        worker = subprocess.Popen(
            [INKLESS, "worker", "--data", str(data)], stdout=subprocess.PIPE, stderr=stderr, text=True,
            env=clean_env({"INKLESS_LOG_LEVEL": "INFO", "INKLESS_FAX_POLL_SECONDS": "1"}),
        )
    try:
        assert remote.called.wait(90), "the worker never dialled"
        time.sleep(0.5)  # the call is now in progress
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
        stopped_after = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    log = log_file.read_text()
    assert worker.returncode == 0, log
    assert stopped_after < STOP_LIMIT_SECONDS, (stopped_after, log)
    assert "workers stopped" in out and "Traceback" not in log
    # log_level is honoured: INFO lines of the workers appear.
    assert "INFO inkless.workers: background tasks running" in log
    assert "fax job 1: call interrupted" in log

    [job] = json.loads(inkless("fax", "jobs", "--json", "--data", str(data)).stdout)
    assert job["state"] == "retrying" and job["tries"] == 1
    assert "call interrupted" in job["last_text"]
    entries = json.loads(inkless("audit", "list", "--action", "fax.attempt_interrupted", "--json",
                                 "--data", str(data)).stdout)
    assert [e["object_id"] for e in entries] == ["1"]


def test_a_lower_log_level_hides_info_lines(tmp_path: Path) -> None:
    data = tmp_path / "node"
    assert inkless("init", "--data", str(data)).returncode == 0
    worker = subprocess.Popen(
        [INKLESS, "worker", "--data", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env({"INKLESS_LOG_LEVEL": "WARNING", "INKLESS_FAX_LINE": "none"}),
    )
    try:
        assert worker.stdout is not None and "workers running" in worker.stdout.readline()
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0 and "INFO" not in err
