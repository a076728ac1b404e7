"""The envelope verifier's path-validation settings: nothing fetched, the clock skew, the key usage it demands.

Each test uses a certificate on which pyHanko's own defaults would decide otherwise: one naming CRL,
OCSP and CA-issuer addresses that a fetching validator would call, one that starts or ends a few
minutes away from the receiver's clock, one that only pyHanko's default key usage would accept or refuse.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from inkless.delivery import envelope as env
from inkless.errors import EnvelopeError
from tests.helpers import cms

CONTENT = b"MIME-Version: 1.0\r\n\r\nsigned content"
# Fixed, far from the wall clock: only the ``now`` given to the verifier can make these certificates valid.
AT = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
MINUTES = timedelta(minutes=5)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CA:
    """A node CA that issues office signing certificates with exactly the extensions a test asks for."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{node} CA"))
            .issuer_name(_name(f"{node} CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(AT - timedelta(days=30))
            .not_valid_after(AT + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def office(
        self,
        *,
        digital_signature: bool = True,
        non_repudiation: bool = True,
        start: datetime = AT - timedelta(days=1),
        end: datetime = AT + timedelta(days=365),
        urls: str | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("civil"))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.KeyUsage(digital_signature, non_repudiation, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:inkless:office:civil@{self.node}")]),
                critical=False,
            )
        )
        if urls is not None:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(f"{urls}/ca.crl")], None, None, None)]
                ),
                critical=False,
            )
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{urls}/ocsp")
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(f"{urls}/ca.crt")
                        ),
                    ]
                ),
                critical=False,
            )
        return key, builder.sign(self.key, hashes.SHA256())


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on a free loopback port that records every request (and answers 404)."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            requests.append(f"{self.command} {self.path}")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _record

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_verifier_fetches_nothing_from_the_addresses_a_certificate_names(listener: tuple[str, list[str]]) -> None:
    """A peer's certificate could name any address (an intranet server): no CRL, OCSP or issuer is fetched."""
    url, requests = listener
    ca = CA("a")
    key, cert = ca.office(urls=url)
    signed = cms.simple(CONTENT, key, cert, [ca.cert], signing_time=AT)
    verified = env.verify(signed, ca.cert, AT, expected_signer="civil@a")
    assert verified.content == CONTENT and verified.signer == cert
    # Signed under a CA the receiver does not trust: a fetching validator would look for the issuer there.
    stranger = CA("z")
    with pytest.raises(
        EnvelopeError,
        match=r"^the signer certificate \(CN=civil\) was not issued by the trusted "
        r"CA of the sending node \(CN=z CA\)$",
    ):
        env.verify(cms.simple(CONTENT, key, cert, signing_time=AT), stranger.cert, AT)
    assert requests == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (AT + MINUTES, AT + timedelta(days=365)),  # the sender's clock runs five minutes ahead
        (AT - timedelta(days=365), AT - MINUTES),  # the certificate ran out five minutes ago by our clock
    ],
)
def test_a_certificate_a_few_minutes_outside_its_dates_is_within_the_clock_skew(start: datetime, end: datetime) -> None:
    ca = CA("a")
    key, cert = ca.office(start=start, end=end)
    signed_at = AT if start > AT else end - MINUTES
    verified = env.verify(cms.simple(CONTENT, key, cert, [ca.cert], signing_time=signed_at), ca.cert, AT)
    assert verified.signer_address == "civil@a" and verified.signing_time == signed_at


def test_a_certificate_beyond_the_clock_skew_is_refused_for_its_dates() -> None:
    ca = CA("a")
    key, cert = ca.office(start=AT + env.CLOCK_SKEW + MINUTES)
    signed = cms.simple(CONTENT, key, cert, [ca.cert], signing_time=AT)
    with pytest.raises(
        EnvelopeError,
        match=rf"^the signer certificate is not valid now \(valid "
        rf"{cert.not_valid_before_utc:%Y-%m-%d} to "
        rf"{cert.not_valid_after_utc:%Y-%m-%d}\): expired or not yet valid$",
    ):
        env.verify(signed, ca.cert, AT)


def test_digital_signature_is_the_key_usage_required_and_non_repudiation_alone_is_not_enough() -> None:
    """pyHanko's default for CMS would demand nonRepudiation and accept it alone: the profile is digitalSignature."""
    ca = CA("a")
    key, signing_only = ca.office(non_repudiation=False)
    verified = env.verify(cms.simple(CONTENT, key, signing_only, [ca.cert], signing_time=AT), ca.cert, AT)
    assert verified.signer == signing_only
    key, commitment_only = ca.office(digital_signature=False)
    with pytest.raises(
        EnvelopeError,
        match=r"^the signer certificate may not make signatures \(its key usage "
        r"lacks digitalSignature\)$",
    ):
        env.verify(cms.simple(CONTENT, key, commitment_only, [ca.cert], signing_time=AT), ca.cert, AT)
