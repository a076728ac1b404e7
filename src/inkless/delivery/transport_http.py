"""The envelope transport over HTTP: :class:`HttpTransport` posts an envelope to a pinned peer's
``/federation/v1/messages`` with a signed request (:mod:`inkless.federation.client`) and returns the receipt.

How answers map to outcomes (the outbox retries the first kind, gives up on the second):

- no answer, timeout, 5xx, an unsigned or badly signed answer, 401 (the peer does
  not accept our signature yet: not pinned there, clocks apart), 408, 429
  → :class:`PeerUnreachableError` (retried until the delivery expires);
- any other 4xx (413 too large, 422 bad envelope, 409 conflict, 403 policy)
  → :class:`DeliveryRejectedError` with the peer's reason.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509

from inkless.delivery.faxnote import FAX_FIRST_HEADER, FaxFirst
from inkless.errors import DeliveryRejectedError, NotFoundError, PeerUnreachableError
from inkless.federation.client import (
    ENVELOPE_MEDIA_TYPE,
    MESSAGE_ID_HEADER,
    MESSAGES_PATH,
    RECIPIENT_HEADER,
    RETRYABLE_STATUSES,
    SENDER_HEADER,
    FederationAnswer,
    FederationClient,
)
from inkless.federation.httpsig import HttpMessage
from inkless.streams import StoredBody


class PinnedPeer(Protocol):
    """What the transport reads of a pinned peer."""

    @property
    def url(self) -> str: ...

    @property
    def ca_certificate(self) -> x509.Certificate: ...


class PinnedPeers(Protocol):
    """The peer directory as the transport uses it (:class:`inkless.directory.peers.PeerService`)."""

    @property
    def client(self) -> FederationClient: ...

    def get(self, node_id: str) -> PinnedPeer: ...

    def record_contact(self, node_id: str, problem: str | None, *, reachable: bool) -> None: ...


class HttpTransport:
    """Delivers envelopes to pinned peers over HTTP(S) with signed requests and answers."""

    def __init__(self, peers: PinnedPeers) -> None:
        self._peers = peers

    def deliver(
        self, peer_node_id: str, sender_address: str, recipient_address: str, message_id: str,
        envelope: StoredBody | bytes, fax_first: FaxFirst | None = None,
    ) -> bytes:
        """Post the envelope to the peer, streamed from the blob store; the receipt (CMS DER) on success."""
        try:
            peer = self._peers.get(peer_node_id)
        except NotFoundError:
            raise DeliveryRejectedError(
                f"node {peer_node_id!r} is not a pinned peer",
                reason=f"node {peer_node_id!r} is not pinned on this node (inkless peer add URL --fingerprint ...)",
            ) from None
        url = peer.url.rstrip("/") + MESSAGES_PATH
        covered = {SENDER_HEADER: sender_address, RECIPIENT_HEADER: recipient_address, MESSAGE_ID_HEADER: message_id}
        if fax_first is not None:
            covered[FAX_FIRST_HEADER] = fax_first.header()  # signed like the others
        try:
            answer = self._peers.client.request(
                "POST", url, peer=peer_node_id, ca=peer.ca_certificate, body=envelope, covered=covered,
                content_type=ENVELOPE_MEDIA_TYPE,
            )
        except PeerUnreachableError as exc:
            self._peers.record_contact(peer_node_id, str(exc), reachable=False)
            raise
        if not answer.verified:
            problem = (f"{peer_node_id} answered HTTP {answer.status} without a valid signature: "
                       f"{answer.signature_problem}")
            self._peers.record_contact(peer_node_id, problem, reachable=False)
            if 400 <= answer.status < 500 and answer.status not in RETRYABLE_STATUSES:
                # A proxy in front of the peer may answer for it (413 from nginx); the reason still helps.
                raise DeliveryRejectedError(problem, reason=f"HTTP {answer.status} (unsigned): {answer.detail()}")
            raise PeerUnreachableError(problem, retry_after=_retry_after(answer))
        reason = answer.detail()
        self._peers.record_contact(
            peer_node_id, None if answer.status == 200 else f"HTTP {answer.status}: {reason}",
            reachable=answer.status < 500,
        )
        if answer.status == 200:
            return answer.body
        if answer.status >= 500 or answer.status in RETRYABLE_STATUSES:
            raise PeerUnreachableError(f"{peer_node_id} answered {answer.status}: {reason}",
                                       retry_after=_retry_after(answer))
        raise DeliveryRejectedError(f"{peer_node_id} refused the message ({answer.status}): {reason}", reason=reason)


def _retry_after(answer: FederationAnswer) -> float | None:
    value = HttpMessage(headers=answer.headers).header("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None
