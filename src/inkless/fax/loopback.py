"""The ``loopback`` line: a telephone line with no network behind it, carried over a local UNIX socket.

Protocol (one stream connection per call; the caller connects to the answerer's socket):

1. caller → answerer, one JSON line: ``{"inkless-fax-loopback": 1, "called": "0312345678",
   "calling": "0398765432", "sub_address": null}`` (the network's DID, CID and sub-address);
2. answerer → caller, one JSON line: ``{"answer": "ok"}``, or ``{"answer": "busy"}`` /
   ``{"answer": "no answer"}`` after which the answerer closes the connection;
3. audio: each side repeatedly writes one frame (160 samples of 8 kHz signed 16-bit
   little-endian PCM, 320 bytes, 20 ms of line time) and then reads one frame from the
   other side. There is no real-time pacing: the call runs as fast as both CPUs allow.
4. hang-up: closing the connection. After its T.30 phase E a side keeps the line for
   another second of line time (so the last frames reach the far end), then closes.
   A side whose peer hung up hears silence until its own T.30 timers end the call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inkless import timefmt
from inkless.clock import Clock, SystemClock
from inkless.errors import FaxError
from inkless.fax import header as fax_header
from inkless.fax.line import BUSY, DEFAULT_DIAL_TIMEOUT_S, NO_ANSWER, IncomingCallHandler, register_line
from inkless.fax.model import CallResult, CallSetup
from inkless.fax.terminal import (
    DROPPED_LINE_GRACE_S,
    FRAME_BYTES,
    FRAME_SAMPLES,
    LINGER_S,
    SAMPLE_RATE,
    SILENCE,
    AudioTerminal,
    TerminalOptions,
    call_result,
)

if TYPE_CHECKING:
    from inkless.config import Settings

log = logging.getLogger("inkless.fax.loopback")

PROTOCOL_VERSION = 1
MAX_SETUP_BYTES = 4096
# How long a side waits for the far end's next frame before it treats the call as dropped (wall clock).
FRAME_TIMEOUT_S = 30.0
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


@contextlib.contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """An address for ``path`` that fits sockaddr_un (long paths go through /proc/self/fd on Linux)."""
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        yield str(path)
        return
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise FaxError(f"loopback socket folder {path.parent} cannot be opened: {exc.strerror}") from None
    try:
        alias = f"/proc/self/fd/{fd}/{path.name}"
        if len(os.fsencode(alias)) > MAX_SOCKET_PATH or not os.path.isdir(f"/proc/self/fd/{fd}"):
            raise FaxError(f"loopback socket path is longer than {MAX_SOCKET_PATH} bytes: {path}")
        yield alias
    finally:
        os.close(fd)


def connect(path: Path, timeout_s: float) -> socket.socket:
    """A stream connection to the UNIX socket at ``path`` (raises OSError like socket.connect)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        with socket_address(path) as address:
            sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _read_line(sock: socket.socket) -> dict[str, Any] | None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_SETUP_BYTES:
            raise FaxError("loopback call setup message is too long")
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FaxError("loopback call setup message is not JSON") from None
    if not isinstance(message, dict):
        raise FaxError("loopback call setup message is not a JSON object")
    return message


def _send_line(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, ensure_ascii=False).encode() + b"\n")


