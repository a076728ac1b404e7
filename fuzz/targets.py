"""Fuzz targets: the parsers that face the outside, each fed arbitrary bytes.

A target passes when the parser either accepts the input or refuses it with one of inkless's own
errors (:class:`inkless.errors.InklessError`: a clear refusal that the caller turns into a status
or a message). Any other exception — ``IndexError``, ``UnicodeDecodeError``, ``RecursionError``, a
library's private error leaking out — is a crash: the input is kept and becomes a regression test
(``tests/unit/test_fuzz_corpus.py`` replays every file under ``fuzz/corpus`` and ``fuzz/crashes``).

``make fuzz`` runs each target under atheris (coverage-guided) for a bounded time; see docs/testing.md.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from inkless.errors import InklessError

Target = Callable[[bytes], None]
TARGETS: dict[str, Target] = {}
# One fixed "now" inside every test certificate's validity: runs are repeatable.
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def target(name: str) -> Callable[[Target], Target]:
    def register(fn: Target) -> Target:
        TARGETS[name] = fn
        return fn
    return register


@functools.cache
def _pki() -> dict[str, Any]:
    """A node CA with an office signing key, an office encryption key and a node key (built once)."""
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from tests.helpers.pki import StandaloneCA

    ca = StandaloneCA("fuzz CA", now=NOW)
    eku = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    sign_key, sign_cert = ca.issue(eku, office="civil-affairs@moj")
    enc_key, enc_cert = ca.issue(eku, encipher=True, office="civil-affairs@moj")
    node_key, node_cert = ca.issue([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    return {"ca": ca, "sign": (sign_key, sign_cert), "enc": (enc_key, enc_cert), "node": (node_key, node_cert)}


@target("sip")
def sip_message(data: bytes) -> None:
    """A SIP datagram as the line receives it, and the SDP body it may carry."""
    from inkless.fax.sip import sdp
    from inkless.fax.sip.message import parse

    message = parse(data)
    if message.body:
        sdp.parse(message.body)


@target("sdp")
def sdp_body(data: bytes) -> None:
    from inkless.fax.sip import sdp

    sdp.parse(data)


@target("mime")
def mime(data: bytes) -> None:
    """The MIME message inside a decrypted envelope (metadata JSON and documents)."""
    from inkless.delivery.envelope import parse_mime

    parse_mime(data)


@target("cms-signed")
def cms_signed(data: bytes) -> None:
    """A CMS SignedData as a peer's envelope carries it, verified against the sending node's CA."""
    from inkless.delivery.envelope import verify

    pki = _pki()
    verify(data, pki["ca"].cert, NOW, expected_signer="civil-affairs@moj")


@target("cms-enveloped")
def cms_enveloped(data: bytes) -> None:
    """A CMS EnvelopedData, opened with an office's encryption key."""
    from inkless.delivery.envelope import decrypt

    key, cert = _pki()["enc"]
    decrypt(data, cert, key)


@target("receipt")
def receipt(data: bytes) -> None:
    """A signed receipt returned by a peer, and its content alone."""
    from inkless.delivery.receipt import ReceiptFacts, verify_receipt

    try:
        ReceiptFacts.from_json(data)
    except InklessError:
        pass
    verify_receipt(data, _pki()["ca"].cert, NOW, message_id="m-1", envelope_sha256="0" * 64,
                   recipient="security@npa")


@target("httpsig")
def http_signature(data: bytes) -> None:
    """Request headers (``Name: value`` lines, then a blank line and the body) checked as a federation request."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from inkless.federation import httpsig

    head, _, body = data.partition(b"\n\n")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    received = httpsig.parse_signature(headers)
    key = _pki()["node"][0]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    httpsig.verify_request(received, "POST", "https://moj.example/federation/v1/messages", headers, body,
                           key.public_key(), int(NOW.timestamp()))


@target("pdf-verify")
def pdf_verify(data: bytes) -> None:
    """A PDF handed to /verify: every seal and time stamp checked against the node CA."""
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization

    from inkless.seals.sealing import validation_context
    from inkless.seals.verify import verify_document

    root = asn1_x509.Certificate.load(_pki()["ca"].cert.public_bytes(serialization.Encoding.DER))
    verify_document(data, validation_context([root], [], NOW), NOW)


@target("fax-tiff")
def fax_tiff(data: bytes) -> None:
    """A TIFF-F file from a fax line or the spool, read into pages and turned into a PDF."""
    from inkless.fax.imaging import read_tiff, tiff_to_pdf

    read_tiff(data)
    tiff_to_pdf(data)


@target("fax-document")
def fax_document(data: bytes) -> None:
    """A document a clerk uploads to fax (PDF or TIFF), rendered to fax pages."""
    from inkless.fax.imaging import document_to_tiff

    document_to_tiff(data, fine=False)


@target("csv-procedures")
def csv_procedures(data: bytes) -> None:
    """A procedure catalogue CSV (UTF-8 or CP932, guessed), as ``inkless procedure import`` reads it."""
    from inkless.metrics.catalogue_csv import parse_catalogue

    parse_catalogue(data, resolve_office=lambda text: text if text.isascii() and text.isalnum() else None)


@target("audit-head")
def audit_head(data: bytes) -> None:
    """A peer's tree head and a witness's cosignature, as JSON from the network."""
    from inkless.audit.cosignature import Cosignature, parse_tree_head

    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return  # not JSON: the witness refuses it before parsing (see inkless.audit.witness._json)
    try:
        parse_tree_head(value)
    finally:
        Cosignature.from_json(value)


@target("intake-upload")
def intake_upload(data: bytes) -> None:
    """A file a stranger uploads at the intake window (or a pickup reply): the first line is its file name,
    the rest its bytes, checked as the window checks it (type by content, pages, pixels, the PDF kept)."""
    from inkless.untrusted.files import FileLimits, check_file

    name, _, body = data.partition(b"\n")
    check_file(name.decode("utf-8", "replace"), body, FileLimits(max_bytes=2 * 1024 * 1024, max_pages=20,
                                                                 max_pixels=4_000_000))


@target("clamd-reply")
def clamd_reply(data: bytes) -> None:
    """The virus scanner's answer over its socket, as the intake window reads it."""
    from inkless.untrusted.clamd import parse_reply

    parse_reply(data)


@target("email-address")
def email_address(data: bytes) -> None:
    """An e-mail address typed by a stranger (intake form) or a clerk (pickup recipient)."""
    from inkless.mail.address import normalise_email

    normalise_email(data.decode("utf-8", "replace"))


def run(name: str, data: bytes) -> None:
    """Run one target; an InklessError is a refusal (fine), anything else propagates as a crash."""
    try:
        TARGETS[name](data)
    except InklessError:
        pass
