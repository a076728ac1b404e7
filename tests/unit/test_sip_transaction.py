"""SIP transactions on a fake clock: RFC 3261 timers A/B/D/E/F/K and G/H/I/J, retransmission, ACK."""

from __future__ import annotations

import heapq
from collections.abc import Callable

from inkless.fax.sip.message import SipMessage, new_branch, parse, response_to
from inkless.fax.sip.transaction import T1, T2, T4, ClientTransaction, ServerTransaction


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, _Handle]] = []
        self._n = 0

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(callback)
        self._n += 1
        heapq.heappush(self._queue, (self.now + delay, self._n, handle))
        return handle

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._queue and self._queue[0][0] <= end:
            at, _, handle = heapq.heappop(self._queue)
            self.now = at
            if not handle.cancelled:
                handle.callback()
        self.now = end


class _Handle:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Wire:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, SipMessage]] = []

    def send(self, data: bytes, _addr: tuple[str, int]) -> None:
        self.sent.append((self.clock.now, parse(data)))


def _request(method: str) -> SipMessage:
    msg = SipMessage(method=method, uri="sip:0312345678@192.0.2.10")
    msg.add("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={new_branch()}")
    msg.add("From", "<sip:a@192.0.2.10>;tag=1")
    msg.add("To", "<sip:b@192.0.2.10>")
    msg.add("Call-ID", "c1")
    msg.add("CSeq", f"1 {method}")
    msg.add("Contact", "<sip:a@192.0.2.10:5060>")
    return msg


def _client(method: str) -> tuple[FakeClock, Wire, ClientTransaction, list[object]]:
    clock = FakeClock()
    wire = Wire(clock)
    events: list[object] = []
    tx = ClientTransaction(_request(method), ("127.0.0.1", 5070), scheduler=clock, send=wire.send,
                           on_response=lambda r: events.append(r.status), on_timeout=lambda: events.append("timeout"))
    tx.start()
    return clock, wire, tx, events


def test_invite_is_retransmitted_by_timer_a_doubling_then_timer_b_times_out() -> None:
    clock, wire, tx, events = _client("INVITE")
    clock.advance(64 * T1 + 0.01)
    times = [t for t, _ in wire.sent]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert events == ["timeout"] and tx.state == "terminated"


def test_a_provisional_response_stops_timer_a_and_a_final_error_is_acked_once_per_copy() -> None:
    clock, wire, tx, events = _client("INVITE")
    tx.receive(response_to(tx.request, 100))
    clock.advance(10)
    assert len(wire.sent) == 1  # no retransmission after 100 Trying
    busy = response_to(tx.request, 486, to_tag="t")
    tx.receive(busy)
    tx.receive(busy)  # the retransmitted 486 is ACKed again but not reported again
    acks = [m for _, m in wire.sent if m.method == "ACK"]
    assert len(acks) == 2 and acks[0].top_via.branch == tx.branch and acks[0].to.tag == "t"
    assert events == [100, 486]
    clock.advance(32.1)
    assert tx.state == "terminated"


def test_non_invite_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    clock, wire, _tx, events = _client("REGISTER")
    clock.advance(64 * T1 + 0.01)
    gaps = [b - a for (a, _), (b, _) in zip(wire.sent, wire.sent[1:], strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and max(gaps) == T2
    assert events == ["timeout"]


def test_non_invite_final_response_enters_completed_then_timer_k() -> None:
    clock, wire, tx, events = _client("BYE")
    tx.receive(response_to(tx.request, 200))
    clock.advance(T4 - 0.1)
    assert tx.state == "completed" and len(wire.sent) == 1
    clock.advance(0.2)
    assert tx.state == "terminated" and events == [200]


def test_server_invite_sends_100_repeats_on_retransmission_and_timer_g_until_ack() -> None:
    clock = FakeClock()
    wire = Wire(clock)
    tx = ServerTransaction(_request("INVITE"), ("127.0.0.1", 5070), scheduler=clock, send=wire.send)
    tx.trying()
    tx.retransmission()
    assert [m.status for _, m in wire.sent] == [100, 100]
    tx.respond(response_to(tx.request, 488, to_tag="x"))
    clock.advance(T1 + T1 * 2 + 0.01)
    assert [m.status for _, m in wire.sent] == [100, 100, 488, 488, 488]
    tx.ack()
    clock.advance(10)
    assert len(wire.sent) == 5 and tx.state == "terminated"


def test_server_2xx_never_acked_fires_timer_h_and_tells_the_call() -> None:
    clock = FakeClock()
    wire = Wire(clock)
    tx = ServerTransaction(_request("INVITE"), ("127.0.0.1", 5070), scheduler=clock, send=wire.send)
    lost: list[bool] = []
    tx.on_ack_timeout = lambda: lost.append(True)
    tx.respond(response_to(tx.request, 200, to_tag="x"))
    clock.advance(64 * T1 + 0.01)
    assert lost == [True] and tx.state == "terminated"
    assert 8 <= len(wire.sent) <= 12  # 2xx repeated at T1, 2T1, 4T1, then every T2


def test_server_non_invite_timer_j_absorbs_retransmissions() -> None:
    clock = FakeClock()
    wire = Wire(clock)
    tx = ServerTransaction(_request("OPTIONS"), ("127.0.0.1", 5070), scheduler=clock, send=wire.send)
    tx.respond(response_to(tx.request, 200))
    tx.retransmission()
    assert [m.status for _, m in wire.sent] == [200, 200]
    clock.advance(64 * T1 + 0.01)
    assert tx.state == "terminated"
