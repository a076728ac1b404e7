"""SIP dialogs (RFC 3261 §12): identifiers, route set from Record-Route, CSeq, remote target refresh."""

from __future__ import annotations

from dataclasses import dataclass, field

from inkless.errors import SipMessageError
from inkless.fax.sip.message import NameAddr, SipMessage, SipUri, new_branch

MAX_FORWARDS = "70"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
USER_AGENT = "inkless-fax"


@dataclass
class Dialog:
    """One dialog as seen from our side; ``ended`` once a BYE went either way (then nothing more is sent)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # our From (UAC) / To (UAS) name-addr, without tag
    remote_uri: str
    remote_target: SipUri
    route_set: list[str]
    local_cseq: int
    remote_cseq: int
    local_contact: str
    ended: bool = False
    _pending_invite: bool = field(default=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def as_uac(cls, invite: SipMessage, response: SipMessage, local_contact: str) -> Dialog:
        """The dialog a 2xx (or 1xx with a To tag) to our INVITE creates; routes are the reversed Record-Route."""
        contact = response.contact()
        if contact is None:
            raise SipMessageError("2xx to INVITE without Contact")
        return cls(
            call_id=invite.call_id, local_tag=invite.from_.tag or "", remote_tag=response.to.tag or "",
            local_uri=str(NameAddr(invite.from_.uri, invite.from_.display)),
            remote_uri=str(NameAddr(response.to.uri, response.to.display)),
            remote_target=contact.uri, route_set=list(reversed(response.values("Record-Route"))),
            local_cseq=invite.cseq[0], remote_cseq=0, local_contact=local_contact,
        )

    @classmethod
    def as_uas(cls, invite: SipMessage, local_tag: str, local_contact: str) -> Dialog:
        """The dialog our 2xx to an INVITE creates; routes are the Record-Route in order."""
        contact = invite.contact()
        if contact is None:
            raise SipMessageError("INVITE without Contact")
        return cls(
            call_id=invite.call_id, local_tag=local_tag, remote_tag=invite.from_.tag or "",
            local_uri=str(NameAddr(invite.to.uri, invite.to.display)),
            remote_uri=str(NameAddr(invite.from_.uri, invite.from_.display)),
            remote_target=contact.uri, route_set=list(invite.values("Record-Route")),
            local_cseq=0, remote_cseq=invite.cseq[0], local_contact=local_contact,
        )

    def next_hop(self) -> tuple[str, int]:
        """Where in-dialog requests go: the first route (loose routing) or the remote target."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).uri.address()
        return self.remote_target.address()

    def request(self, method: str, via: str, *, body: bytes = b"", content_type: str | None = None,
                cseq: int | None = None) -> SipMessage:
        """A new in-dialog request (ACK takes the INVITE's ``cseq``; others take the next number)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        uri = str(self.remote_target)
        routes = list(self.route_set)
        if routes and not NameAddr.parse(routes[0]).uri.lr:
            # A strict router (RFC 2543): it goes in the Request-URI, the remote target at the end.
            uri = str(NameAddr.parse(routes[0]).uri)
            routes = [*routes[1:], f"<{self.remote_target}>"]
        message = SipMessage(method=method, uri=uri)
        message.add("Via", f"{via};branch={new_branch()};rport")
        message.add("Max-Forwards", MAX_FORWARDS)
        for route in routes:
            message.add("Route", route)
        message.add("From", f"{self.local_uri};tag={self.local_tag}")
        message.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        message.add("Call-ID", self.call_id)
        message.add("CSeq", f"{cseq} {method}")
        if method in ("INVITE", "UPDATE"):
            message.add("Contact", self.local_contact)
            message.add("Allow", ALLOW)
        message.add("User-Agent", USER_AGENT)
        if body:
            message.add("Content-Type", content_type or "application/sdp")
        message.body = body
        return message

    def accept_remote_request(self, request: SipMessage) -> bool:
        """Check the CSeq of an in-dialog request (lower than the last one = out of order, 500)."""
        number, method = request.cseq
        if method == "ACK":
            return True
        if number <= self.remote_cseq and method != "CANCEL":
            return False
        self.remote_cseq = number
        return True

    def refresh_target(self, message: SipMessage) -> None:
        """A target-refresh request or its 2xx (re-INVITE, UPDATE) may move the remote Contact."""
        contact = message.contact()
        if contact is not None:
            self.remote_target = contact.uri
