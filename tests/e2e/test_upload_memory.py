"""20 parallel 100 MB uploads to every upload route of a real ``inkless serve`` keep its memory within the
bound stated in docs/deployment.md (peak RSS from /proc, VmHWM)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inkless.directory.demo import create_demo
from inkless.web.limits import FORM_OVERHEAD
from tests.helpers.nodes import node_processes
from tests.helpers.web import bearer, browser_login

pytestmark = pytest.mark.slow

PARALLEL = 20
UPLOAD = 100_000_000  # 100 MB of document per upload
BLOCK = b"%PDF-1.4\n" + b"0" * (1024 * 1024 - 9)
MB = 1024 * 1024


def documented_bound_mb(uploads_in_flight: int, max_message_bytes: int, verify_max_bytes: int) -> float:
    """The bound of docs/deployment.md: 400 MB for the process, plus per upload slot twice the largest
    upload and once the largest file to verify."""
    return 400 + uploads_in_flight * (2 * (max_message_bytes + FORM_OVERHEAD) + verify_max_bytes) / MB


def multipart_stream(fields: dict[str, str], file_field: str) -> tuple[Iterator[bytes], int, str]:
    """A multipart body with ``UPLOAD`` bytes of file, produced block by block (never whole in memory)."""
    boundary = "memoryboundary"
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ) + (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="big.pdf"\r\n'
         "Content-Type: application/pdf\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def blocks() -> Iterator[bytes]:
        yield head
        left = UPLOAD
        while left > 0:
            piece = BLOCK[: min(left, len(BLOCK))]
            left -= len(piece)
            yield piece
        yield tail

    return blocks(), len(head) + UPLOAD + len(tail), f"multipart/form-data; boundary={boundary}"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


def test_parallel_large_uploads_stay_within_the_documented_memory_bound(tmp_path: Path) -> None:
    with node_processes("sqlite", tmp_path, ["moj"]) as nodes:
        moj = nodes["moj"]
        moj.init()
        control = moj.control()
        try:
            create_demo(control.directory)
            token = bearer(control, "tanaka")
            login = browser_login(control, "tanaka")
            settings = control.settings
        finally:
            control.close()
        moj.start(workers=False)
        assert moj.process is not None
        pid = moj.process.pid
        page = {"Cookie": f"inkless_session={login.cookie}", "X-CSRF-Token": login.csrf}
        message = {"to": "nobody@moj", "subject": "big"}
        steps = '[{"title": "担当", "approvers": ["tanaka"]}]'
        # (path, headers, fields, file field, the answer every upload must get)
        routes = [
            ("/api/v1/messages", token, message, "files", 404),
            ("/compose", page, message, "files", 404),
            ("/api/v1/routes", token, {"steps": steps}, "document", 413),
            ("/routes", page, {"title": "担当", "approvers": "tanaka"}, "document", 413),
            ("/verify", {}, {}, "file", 413),
            ("/api/v1/verify", {}, {}, "file", 413),
        ]
        failures: list[str] = []
        for path, headers, fields, file_field, expected in routes:
            statuses: list[int] = []

            def upload(path: str = path, headers: dict[str, str] = headers, fields: dict[str, str] = fields,
                       file_field: str = file_field, statuses: list[int] = statuses) -> None:
                body, length, content_type = multipart_stream(fields, file_field)
                try:
                    response = httpx.post(f"{moj.url}{path}", content=body, timeout=600,
                                          headers={**headers, "Content-Type": content_type,
                                                   "Content-Length": str(length)})
                    statuses.append(response.status_code)
                except httpx.TransportError as exc:
                    # Refused at once: the server may close before the client has sent everything.
                    statuses.append(-1 if "413" not in str(exc) else 413)

            threads = [threading.Thread(target=upload) for _ in range(PARALLEL)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(900)
            refused_early = statuses.count(-1)
            if sorted(set(statuses) - {-1}) != [expected] or (refused_early and expected != 413):
                failures.append(f"{path}: {sorted(statuses)}")
            assert moj.running, moj.log.read_text()[-3000:]
        peak = peak_rss_mb(pid)
        bound = documented_bound_mb(settings.uploads_in_flight, settings.max_message_bytes, settings.verify_max_bytes)
        print(f"peak RSS {peak:.0f} MB after {PARALLEL} parallel 100 MB uploads to {len(routes)} routes; "
              f"documented bound {bound:.0f} MB")
        assert failures == []
        assert peak <= bound
