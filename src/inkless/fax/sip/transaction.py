"""SIP transactions over UDP (RFC 3261 §17, with RFC 6026's Accepted state for 2xx to INVITE).

Client INVITE: timer A retransmits (T1, doubling), timer B gives up (64·T1), timer D absorbs
retransmitted final responses. Client non-INVITE: timer E (T1 doubling to T2), F (64·T1), K (T4).
Server INVITE: 100 Trying at once, the last response repeated on a retransmitted request, timer G
repeats a final response until the ACK, H gives up (64·T1), I absorbs ACKs (T4). Server non-INVITE:
timer J (64·T1). The scheduling and the sending are injected, so the state machines run on a fake
clock in unit tests and on the asyncio loop in the line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from inkless.fax.sip.message import SipMessage, response_to

log = logging.getLogger("inkless.fax.sip")

T1 = 0.5
T2 = 4.0
T4 = 5.0

Address = tuple[str, int]
Send = Callable[[bytes, Address], None]


class Handle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """What ``asyncio.AbstractEventLoop.call_later`` offers; a fake clock implements it in tests."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle: ...


class _Transaction:
    def __init__(self, scheduler: Scheduler, send: Send, destination: Address) -> None:
        self.scheduler = scheduler
        self._send = send
        self.destination = destination
        self.state = "init"
        self._timers: dict[str, Handle] = {}
        self.on_terminated: Callable[[], None] | None = None

    def _start(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._stop(name)
        self._timers[name] = self.scheduler.call_later(delay, callback)

    def _stop(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _transmit(self, message: SipMessage) -> None:
        try:
            self._send(message.encode(), self.destination)
        except OSError as exc:  # a transport error is treated like a lost datagram (timers retry)
            log.warning("SIP send to %s:%s failed: %s", *self.destination, exc)

    def terminate(self) -> None:
        """Stop every timer; the transaction is forgotten."""
        for name in list(self._timers):
            self._stop(name)
        if self.state != "terminated":
            self.state = "terminated"
            if self.on_terminated is not None:
                self.on_terminated()


class ClientTransaction(_Transaction):
    """Sends one request and delivers its responses (``on_response``) or a timeout (``on_timeout``)."""

    def __init__(
        self, request: SipMessage, destination: Address, *, scheduler: Scheduler, send: Send,
        on_response: Callable[[SipMessage], None], on_timeout: Callable[[], None],
    ) -> None:
        super().__init__(scheduler, send, destination)
        self.request = request
        self.method = request.method or ""
        self.branch = request.top_via.branch
        self._on_response = on_response
        self._on_timeout = on_timeout
        self._interval = T1

    @property
    def key(self) -> tuple[str, str]:
        return self.branch, self.method

    def start(self) -> None:
        self.state = "calling" if self.method == "INVITE" else "trying"
        self._transmit(self.request)
        if self.method == "INVITE":
            self._start("A", T1, self._timer_a)
            self._start("B", 64 * T1, self._timeout)
        else:
            self._start("E", T1, self._timer_e)
            self._start("F", 64 * T1, self._timeout)

    def _timer_a(self) -> None:
        if self.state != "calling":
            return
        self._transmit(self.request)
        self._interval *= 2
        self._start("A", self._interval, self._timer_a)

    def _timer_e(self) -> None:
        if self.state not in ("trying", "proceeding"):
            return
        self._transmit(self.request)
        self._interval = T2 if self.state == "proceeding" else min(self._interval * 2, T2)
        self._start("E", self._interval, self._timer_e)

    def _timeout(self) -> None:
        if self.state in ("calling", "trying", "proceeding"):
            self.terminate()
            self._on_timeout()

    def receive(self, response: SipMessage) -> None:
        """A response whose top Via branch and CSeq method match this transaction."""
        status = response.status or 0
        if self.method == "INVITE":
            if self.state in ("calling", "proceeding"):
                if status < 200:
                    self.state = "proceeding"
                    self._stop("A")
                    self._on_response(response)
                elif status < 300:
                    self.terminate()  # the TU ACKs 2xx itself, and absorbs their retransmissions
                    self._on_response(response)
                else:
                    self._ack(response)
                    self.state = "completed"
                    self._stop("A")
                    self._stop("B")
                    self._start("D", 32.0, self.terminate)
                    self._on_response(response)
            elif self.state == "completed" and status >= 300:
                self._ack(response)  # a retransmitted final response: ACK again, tell nobody
        else:
            if self.state in ("trying", "proceeding"):
                if status < 200:
                    self.state = "proceeding"
                    self._on_response(response)
                else:
                    self.state = "completed"
                    self._stop("E")
                    self._stop("F")
                    self._start("K", T4, self.terminate)
                    self._on_response(response)

    def _ack(self, response: SipMessage) -> None:
        # RFC 3261 §17.1.1.3: the ACK for a non-2xx final response is part of the INVITE transaction.
        ack = SipMessage(method="ACK", uri=self.request.uri)
        ack.add("Via", self.request.values("Via")[0])
        for name in ("Route",):
            for value in self.request.values(name):
                ack.add(name, value)
        ack.add("From", self.request.get("From") or "")
        ack.add("To", response.get("To") or "")
        ack.add("Call-ID", self.request.call_id)
        ack.add("CSeq", f"{self.request.cseq[0]} ACK")
        ack.add("Max-Forwards", "70")
        self._transmit(ack)


class ServerTransaction(_Transaction):
    """Receives one request; the TU answers with :meth:`respond` (as often as it likes, 1xx then final)."""

    def __init__(self, request: SipMessage, source: Address, *, scheduler: Scheduler, send: Send) -> None:
        super().__init__(scheduler, send, _response_address(request, source))
        self.request = request
        self.method = request.method or ""
        self.branch = request.top_via.branch
        self.last_response: SipMessage | None = None
        self._interval = T1
        self.on_ack_timeout: Callable[[], None] | None = None
        self.state = "proceeding" if self.method == "INVITE" else "trying"

    @property
    def key(self) -> tuple[str, str, str]:
        via = self.request.top_via
        return self.branch, f"{via.host}:{via.port or 5060}", self.method

    def trying(self) -> None:
        """Send 100 Trying (an INVITE server transaction does this at once over UDP)."""
        self.respond(response_to(self.request, 100))

    def respond(self, response: SipMessage) -> None:
        status = response.status or 0
        if self.state not in ("trying", "proceeding"):
            return
        self.last_response = response
        self._transmit(response)
        if status < 200:
            self.state = "proceeding"
            return
        if self.method == "INVITE":
            # 2xx (RFC 6026 "accepted") and 3xx-6xx ("completed") both repeat until the ACK arrives.
            self.state = "accepted" if status < 300 else "completed"
            self._start("G", T1, self._timer_g)
            self._start("H", 64 * T1, self._timer_h)
        else:
            self.state = "completed"
            self._start("J", 64 * T1, self.terminate)

    def _timer_g(self) -> None:
        if self.state not in ("accepted", "completed") or self.last_response is None:
            return
        self._transmit(self.last_response)
        self._interval = min(self._interval * 2, T2)
        self._start("G", self._interval, self._timer_g)

    def _timer_h(self) -> None:
        accepted = self.state == "accepted"
        self.terminate()
        if accepted and self.on_ack_timeout is not None:
            self.on_ack_timeout()  # a 2xx never ACKed: the TU ends the dialog with BYE (§13.3.1.4)

    def retransmission(self) -> None:
        """The same request came again: repeat our last response."""
        if self.last_response is not None and self.state != "terminated":
            self._transmit(self.last_response)

    def ack(self) -> None:
        """The ACK for our final response arrived (the same branch for 3xx-6xx, a new one for 2xx)."""
        if self.state in ("completed", "accepted"):
            self._stop("G")
            self._stop("H")
            self.state = "confirmed"
            self._start("I", T4, self.terminate)


def _response_address(request: SipMessage, source: Address) -> Address:
    """Where responses go: back to the packet's source (RFC 3581 symmetric response, right behind NAT)."""
    return source
