"""The body guard's decisions with a fake ASGI app: parts, streamed sizes, uploads in flight."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from inkless.config import Settings
from inkless.web.limits import COLLECT_AFTER_BYTES, TOO_MANY_PARTS, BodyGuard, BodyRefused, PartCounter


def test_the_part_counter_refuses_the_part_past_the_limit() -> None:
    counter = PartCounter(b"b", max_parts=3, max_field_bytes=10)
    body = b"".join(b'--b\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\n' + b"0" * 100 + b"\r\n"
                    for _ in range(3))
    counter.feed(body)  # three file parts of 100 bytes: files may be large
    with pytest.raises(BodyRefused) as refused:
        counter.feed(b'--b\r\nContent-Disposition: form-data; name="g"\r\n\r\nx\r\n')
    assert refused.value.status_code == 413 and refused.value.detail == TOO_MANY_PARTS


def test_the_part_counter_refuses_a_long_text_field_but_not_a_long_file() -> None:
    PartCounter(b"b", 5, 10).feed(b'--b\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n' + b"0" * 50)
    with pytest.raises(BodyRefused):
        PartCounter(b"b", 5, 10).feed(b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n' + b"0" * 11)


def _settings(**overrides: int) -> Settings:
    return Settings(data_dir=Path("/nonexistent"), max_message_bytes=1000, **overrides)  # type: ignore[arg-type]


async def _refuse(scope: Scope, exc: HTTPException) -> Response:
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code)


def _scope(path: str, length: int) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": [(b"content-length", str(length).encode())],
            "query_string": b"", "root_path": ""}


def test_uploads_in_flight_wait_for_a_slot() -> None:
    inside = 0
    most = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.05)
        while (await receive()).get("more_body"):
            pass
        inside -= 1
        await PlainTextResponse("ok")(scope, receive, send)

    guard = BodyGuard(app, _settings(uploads_in_flight=2), _refuse)

    async def one() -> int:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"x" * 10, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        await guard(_scope("/api/v1/messages", 10), receive, send)
        return int(sent[0]["status"])

    async def many() -> list[int]:
        return list(await asyncio.gather(*(one() for _ in range(7))))

    assert asyncio.run(many()) == [200] * 7
    assert most == 2


def test_a_stream_past_the_cap_is_refused_and_the_rest_never_read() -> None:
    reads = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await PlainTextResponse("ok")(scope, receive, send)

    guard = BodyGuard(app, _settings(body_max_bytes=100), _refuse)
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 30, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope("/api/v1/tokens", 0)
    scope["headers"] = [(b"transfer-encoding", b"chunked")]
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 413 and reads == 4


@pytest.mark.parametrize(("size", "freed"), [(COLLECT_AFTER_BYTES, True), (COLLECT_AFTER_BYTES - 1, False)])
def test_a_large_upload_left_in_a_reference_cycle_is_reclaimed_before_its_slot_is_handed_on(
    size: int, freed: bool
) -> None:
    """A refusal's traceback holds the frames that held the upload; in a cycle it waits for the collector's
    full pass, and on a busy server such uploads piled up past the documented memory bound."""
    import gc
    import weakref

    class Upload:
        def __init__(self, data: bytes) -> None:
            self.data = data
            self.me = self  # a reference cycle: only the cyclic collector frees it

    kept: list[weakref.ref[Upload]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        kept.append(weakref.ref(Upload(body)))
        await PlainTextResponse("no such recipient", status_code=404)(scope, receive, send)

    settings = Settings(data_dir=Path("/nonexistent"), max_message_bytes=2 * COLLECT_AFTER_BYTES)
    guard = BodyGuard(app, settings, _refuse)
    chunks = [{"type": "http.request", "body": b"x" * (size // 2), "more_body": True},
              {"type": "http.request", "body": b"x" * (size - size // 2), "more_body": False}]

    async def receive() -> Message:
        return chunks.pop(0)

    async def send(message: Message) -> None:
        pass

    gc.disable()  # no collection but the guard's own
    try:
        asyncio.run(guard(_scope("/api/v1/messages", size), receive, send))
        assert (kept[0]() is None) == freed
    finally:
        gc.enable()
        gc.collect()
