"""Hand-built CMS SignedData for refusal tests: every field can be set wrong on purpose.

cryptography's PKCS7 builder only makes well-formed signatures; a verifier's refusals need the
malformed and hostile ones too (detached, two signers, SHA-1, a good digest under a bad
signature, duplicate attributes, ...). Built with asn1crypto, the same way any CMS signer does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def attribute(kind: str, *values: Any) -> cms.CMSAttribute:
    """One signed attribute (``content_type``, ``message_digest``, ``signing_time``) with these values."""
    if kind == "signing_time":
        values = tuple(cms.Time({"utc_time": v}) for v in values)
    return cms.CMSAttribute({"type": kind, "values": list(values)})


def standard_attributes(content: bytes, digest: str = "sha256", signing_time: datetime | None = None,
                        content_type: str = "data") -> list[cms.CMSAttribute]:
    """The attributes a CMS signer puts in: content type, signing time, message digest."""
    when = (signing_time or datetime.now(UTC)).replace(microsecond=0)
    return [
        attribute("content_type", content_type),
        attribute("signing_time", when),
        attribute("message_digest", hashlib.new(digest, content).digest()),
    ]


def _sign(data: bytes, key: Any, digest: str) -> bytes:
    algorithm = _HASHES[digest]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(data, padding.PKCS1v15(), algorithm)


def signer_info(content: bytes, key: Any, cert: x509.Certificate, *, digest: str = "sha256",
                attrs: Sequence[cms.CMSAttribute] | None = None, no_attrs: bool = False,
                mechanism: str | None = None, signing_key: Any = None, corrupt_signature: bool = False,
                signing_time: datetime | None = None) -> cms.SignerInfo:
    """A SignerInfo over ``content``; each keyword sets one thing the way a hostile signer would."""
    if no_attrs:
        signed_attrs: Any = core.Void()
        to_sign = content
    else:
        listed = list(attrs) if attrs is not None else standard_attributes(content, digest, signing_time)
        signed_attrs = cms.CMSAttributes(listed)
        to_sign = cms.CMSAttributes(listed).dump()  # signed as a universal SET OF (RFC 5652 §5.4)
    signature = _sign(to_sign, signing_key or key, digest)
    if corrupt_signature:
        # Still a well-formed signature value, over the same attributes: only the signature check can catch it.
        signature = _sign(to_sign + b"x", signing_key or key, digest)
    if mechanism is None:
        mechanism = f"{digest}_ecdsa" if isinstance(key, ec.EllipticCurvePrivateKey) else f"{digest}_rsa"
    issuer_serial = cms.IssuerAndSerialNumber({"issuer": _asn1(cert).issuer, "serial_number": cert.serial_number})
    fields: dict[str, Any] = {
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": issuer_serial}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": digest}),
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": mechanism}),
        "signature": signature,
    }
    if not no_attrs:
        fields["signed_attrs"] = signed_attrs
    return cms.SignerInfo(fields)


def signed_data(content: bytes, signers: Sequence[cms.SignerInfo], certificates: Sequence[x509.Certificate],
                *, detached: bool = False) -> bytes:
    """ContentInfo(SignedData) DER with these signers and certificates."""
    digests = []
    for si in signers:
        alg = si["digest_algorithm"]
        if alg.dump() not in [d.dump() for d in digests]:
            digests.append(alg)
    encap: dict[str, Any] = {"content_type": "data"}
    if not detached:
        encap["content"] = content
    sd = cms.SignedData({
        "version": "v1",
        "digest_algorithms": digests,
        "encap_content_info": encap,
        "certificates": [cms.CertificateChoices({"certificate": _asn1(c)}) for c in certificates],
        "signer_infos": list(signers),
    })
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump())


def simple(content: bytes, key: Any, cert: x509.Certificate, chain: Sequence[x509.Certificate] = (),
           **changes: Any) -> bytes:
    """One signer, its certificate (and ``chain``) included; ``changes`` go to :func:`signer_info`."""
    detached = bool(changes.pop("detached", False))
    return signed_data(content, [signer_info(content, key, cert, **changes)], [cert, *chain], detached=detached)
