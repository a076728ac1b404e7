"""Documents a node signs for its peers (its identity, its office directory), and certificate checks.

A signed document is a JWS in compact serialisation (RFC 7515): ``ES256`` with the
node key, the node certificate in the ``x5c`` header. A peer accepts it only if that
certificate was issued by the CA it pinned, is a node certificate (not an office or
TSA one) and is valid now.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from inkless.errors import PKIError
from inkless.federation.httpsig import SignatureError, sign_ecdsa, verify_ecdsa

NODE_DOCUMENT = "inkless-node"
DIRECTORY_DOCUMENT = "inkless-directory"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_document(payload: dict[str, Any], key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> str:
    """A compact JWS (ES256) of ``payload`` carrying ``certificate`` in ``x5c``."""
    header = {
        "alg": "ES256",
        "typ": "JOSE",
        "x5c": [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")],
    }
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    )
    return signing_input + "." + _b64url(sign_ecdsa(signing_input.encode("ascii"), key))


def open_document(jws: str) -> tuple[dict[str, Any], x509.Certificate]:
    """The payload and signer certificate of a JWS, NOT yet verified (see :func:`verify_document`)."""
    try:
        head, body, _sig = jws.strip().split(".")
        header = json.loads(_unb64url(head))
        payload = json.loads(_unb64url(body).decode("utf-8"))
        if header.get("alg") != "ES256":
            raise SignatureError(f"signed document uses {header.get('alg')!r}, not ES256")
        certificate = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    except SignatureError:
        raise
    except (ValueError, x509.InvalidVersion, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
        raise SignatureError(f"malformed signed document: {exc}") from None
    if not isinstance(payload, dict):
        raise SignatureError("malformed signed document: the payload is not an object")
    return payload, certificate


def verify_document(jws: str, ca: x509.Certificate, now: datetime, kind: str) -> dict[str, Any]:
    """The payload of a JWS signed by a node certificate of ``ca``; SignatureError otherwise."""
    payload, certificate = open_document(jws)
    check_node_certificate(certificate, ca, now)
    head, body, sig = jws.strip().split(".")
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise SignatureError("the signer's key is not an ECDSA key")
    verify_ecdsa(f"{head}.{body}".encode("ascii"), _unb64url(sig), public_key)
    if payload.get("type") != kind:
        raise SignatureError(f"expected a signed {kind} document, got {payload.get('type')!r}")
    return payload


def _issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> None:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as exc:
        raise SignatureError(
            f"the certificate '{certificate.subject.rfc4514_string()}' was not issued by the pinned CA "
            f"'{ca.subject.rfc4514_string()}' ({exc or 'bad signature'})"
        ) from None
    except Exception as exc:  # cryptography raises InvalidSignature for a signature by another key
        raise SignatureError(
            f"the certificate '{certificate.subject.rfc4514_string()}' was not issued by the pinned CA "
            f"'{ca.subject.rfc4514_string()}' ({type(exc).__name__})"
        ) from None


def _valid_at(certificate: x509.Certificate, now: datetime, what: str) -> None:
    if now < certificate.not_valid_before_utc:
        raise SignatureError(f"the {what} certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d}")
    if now > certificate.not_valid_after_utc:
        raise SignatureError(f"the {what} certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}")


def _eku(certificate: x509.Certificate) -> set[x509.ObjectIdentifier]:
    try:
        return set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def check_node_certificate(certificate: x509.Certificate, ca: x509.Certificate, now: datetime) -> None:
    """Raise SignatureError unless ``certificate`` is a valid NODE certificate issued by ``ca``.

    Office and TSA certificates come from the same CA; only the node certificate
    (extended key usage serverAuth + clientAuth, no office address) may speak for the node.
    """
    _issued_by(certificate, ca)
    _valid_at(certificate, now, "node")
    if _eku(certificate) != {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}:
        raise SignatureError("the signing certificate is not the peer's node certificate")
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
        raise SignatureError("the node certificate does not hold an ECDSA P-256 key")


def office_urn(certificate: x509.Certificate) -> str | None:
    """The ``urn:inkless:office:ADDRESS`` in a certificate's subject alternative name, if any."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("urn:inkless:office:"):
            return uri.removeprefix("urn:inkless:office:")
    return None


def check_office_certificate(
    certificate: x509.Certificate, ca: x509.Certificate, now: datetime, address: str, purpose: str
) -> None:
    """Raise PKIError unless ``certificate`` is a valid ``purpose`` certificate of office ``address`` from ``ca``."""
    try:
        _issued_by(certificate, ca)
        _valid_at(certificate, now, f"{purpose} ({address})")
    except SignatureError as exc:
        raise PKIError(str(exc)) from None
    urn = office_urn(certificate)
    if urn != address:
        raise PKIError(f"the {purpose} certificate names office {urn!r}, not {address!r}")
    eku = _eku(certificate)
    if ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku:
        raise PKIError(f"the {purpose} certificate of {address} is not for S/MIME")
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    if purpose == "encryption" and not usage.key_encipherment:
        raise PKIError(f"the encryption certificate of {address} does not allow key encipherment")
    if purpose == "signing" and not usage.digital_signature:
        raise PKIError(f"the signing certificate of {address} does not allow signatures")
