"""An impairment relay for media tests: a UDP proxy on loopback that loses, delays and reorders datagrams.

Two endpoints A and B talk through it: A sends to ``relay.for_a`` and B to
``relay.for_b``; each side sees the relay's other socket as its peer, so a
media session that only accepts its negotiated remote still works. Every
datagram is dropped with probability ``loss`` or delayed by ``delay_s`` ±
``jitter_s`` (uniform, so datagrams overtake each other). The random
generators are seeded, one per direction: the n-th datagram of a direction
meets the same fate in every run. ``stall(direction, seconds)``
holds one direction's datagrams and then releases them at once, as a sender
that stopped for a moment and caught up would. ``inject`` sends arbitrary
bytes to one side from the relay's socket (its negotiated peer address).
The relay's thread ends after ``lifetime_s`` even if nobody stops it.
"""

from __future__ import annotations

import heapq
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["a->b", "b->a"]


@dataclass
class DirectionStats:
    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    injected: int = 0
    stalled: int = 0


@dataclass
class _Stall:
    start: float
    end: float


@dataclass(order=True)
class _Pending:
    due: float
    order: int
    data: bytes = field(compare=False)
    sock: socket.socket = field(compare=False)
    dest: tuple[str, int] = field(compare=False)


class UdpImpairRelay:
    """A lossy, jittery UDP relay between ``a`` and ``b`` (both loopback addresses)."""

    def __init__(
        self,
        a: tuple[str, int],
        b: tuple[str, int],
        *,
        loss: float = 0.02,
        delay_s: float = 0.04,
        jitter_s: float = 0.04,
        seed: int = 1,
        lifetime_s: float = 600.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.a, self.b = a, b
        self.loss, self.delay_s, self.jitter_s = loss, delay_s, jitter_s
        self.lifetime_s = lifetime_s
        # One generator per direction: the n-th datagram of a direction meets the same fate in every run.
        self._rng: dict[Direction, random.Random] = {
            "a->b": random.Random(f"{seed}:a->b"), "b->a": random.Random(f"{seed}:b->a"),
        }
        self._sock_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # A talks to this one
        self._sock_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # B talks to this one
        for sock in (self._sock_a, self._sock_b):
            sock.bind((host, 0))
            sock.setblocking(False)
        self.for_a: tuple[str, int] = self._sock_a.getsockname()
        self.for_b: tuple[str, int] = self._sock_b.getsockname()
        self.stats: dict[Direction, DirectionStats] = {"a->b": DirectionStats(), "b->a": DirectionStats()}
        self._stalls: dict[Direction, _Stall | None] = {"a->b": None, "b->a": None}
        self._queue: list[_Pending] = []
        self._order = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udp-impair", daemon=True)

    def start(self) -> UdpImpairRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for sock in (self._sock_a, self._sock_b):
            sock.close()

    def __enter__(self) -> UdpImpairRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stall(self, direction: Direction, seconds: float) -> None:
        """Hold every datagram of ``direction`` for the next ``seconds``, then release them together."""
        now = time.monotonic()
        with self._lock:
            self._stalls[direction] = _Stall(now, now + seconds)

    def inject(self, direction: Direction, data: bytes) -> None:
        """Send ``data`` now, as if it came from the sending side of ``direction`` (through the relay)."""
        sock, dest = (self._sock_b, self.b) if direction == "a->b" else (self._sock_a, self.a)
        sock.sendto(data, dest)
        self.stats[direction].injected += 1

    def _schedule(self, direction: Direction, data: bytes, now: float) -> None:
        stats = self.stats[direction]
        stats.received += 1
        rng = self._rng[direction]
        lost = rng.random() < self.loss
        jitter = rng.uniform(-self.jitter_s, self.jitter_s)
        if lost:
            stats.dropped += 1
            return
        delay = max(0.0, self.delay_s + jitter)
        due = now + delay
        with self._lock:
            stall = self._stalls[direction]
        if stall is not None and stall.start <= now < stall.end:
            due = max(due, stall.end)
            stats.stalled += 1
        sock, dest = (self._sock_b, self.b) if direction == "a->b" else (self._sock_a, self.a)
        self._order += 1
        heapq.heappush(self._queue, _Pending(due, self._order, data, sock, dest))

    def _run(self) -> None:
        end = time.monotonic() + self.lifetime_s
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock_a, selectors.EVENT_READ, ("a->b", self.a))
            selector.register(self._sock_b, selectors.EVENT_READ, ("b->a", self.b))
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= end:
                    return
                while self._queue and self._queue[0].due <= now:
                    item = heapq.heappop(self._queue)
                    try:
                        item.sock.sendto(item.data, item.dest)
                    except OSError:
                        continue
                    self.stats["a->b" if item.dest == self.b else "b->a"].forwarded += 1
                timeout = min(0.005, max(0.0, self._queue[0].due - now)) if self._queue else 0.005
                for key, _ in selector.select(timeout):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    direction, expected = key.data
                    while True:
                        try:
                            data, source = sock.recvfrom(65536)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:
                            continue
                        if source == expected:  # only the two endpoints are relayed
                            self._schedule(direction, data, time.monotonic())
