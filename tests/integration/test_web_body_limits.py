"""Request bodies are bounded before anything parses them, over real HTTP (uvicorn on a loopback port):
declared and streamed sizes, multipart parts, slow senders, and the login before the body."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from inkless.app import Node, build_node
from inkless.directory.demo import DemoSample
from inkless.web.app import create_app
from tests.helpers.nodes import ThreadedServer, free_port
from tests.helpers.web import TestClient, bearer, browser_login

BODY_TIMEOUT = 3


@pytest.fixture
def guarded(node: Node, demo: DemoSample) -> Iterator[Node]:
    # Small numbers so that the tests are quick; the defaults are documented in docs/configuration.md.
    settings = dataclasses.replace(node.settings, body_timeout_seconds=BODY_TIMEOUT, max_message_bytes=2_000_000,
                                   verify_max_bytes=1_000_000, form_max_parts=20)
    n = build_node(settings)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def server(guarded: Node) -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app(guarded), free_port()) as s:
        yield s


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    closed: bool
    pieces_sent: int = 0

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


def exchange(server: ThreadedServer, method: str, path: str, headers: dict[str, str], body: list[bytes] | None = None,
             pause: float = 0.0, limit: float = 30.0) -> Answer:
    """Send a request by hand (headers, then ``body`` piece by piece with ``pause`` between) and read the answer.

    Pieces after the server has answered are not sent: the answer must come without them.
    """
    port = int(server.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall((head + "\r\n").encode("latin-1"))
        received = b""
        sent = 0
        for piece in body or []:
            sock.settimeout(pause or 0.05)
            try:
                received += sock.recv(65536)
            except TimeoutError:
                pass
            if received:
                break
            sock.settimeout(limit)  # a busy server may take a while to read a large piece
            try:
                sock.sendall(piece)
                sent += 1
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
        sock.settimeout(limit)
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer after {received!r}"
            received += chunk
        head_bytes, _, rest = received.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        answer_headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(answer_headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        seconds = time.monotonic() - started
        sock.settimeout(5)
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True  # closed with our unread bytes still in its buffer: a reset
        except TimeoutError:
            closed = False
    return Answer(status, answer_headers, rest[:length], seconds, closed, sent)


@pytest.mark.parametrize(
    ("path", "declared", "content_type"),
    [
        ("/api/v1/tokens", 400_000_000, "application/json"),
        ("/verify", 1_000_000_000, "multipart/form-data; boundary=x"),
        ("/api/v1/verify", 1_000_000_000, "multipart/form-data; boundary=x"),
        ("/api/v1/routes", 1_000_000_000, "multipart/form-data; boundary=x"),
        ("/login", 500_000_000, "application/x-www-form-urlencoded"),
    ],
)
def test_a_declared_length_over_the_cap_is_refused_before_a_byte_is_read(
    server: ThreadedServer, path: str, declared: int, content_type: str
) -> None:
    answer = exchange(server, "POST", path, {"Content-Length": str(declared), "Content-Type": content_type},
                      [b"x" * 1024], pause=2.0)
    assert answer.status == 413
    assert answer.seconds < 5 and answer.closed
    if path.startswith("/api/"):
        assert "limit" in str(answer.json()["detail"])
    else:
        page = answer.body.decode()
        assert '<html lang="ja">' in page and "大きすぎます" in page


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_cap(server: ThreadedServer) -> None:
    # Chunked: no length to check up front. 8 KB is the login form's cap; 64 chunks of 1 KB are offered.
    chunk = b"400\r\n" + b"a" * 1024 + b"\r\n"
    answer = exchange(server, "POST", "/login?lang=en", {"Transfer-Encoding": "chunked",
                                                         "Content-Type": "application/x-www-form-urlencoded"},
                      [chunk] * 64, pause=0.05)
    assert answer.status == 413 and answer.closed
    assert "too large" in answer.body.decode().lower()


@pytest.mark.parametrize(
    ("path", "content_type", "expected"),
    [
        ("/api/v1/tokens", "application/json", 401),
        ("/api/v1/routes", "multipart/form-data; boundary=x", 401),
        ("/api/v1/messages", "multipart/form-data; boundary=x", 401),
        ("/api/v1/fax/rules", "application/json", 401),
        ("/compose", "multipart/form-data; boundary=x", 303),
        ("/routes", "multipart/form-data; boundary=x", 303),
    ],
)
def test_a_stranger_is_refused_before_the_body_is_read(
    server: ThreadedServer, path: str, content_type: str, expected: int
) -> None:
    # Within the cap, but only the first KB is ever sent: the answer may not wait for the rest.
    answer = exchange(server, "POST", path, {"Content-Length": "60000", "Content-Type": content_type},
                      [b"x" * 1024, b"x" * 1024], pause=2.0, limit=10)
    assert answer.status == expected
    assert answer.seconds < 4
    if expected == 401:
        assert answer.json()["detail"] == "authentication required"
    else:
        assert answer.headers["location"] == "/login"


def test_a_reply_to_a_message_the_caller_cannot_see_is_refused_before_the_body_is_read(
    server: ThreadedServer, guarded: Node
) -> None:
    # A clerk, logged in, answering a message id that names nothing in the office: 404 after the first KB.
    answer = exchange(server, "POST", "/api/v1/messages/0d5c2a8e-0000-4000-8000-000000000000/reply",
                      {"Content-Length": "60000", "Content-Type": "multipart/form-data; boundary=x",
                       **bearer(guarded, "tanaka")}, [b"x" * 1024, b"x" * 1024], pause=2.0, limit=10)
    assert answer.status == 404
    assert answer.seconds < 4
    assert answer.pieces_sent <= 1  # answered at once: the second KB, 2 s later, was never needed


def test_a_body_trickling_one_byte_every_ten_seconds_gets_408_and_is_disconnected(
    server: ThreadedServer, guarded: Node
) -> None:
    answer = exchange(server, "POST", "/login", {"Content-Length": "40",
                                                 "Content-Type": "application/x-www-form-urlencoded"},
                      [b"l", b"o", b"g"], pause=10.0, limit=30)
    assert answer.status == 408
    assert BODY_TIMEOUT <= answer.seconds < BODY_TIMEOUT + 5
    assert answer.closed
    assert "時間がかかりすぎ" in answer.body.decode()
    token = bearer(guarded, "tanaka")
    api = exchange(server, "POST", "/api/v1/tokens", {"Content-Length": "40", "Content-Type": "application/json",
                                                      **token}, [b"{", b'"'], pause=10.0, limit=30)
    assert api.status == 408 and api.closed
    assert api.json()["detail"] == "The request was sent too slowly and was cancelled."


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    boundary = "inklessboundary"
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_too_many_parts_or_too_long_a_field_are_refused_while_streaming(guarded: Node) -> None:
    token = bearer(guarded, "tanaka")
    login = browser_login(guarded, "tanaka")
    fields = [("to", None, b"criminal-affairs@moj"), ("subject", None, "件名".encode())]
    many, many_type = _multipart([*fields, *[("files", f"p{i}.pdf", b"%PDF-1.4 " * 100) for i in range(40)]])
    long, long_type = _multipart([*fields, ("procedure_code", None, b"a" * 200_000),
                                  ("files", "a.pdf", b"%PDF-1.4")])
    with TestClient(create_app(guarded)) as client:
        for body, content_type in ((many, many_type), (long, long_type)):
            answer = client.post("/api/v1/messages", content=body, headers={"Content-Type": content_type, **token})
            assert answer.status_code == 413, answer.text
            assert answer.json()["detail"] == "The form has too many parts or too long a field."
        browser = TestClient(client.app, cookies=login.cookies)
        page = browser.post("/compose", content=many, headers={"Content-Type": many_type, "X-CSRF-Token": login.csrf})
        assert page.status_code == 413 and "部分が多すぎる" in page.text
        # Within the limits the same form goes through.
        fine, fine_type = _multipart([*fields, ("files", "a.pdf", b"%PDF-1.4 ok")])
        ok = client.post("/api/v1/messages", content=fine, headers={"Content-Type": fine_type, **token})
        assert ok.status_code == 201, ok.text


def test_990_file_parts_of_1_mb_are_refused_after_the_first_few(server: ThreadedServer, guarded: Node) -> None:
    # Streamed (chunked), so that only counting can stop it: 990 MB offered, part by part.
    part = b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"p.pdf\"\r\n\r\n" + b"0" * (1024 * 1024)
    chunk = f"{len(part) + 2:x}\r\n".encode() + part + b"\r\n\r\n"
    pieces = (chunk for _ in range(990))
    answer = exchange(server, "POST", "/api/v1/messages",
                      {"Transfer-Encoding": "chunked", "Content-Type": "multipart/form-data; boundary=x",
                       **bearer(guarded, "tanaka")}, list(pieces), pause=0.05, limit=60)
    assert answer.status == 413 and answer.closed
    assert answer.pieces_sent < 30  # a few MB read of 990 MB: the rest never reached the server
    assert "limit of 2,000,000 bytes" in str(answer.json()["detail"])


def test_every_route_taking_a_file_has_the_upload_cap_and_the_tables_name_real_routes(guarded: Node) -> None:
    from fastapi.routing import APIRoute

    from inkless.web.limits import INTAKE_ROUTES, LOGIN_ROUTES, UPLOAD_ROUTES, VERIFY_ROUTES, BodyCaps

    app = create_app(guarded)
    table: list[tuple[str, APIRoute]] = app.state.route_table
    # Every path parameter reads as {id}, the placeholder of the limit tables.
    posts = {re.sub(r"\{[^}]+\}", "{id}", path) for path, route in table if "POST" in route.methods}
    assert set(UPLOAD_ROUTES + VERIFY_ROUTES + LOGIN_ROUTES + INTAKE_ROUTES) <= posts
    caps = BodyCaps(guarded.settings)
    uploading = set()
    for path, route in table:
        takes_file = any("UploadFile" in str(p.field_info.annotation) for p in route.dependant.body_params)
        reads_form = route.endpoint.__name__ in ("send_message", "reply_message", "compose_send")
        if takes_file or reads_form:
            uploading.add(path)
            concrete = re.sub(r"\{[^}]+\}", "m1", path)
            assert caps.of("POST", concrete) in (caps.upload, caps.verify, caps.intake), path
    assert {"/api/v1/routes", "/routes", "/verify", "/api/v1/verify", "/api/v1/seal", "/fax/send",
            "/api/v1/fax/jobs", "/compose", "/api/v1/messages", "/intake/{office}"} <= uploading
    assert caps.of("POST", "/intake/civil-affairs") == caps.intake
    assert caps.of("POST", "/intake/civil-affairs/confirm") == caps.default
    assert caps.of("POST", "/api/v1/tokens") == caps.default
    assert caps.of("POST", "/login") == caps.login
    assert caps.of("GET", "/api/v1/messages") == caps.default