def _recv_frame(sock: socket.socket) -> bytes | None:
    buf = bytearray()
    while len(buf) < FRAME_BYTES:
        chunk = sock.recv(FRAME_BYTES - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class OpenCalls:
    """The outbound calls a line has in progress, so that :meth:`hang_up` can drop them all at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.dropped = threading.Event()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if self.dropped.is_set():
                raise FaxError("the line was hung up: this process is stopping")
            self._sockets.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def hang_up(self) -> None:
        """Drop every call: a blocked read on its socket returns at once, the terminal abandons the call."""
        with self._lock:
            self.dropped.set()
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def pump(
    sock: socket.socket,
    terminal: AudioTerminal,
    *,
    max_line_s: float,
    hangup: Callable[[], bool] | None = None,
    dropped: threading.Event | None = None,
) -> float:
    """Exchange audio frames over ``sock`` until the terminal's call is over; returns line seconds.

    ``dropped`` set means our side hung up (the process is stopping): the call ends at once.
    """
    sock.settimeout(FRAME_TIMEOUT_S)
    max_samples = int(max_line_s * SAMPLE_RATE)
    connected = True
    linger = 0
    silent_since: int | None = None
    try:
        while True:
            if dropped is not None and dropped.is_set() and not terminal.done:
                terminal.abandon()
                break
            frame = terminal.tx_frame()
            incoming: bytes | None = None
            if connected:
                try:
                    sock.sendall(frame)
                    incoming = _recv_frame(sock)
                except OSError:  # reset, broken pipe or a stalled far end: the line is gone
                    incoming = None
                if incoming is None:
                    connected = False
                    silent_since = terminal.samples
            terminal.rx_frame(incoming if incoming is not None else SILENCE)
            if terminal.done:
                linger += 1
                if not connected or linger * FRAME_SAMPLES >= LINGER_S * SAMPLE_RATE:
                    break
            elif hangup is not None and connected and hangup():
                # We drop the line mid-call, as a remote machine that loses power would.
                terminal.abandon()
                break
            elif silent_since is not None and terminal.samples - silent_since > DROPPED_LINE_GRACE_S * SAMPLE_RATE:
                terminal.abandon()
                break
            elif terminal.samples >= max_samples:
                terminal.abandon()
                break
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return terminal.samples / SAMPLE_RATE


def place_call(
    socket_path: Path,
    setup: CallSetup,
    tiff: bytes,
    *,
    options: TerminalOptions,
    timeout_s: float = DEFAULT_DIAL_TIMEOUT_S,
    hangup_after_page: int | None = None,
    calls: OpenCalls | None = None,
) -> CallResult:
    """Call the answerer listening on ``socket_path`` and send the TIFF-F ``tiff`` (already stamped)."""
    calls = calls or OpenCalls()
    started = datetime.now(UTC)
    try:
        sock = connect(socket_path, FRAME_TIMEOUT_S)
    except (FileNotFoundError, ConnectionRefusedError):
        raise FaxError(NO_ANSWER) from None
    except OSError as exc:
        raise FaxError(f"loopback line: cannot reach {socket_path}: {exc}") from None
    try:
        calls.add(sock)
    except FaxError:
        sock.close()
        raise
    try:
        return _call(sock, setup, tiff, options, timeout_s, hangup_after_page, calls, started)
    finally:
        calls.discard(sock)


def _call(sock: socket.socket, setup: CallSetup, tiff: bytes, options: TerminalOptions, timeout_s: float,
          hangup_after_page: int | None, calls: OpenCalls, started: datetime) -> CallResult:
    from inkless.fax.terminal import hangup_after_pages

    try:
        _send_line(sock, {
            "inkless-fax-loopback": PROTOCOL_VERSION,
            "called": setup.called_number,
            "calling": setup.calling_number,
            "sub_address": setup.sub_address,
        })
        reply = _read_line(sock)
    except OSError:
        sock.close()
        raise FaxError(NO_ANSWER) from None
    if calls.dropped.is_set():
        sock.close()
        raise FaxError("the line was hung up: this process is stopping")
    answer = reply.get("answer") if reply else NO_ANSWER
    if answer != "ok":
        sock.close()
        raise FaxError(BUSY if answer == BUSY else NO_ANSWER)
    with tempfile.TemporaryDirectory(prefix="inkless-fax-") as tmp:
        tx_file = Path(tmp) / "tx.tif"
        tx_file.write_bytes(tiff)
        with AudioTerminal(calling=True, options=options, tx_file=tx_file) as terminal:
            hangup = hangup_after_pages(terminal, hangup_after_page) if hangup_after_page is not None else None
            line_s = pump(sock, terminal, max_line_s=timeout_s, hangup=hangup, dropped=calls.dropped)
            assert terminal.outcome is not None
            return call_result(
                terminal.outcome, sending=True, line_seconds=line_s, started_at=started,
                local_ident=options.ident, setup=setup,
            )


def answer_call(
    sock: socket.socket,
    setup: CallSetup,
    *,
    options: TerminalOptions,
    max_line_s: float = DEFAULT_DIAL_TIMEOUT_S,
    hangup_after_page: int | None = None,
) -> CallResult:
    """Answer an accepted call (setup already read, "ok" already sent) and receive the fax."""
    from inkless.fax.terminal import hangup_after_pages

    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="inkless-fax-") as tmp:
        rx_file = Path(tmp) / "rx.tif"
        with AudioTerminal(calling=False, options=options, rx_file=rx_file) as terminal:
            hangup = hangup_after_pages(terminal, hangup_after_page) if hangup_after_page is not None else None
            line_s = pump(sock, terminal, max_line_s=max_line_s, hangup=hangup)
            outcome = terminal.outcome
        assert outcome is not None
        # spandsp finishes the TIFF when the terminal is released: read it afterwards.
        received = rx_file.read_bytes() if rx_file.exists() and rx_file.stat().st_size > 0 else None
    return call_result(
        outcome, sending=False, line_seconds=line_s, started_at=started,
        local_ident=options.ident, setup=setup, received_tiff=received,
    )


def read_setup(sock: socket.socket) -> CallSetup:
    """Read and check a caller's setup message."""
    message = _read_line(sock)
    if message is None or message.get("inkless-fax-loopback") != PROTOCOL_VERSION:
        raise FaxError("not an inkless loopback fax call (wrong or missing setup message)")

    def text(key: str) -> str | None:
        value = message.get(key)
        return str(value)[:64] if value not in (None, "") else None

    return CallSetup(called_number=text("called"), calling_number=text("calling"), sub_address=text("sub_address"))


class Answerer:
    """Accepts calls on a UNIX socket; ``decide(setup, n)`` says ok/busy/no answer, ``on_call`` takes the call.

    Each call runs in its own thread with its own spandsp terminal.
    """

    def __init__(
        self,
        socket_path: Path,
        on_call: Callable[[socket.socket, CallSetup], None],
        decide: Callable[[CallSetup, int], str] = lambda _setup, _n: "ok",
        *,
        max_calls: int = 16,
    ) -> None:
        self.socket_path = socket_path
        self._on_call = on_call
        self._decide = decide
        self._slots = threading.BoundedSemaphore(max_calls)
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._calls: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._count = 0
        self._stopping = threading.Event()

    def start(self) -> None:
        """Bind the socket (replacing a stale one) and accept calls in a background thread."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with socket_address(self.socket_path) as address:
            server.bind(address)
        os.chmod(self.socket_path, 0o660)  # the line is the node's: not for every local user
        server.listen(16)
        server.settimeout(0.2)
        self._server = server
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"fax-answer:{self.socket_path.name}", daemon=True
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            thread = threading.Thread(target=self._serve, args=(conn,), name="fax-call", daemon=True)
            with self._lock:
                self._calls.add(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(FRAME_TIMEOUT_S)
            try:
                setup = read_setup(conn)
            except (FaxError, OSError) as exc:
                log.warning("loopback line %s: refused a connection: %s", self.socket_path, exc)
                return
            with self._lock:
                n = self._count
                self._count += 1
            answer = self._decide(setup, n)
            acquired = False
            if answer == "ok":
                acquired = self._slots.acquire(blocking=False)
                if not acquired:
                    answer = BUSY  # every channel of the line is in a call
            if answer != "ok":
                with contextlib.suppress(OSError):
                    _send_line(conn, {"answer": answer})
                return
            try:
                _send_line(conn, {"answer": "ok"})
                self._on_call(conn, setup)
            except Exception:  # one call's failure must not take the line down
                log.exception("loopback line %s: call failed", self.socket_path)
            finally:
                if acquired:
                    self._slots.release()
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._calls.discard(threading.current_thread())

    @property
    def calls_started(self) -> int:
        """How many calls have been offered so far (answered or not)."""
        return self._count

    def stop(self, wait_s: float = 30.0) -> None:
        """Stop accepting, wait for calls in progress, and remove the socket."""
        self._stopping.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()
        if self._thread is not None:
            self._thread.join(wait_s)
        with self._lock:
            calls = list(self._calls)
        for thread in calls:
            thread.join(wait_s)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class LoopbackLine:
    """A FaxLine whose inbound calls arrive on ``socket_path`` and whose outbound calls go to ``remote_path``."""

    name = "loopback"

    def __init__(self, socket_path: Path, remote_path: Path, *, ident: str = "", max_calls: int = 16,
                 clock: Clock | None = None, timezone: tzinfo = timefmt.TOKYO) -> None:
        self.socket_path = socket_path
        # The header line shows the office's time of the call (Tokyo), whatever the server's TZ is.
        self.clock: Clock = clock or SystemClock()
        self.timezone = timezone
        self.remote_path = remote_path
        self.ident = ident
        self.max_calls = max_calls
        self._answerer: Answerer | None = None
        self._calls = OpenCalls()

    def dial(
        self,
        number: str,
        tiff: bytes,
        *,
        ident: str,
        header: str | None,
        ecm: bool = True,
        timeout_s: float = DEFAULT_DIAL_TIMEOUT_S,
    ) -> CallResult:
        """Call ``number`` on the loopback network (the simulated remote) and send ``tiff``."""
        if header:
            tiff = fax_header.stamp_tiff(tiff, header, timefmt.to_local(self.clock.now(), self.timezone))
        setup = CallSetup(called_number=number, calling_number=ident or None)
        options = TerminalOptions(ident=ident, ecm=ecm)
        return place_call(self.remote_path, setup, tiff, options=options, timeout_s=timeout_s, calls=self._calls)

    def hang_up(self) -> None:
        """Drop the outbound calls in progress (a remote that never answers no longer holds us)."""
        self._calls.hang_up()

    def listen(self, handler: IncomingCallHandler) -> None:
        """Answer calls on ``socket_path``; each finished call (good or bad) goes to ``handler``."""

        def on_call(conn: socket.socket, setup: CallSetup) -> None:
            # The station id we answer with (CSI): the configured one, else the number that was called.
            csi = self.ident or setup.called_number or ""
            result = answer_call(conn, setup, options=TerminalOptions(ident=csi))
            handler(result)

        self._answerer = Answerer(self.socket_path, on_call, max_calls=self.max_calls)
        self._answerer.start()

    def close(self) -> None:
        """Stop answering (calls in progress finish first)."""
        if self._answerer is not None:
            self._answerer.stop()
            self._answerer = None


def _from_settings(settings: Settings, clock: Clock | None) -> LoopbackLine:
    return LoopbackLine(
        settings.fax_loopback_socket, settings.fax_loopback_remote,
        ident=settings.fax_ident, max_calls=settings.fax_max_calls, clock=clock, timezone=settings.tz,
    )


register_line("loopback", _from_settings)
