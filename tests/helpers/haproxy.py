"""A private haproxy on a free loopback port, configured exactly as docs/deployment.md says."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.nodes import free_port

DEPLOYMENT_DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
_BLOCK = re.compile(r"<!-- haproxy\.cfg:[^>]*-->\s*```haproxy\n(.*?)```", re.S)


def documented_config() -> str:
    """The haproxy configuration of docs/deployment.md ("haproxy in front of several web processes")."""
    match = _BLOCK.search(DEPLOYMENT_DOC.read_text(encoding="utf-8"))
    assert match, f"no haproxy.cfg block in {DEPLOYMENT_DOC}"
    return match.group(1)


def haproxy_available() -> bool:
    return shutil.which("haproxy") is not None


@contextmanager
def haproxy(folder: Path, web: list[int]) -> Iterator[int]:
    """Run haproxy with the documented configuration in front of the web processes on ``web`` ports
    (``web1``, ``web2``); yields the port it listens on."""
    assert len(web) == 2, "the documented configuration names two web processes"
    port = free_port()
    config = folder / "haproxy.cfg"
    config.write_text(documented_config(), encoding="utf-8")
    env = {
        **os.environ,
        "INKLESS_LB_BIND": f"127.0.0.1:{port}",
        "INKLESS_WEB1": f"127.0.0.1:{web[0]}",
        "INKLESS_WEB2": f"127.0.0.1:{web[1]}",
    }
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], env=env, capture_output=True, text=True, check=False)
    assert check.returncode == 0, f"haproxy refuses the documented configuration:\n{check.stdout}{check.stderr}"
    log = (folder / "haproxy.log").open("wb")
    process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
