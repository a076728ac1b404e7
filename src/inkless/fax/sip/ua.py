"""The SIP user agent core: one UDP socket, the transaction tables, and dispatch to dialogs.

Requests that open calls go to ``on_invite``; requests inside a dialog go to the dialog's
owner (a :class:`DialogOwner`); OPTIONS is answered here; unknown methods get 405. Datagrams
that do not parse are counted and dropped (never answered: they may be spoofed).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from inkless.errors import SipMessageError
from inkless.fax.sip import digest
from inkless.fax.sip.dialog import ALLOW, MAX_FORWARDS, USER_AGENT, Dialog
from inkless.fax.sip.message import SipMessage, parse, response_to
from inkless.fax.sip.transaction import Address, ClientTransaction, ServerTransaction

log = logging.getLogger("inkless.fax.sip")

KNOWN_METHODS = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE"}


class SipTimeout(Exception):
    """No final response before timer B / F fired."""


class DialogOwner(Protocol):
    """The call that owns a dialog receives its in-dialog requests."""

    def on_request(self, request: SipMessage, tx: ServerTransaction | None) -> None: ...


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class UserAgent(asyncio.DatagramProtocol):
    """Transactions and dispatch for one UDP socket; runs on one asyncio loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *,
        on_invite: Callable[[SipMessage, ServerTransaction, Address], None],
        trusted: Callable[[str], bool],
        on_untrusted: Callable[[SipMessage, Address], None],
        advertised_host: str,
    ) -> None:
        self.loop = loop
        self.on_invite = on_invite
        self.trusted = trusted
        self.on_untrusted = on_untrusted
        self.advertised_host = advertised_host
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.client: dict[tuple[str, str], ClientTransaction] = {}
        self.server: dict[tuple[str, str, str], ServerTransaction] = {}
        self.dialogs: dict[tuple[str, str, str], tuple[Dialog, DialogOwner]] = {}
        self.malformed = 0
        self._last_malformed_log = 0.0

    # --- transport ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport, though it is one.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def send(self, data: bytes, address: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, address)

    @property
    def via(self) -> str:
        return f"SIP/2.0/UDP {self.advertised_host}:{self.port}"

    def contact(self, user: str) -> str:
        return f"<sip:{user}@{self.advertised_host}:{self.port}>" if user else \
            f"<sip:{self.advertised_host}:{self.port}>"

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        source = (str(addr[0]), int(addr[1]))
        if not data.strip():
            return  # keep-alive
        try:
            message = parse(data)
        except SipMessageError as exc:
            self.malformed += 1
            now = time.monotonic()
            if now - self._last_malformed_log > 5.0:  # one line per burst, not one per datagram
                self._last_malformed_log = now
                log.warning("SIP: dropped a malformed datagram from %s:%s (%s); %d so far",
                            source[0], source[1], exc, self.malformed)
            return
        try:
            if message.is_request:
                self._on_request(message, source)
            else:
                self._on_response(message)
        except SipMessageError as exc:
            self.malformed += 1
            log.warning("SIP: dropped %s from %s:%s: %s", message.summary(), source[0], source[1], exc)
        except Exception:  # one bad message never takes the line down
            log.exception("SIP: error handling %s", message.summary())

    # --- responses -----------------------------------------------------------------------

    def _on_response(self, response: SipMessage) -> None:
        branch = response.top_via.branch
        _, method = response.cseq
        tx = self.client.get((branch, method))
        if tx is not None:
            tx.receive(response)
            return
        status = response.status or 0
        if method == "INVITE" and 200 <= status < 300:
            # A retransmitted 2xx: the dialog ACKs it again (RFC 3261 §13.2.2.4).
            entry = self.dialogs.get((response.call_id, response.from_.tag or "", response.to.tag or ""))
            if entry is not None and not entry[0].ended:
                dialog = entry[0]
                ack = dialog.request("ACK", self.via, cseq=response.cseq[0])
                self.send(ack.encode(), dialog.next_hop())

    # --- requests ------------------------------------------------------------------------

    def _on_request(self, request: SipMessage, source: Address) -> None:
        method = request.method or ""
        via = request.top_via
        key = (via.branch, f"{via.host}:{via.port or 5060}", "INVITE" if method == "ACK" else method)
        existing = self.server.get(key)
        if existing is not None:
            if method == "ACK":
                existing.ack()
            else:
                existing.retransmission()
            return
        if method == "ACK":
            entry = self._dialog_of(request)
            if entry is not None:
                entry[1].on_request(request, None)
            return
        tx = self._server_transaction(request, source)
        if method not in KNOWN_METHODS:
            response = response_to(request, 405)
            response.add("Allow", ALLOW)
            tx.respond(response)
            return
        if method == "CANCEL":
            self._on_cancel(request, tx)
            return
        if request.to.tag:
            entry = self._dialog_of(request)
            if entry is None:
                tx.respond(response_to(request, 481))
                return
            dialog, owner = entry
            if not dialog.accept_remote_request(request):
                tx.respond(response_to(request, 500, "CSeq Out of Order"))
                return
            owner.on_request(request, tx)
            return
        if method == "OPTIONS":
            response = response_to(request, 200)
            response.add("Allow", ALLOW)
            response.add("Accept", "application/sdp")
            tx.respond(response)
        elif method == "INVITE":
            if not self.trusted(source[0]):
                tx.respond(response_to(request, 403, "Forbidden (untrusted source)"))
                self.on_untrusted(request, source)
                return
            tx.trying()
            self.on_invite(request, tx, source)
        else:
            tx.respond(response_to(request, 481))

    def _server_transaction(self, request: SipMessage, source: Address) -> ServerTransaction:
        tx = ServerTransaction(request, source, scheduler=self.loop, send=self.send)
        key = tx.key
        self.server[key] = tx

        def forget() -> None:
            self.server.pop(key, None)

        tx.on_terminated = forget
        return tx

    def _on_cancel(self, cancel: SipMessage, tx: ServerTransaction) -> None:
        via = cancel.top_via
        invite_tx = self.server.get((via.branch, f"{via.host}:{via.port or 5060}", "INVITE"))
        if invite_tx is None:
            tx.respond(response_to(cancel, 481))
            return
        tx.respond(response_to(cancel, 200))
        if invite_tx.state == "proceeding":
            invite_tx.respond(response_to(invite_tx.request, 487))

    def _dialog_of(self, request: SipMessage) -> tuple[Dialog, DialogOwner] | None:
        return self.dialogs.get((request.call_id, request.to.tag or "", request.from_.tag or ""))

    # --- dialogs -------------------------------------------------------------------------

    def add_dialog(self, dialog: Dialog, owner: DialogOwner) -> None:
        self.dialogs[dialog.key] = (dialog, owner)

    def drop_dialog(self, dialog: Dialog) -> None:
        dialog.ended = True
        # Keep the entry a little longer: late retransmissions of BYE still get their 200.
        self.loop.call_later(32.0, lambda: self.dialogs.pop(dialog.key, None) and None)

    # --- client side ---------------------------------------------------------------------

    def request(
        self, request: SipMessage, destination: Address, *,
        on_provisional: Callable[[SipMessage], None] | None = None,
    ) -> tuple[asyncio.Future[SipMessage], ClientTransaction]:
        """Send ``request`` in a new client transaction; the future gets the final response (or SipTimeout)."""
        future: asyncio.Future[SipMessage] = self.loop.create_future()

        def on_response(response: SipMessage) -> None:
            if (response.status or 0) < 200:
                if on_provisional is not None:
                    on_provisional(response)
            elif not future.done():
                future.set_result(response)

        def on_timeout() -> None:
            if not future.done():
                where = f"{destination[0]}:{destination[1]}"
                future.set_exception(SipTimeout(f"no answer to {request.method} from {where}"))

        tx = ClientTransaction(request, destination, scheduler=self.loop, send=self.send,
                               on_response=on_response, on_timeout=on_timeout)
        key = tx.key
        self.client[key] = tx

        def forget() -> None:
            self.loop.call_soon(self._forget_client, key, tx)

        tx.on_terminated = forget
        tx.start()
        return future, tx

    def _forget_client(self, key: tuple[str, str], tx: ClientTransaction) -> None:
        if self.client.get(key) is tx:
            del self.client[key]

    async def request_with_auth(
        self, build: Callable[[int], SipMessage], destination: Address, credentials: Credentials | None,
        *, on_provisional: Callable[[SipMessage], None] | None = None,
        on_sent: Callable[[SipMessage, ClientTransaction], None] | None = None,
    ) -> tuple[SipMessage, SipMessage]:
        """Send ``build(cseq)``; answer one 401/407 with digest credentials. Returns (request, final response)."""
        cseq = 1
        auth: tuple[str, str] | None = None
        nc = 0
        while True:
            request = build(cseq)
            if auth is not None:
                request.add(auth[0], auth[1])
            future, tx = self.request(request, destination, on_provisional=on_provisional)
            if on_sent is not None:
                on_sent(request, tx)
            response = await future
            status = response.status or 0
            if status not in (401, 407) or auth is not None or credentials is None:
                return request, response
            header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            challenge = digest.choose(response.values(header) or [v for k, v in response.headers if k == header])
            if challenge is None:
                return request, response
            nc += 1
            value = digest.authorization(challenge, username=credentials.username, password=credentials.password,
                                         method=request.method or "", uri=request.uri or "", nc=nc)
            auth = ("Authorization" if status == 401 else "Proxy-Authorization", value)
            cseq += 1


def out_of_dialog_request(
    method: str, uri: str, *, via: str, from_: str, to: str, call_id: str, cseq: int, contact: str | None,
    branch: str, body: bytes = b"",
) -> SipMessage:
    """A request that opens a dialog or stands alone (INVITE, REGISTER, OPTIONS)."""
    message = SipMessage(method=method, uri=uri)
    message.add("Via", f"{via};branch={branch};rport")
    message.add("Max-Forwards", MAX_FORWARDS)
    message.add("From", from_)
    message.add("To", to)
    message.add("Call-ID", call_id)
    message.add("CSeq", f"{cseq} {method}")
    if contact:
        message.add("Contact", contact)
    message.add("Allow", ALLOW)
    message.add("User-Agent", USER_AGENT)
    if body:
        message.add("Content-Type", "application/sdp")
    message.body = body
    return message


def address_matcher(sources: list[str]) -> Callable[[str], bool]:
    """A predicate for ``fax_sip_trusted_sources`` entries (addresses or networks in CIDR form)."""
    networks = [ipaddress.ip_network(s, strict=False) for s in sources]

    def trusted(host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in networks)

    return trusted
