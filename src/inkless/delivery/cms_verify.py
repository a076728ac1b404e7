"""Verification of a CMS SignedData envelope: the inkless profile on top of pyHanko's generic CMS validation.

Split from :mod:`inkless.delivery.envelope` (which builds, signs, encrypts and parses envelopes with
``cryptography`` alone) so that pyHanko is imported only when a signature is verified.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from datetime import datetime

from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped,unused-ignore]
from asn1crypto import x509 as asn1_x509  # type: ignore[import-untyped,unused-ignore]
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.general import CMSExtractionError, extract_certificate_info
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import async_validate_cms_signature, extract_self_reported_ts
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathError
from pyhanko_certvalidator.errors import ValidationError as CertValidationError

from inkless import timefmt
from inkless.aio import run_on_thread_loop
from inkless.delivery.cms_stream import SignedDataStream, read_signed
from inkless.delivery.signed import CLOCK_SKEW, SignedContent, office_address
from inkless.errors import EnvelopeError
from inkless.pki import asn1names  # noqa: F401  (pyHanko's OID names, known by name)

# Digest algorithms a SignerInfo may declare; pyHanko computes the digest with the declared one.
ACCEPTED_DIGESTS = ("sha256", "sha384", "sha512")
# Signature mechanisms (as asn1crypto names them) that fit each key type.
_MECHANISMS_FOR_KEY = {"ec": ("ecdsa",), "rsa": ("rsassa_pkcs1v15", "rsassa_pss")}
# Signed attributes that must appear exactly once with exactly one value (RFC 5652 §11).
_SINGLE_ATTRIBUTES = ("content_type", "message_digest", "signing_time")


def _structure(light: bytes, has_content: bool) -> asn1_cms.SignedData:
    """The SignedData (read without its content); EnvelopeError for anything outside the profile's shape."""
    try:
        info = asn1_cms.ContentInfo.load(light, strict=True)
        sd = info["content"]
        eci = sd["encap_content_info"]
        content_type = eci["content_type"].native
        signer_infos = list(sd["signer_infos"])
    except Exception as exc:  # asn1crypto raises ValueError/TypeError/… lazily on garbage
        raise EnvelopeError(f"not a valid CMS SignedData ({type(exc).__name__}: {exc})") from None
    if not has_content:
        raise EnvelopeError("the signed data carries no content (detached signatures are not accepted)")
    if content_type != "data":
        raise EnvelopeError(f"the signed content is {content_type}, not id-data")
    if len(signer_infos) != 1:
        raise EnvelopeError(f"expected exactly one signer, found {len(signer_infos)}")
    si = signer_infos[0]
    try:
        digest_alg = si["digest_algorithm"]["algorithm"].native
        attrs = si["signed_attrs"]
        types = [a["type"].native for a in attrs] if attrs else []
        counts = {a["type"].native: len(a["values"]) for a in attrs} if attrs else {}
    except Exception as exc:
        raise EnvelopeError(f"the signer information is malformed ({type(exc).__name__}: {exc})") from None
    if digest_alg not in ACCEPTED_DIGESTS:
        raise EnvelopeError(f"digest algorithm {digest_alg} is not accepted (SHA-256, SHA-384 or SHA-512 only)")
    if not types:
        raise EnvelopeError("the signature has no signed attributes")
    repeated = sorted({t for t in types if types.count(t) > 1})
    if repeated:
        # Two message digests (or times) would let a verifier and a reader see different things.
        raise EnvelopeError(f"the signed attribute {', '.join(map(str, repeated))} appears more than once")
    multi = [t for t in _SINGLE_ATTRIBUTES if counts.get(t, 1) != 1]
    if multi:
        raise EnvelopeError(f"the signed attribute {', '.join(multi)} must have exactly one value")
    return sd


def _trust_problem(status: SignatureStatus, signer: x509.Certificate, trust_anchor: x509.Certificate,
                   now: datetime) -> str:
    indic = status.trust_problem_indic
    if not signer.not_valid_before_utc - CLOCK_SKEW <= now <= signer.not_valid_after_utc + CLOCK_SKEW:
        return (
            f"the signer certificate is not valid now (valid {signer.not_valid_before_utc:%Y-%m-%d} to "
            f"{signer.not_valid_after_utc:%Y-%m-%d}): expired or not yet valid"
        )
    if indic == AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND:
        return (
            f"the signer certificate ({signer.subject.rfc4514_string()}) was not issued by the trusted CA "
            f"of the sending node ({trust_anchor.subject.rfc4514_string()})"
        )
    if indic == AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE:
        return "the signer certificate may not make signatures (its key usage lacks digitalSignature)"
    return f"the signer certificate is not trusted ({indic})"


def verify_signed(
    signed: bytes,
    trust_anchor: x509.Certificate,
    now: datetime,
    expected_signer: str | None = None,
    is_revoked: Callable[[x509.Certificate], bool] | None = None,
) -> SignedContent:
    """Check a CMS SignedData held in memory (a receipt) and return its content; see :func:`verify_read`."""
    stream = SignedDataStream(io.BytesIO(signed))
    content = b"".join(read_signed(stream.content()))
    return dataclasses.replace(verify_read(stream, trust_anchor, now, expected_signer, is_revoked), content=content)


def verify_read(
    stream: SignedDataStream,
    trust_anchor: x509.Certificate,
    now: datetime,
    expected_signer: str | None = None,
    is_revoked: Callable[[x509.Certificate], bool] | None = None,
) -> SignedContent:
    """Check a CMS SignedData whose content was read (and hashed) through ``stream``; the content is not returned.

    The profile (attached id-data content, one signer, signed attributes each present once, a
    SHA-2 digest, a mechanism that fits the key) is checked here; the signature itself, the
    digest, the signer's identification by issuer and serial and the certificate path to
    ``trust_anchor`` (the sending node's CA, nothing fetched) with the digitalSignature key usage
    are pyHanko's generic CMS validation. On top: the certificate was valid at the signing time,
    which is not in the future, is not revoked, and names ``expected_signer`` (``office@node``).
    """
    try:
        return _verify(stream, trust_anchor, now, expected_signer, is_revoked)
    except EnvelopeError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # asn1crypto parses lazily: damage deep inside (a certificate, a signer identifier) surfaces
        # only when pyHanko or we reach that field. It is the same refusal as a malformed structure.
        raise EnvelopeError(f"not a valid CMS SignedData ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _verify(
    stream: SignedDataStream,
    trust_anchor: x509.Certificate,
    now: datetime,
    expected_signer: str | None,
    is_revoked: Callable[[x509.Certificate], bool] | None,
) -> SignedContent:
    sd = _structure(stream.light, stream.has_content)
    si = sd["signer_infos"][0]
    digest_alg = si["digest_algorithm"]["algorithm"].native
    if digest_alg not in stream.digests:
        raise EnvelopeError(f"the signer's digest algorithm {digest_alg} is not among those the SignedData declares")
    try:
        signer_asn1 = extract_certificate_info(sd).signer_cert
    except CMSExtractionError:
        raise EnvelopeError("the signer's certificate is not included in the signature") from None
    try:
        signer = x509.load_der_x509_certificate(signer_asn1.dump())
    except (ValueError, x509.InvalidVersion) as exc:
        # asn1crypto reads lazily and leniently; cryptography parses the whole certificate strictly.
        raise EnvelopeError(f"the signer's certificate is malformed ({exc})") from None
    try:
        signer.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EnvelopeError(f"the signer's certificate holds no usable public key ({exc})") from None
    mechanism = si["signature_algorithm"].signature_algo
    key_type = signer_asn1.public_key.algorithm
    if mechanism not in _MECHANISMS_FOR_KEY.get(key_type, ()):
        raise EnvelopeError(f"signature algorithm {mechanism} does not fit the signer's {key_type} key")
    try:
        # The pinned CA is read here in full (cryptography reads its extensions only when asked):
        # one whose extension is malformed cannot anchor any path.
        context = ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(trust_anchor.public_bytes(serialization.Encoding.DER))],
            allow_fetching=False, moment=now, time_tolerance=CLOCK_SKEW,
        )
        status = run_on_thread_loop(async_validate_cms_signature(
            sd, raw_digest=stream.digests[digest_alg], validation_context=context,
            key_usage_settings=KeyUsageConstraints(key_usage={"digital_signature"}),
        ))
    except SignatureValidationError as exc:
        raise EnvelopeError(f"the signature cannot be validated: {exc.failure_message}") from None
    except (CertValidationError, PathError, ValueError) as exc:
        # pyHanko reports most path problems in the status, but a trust anchor it cannot read, and in
        # some versions a certificate whose own signature does not verify under the CA, escape as errors.
        raise EnvelopeError(
            f"the signer certificate does not chain to the sending node's CA ({_first_line(exc)})"
        ) from None
    if not status.intact:
        raise EnvelopeError("the content does not match the signed message digest: it was altered")
    if not status.valid:
        raise EnvelopeError("the signature is invalid: the signed attributes were altered or signed by another key")
    if status.trust_problem_indic is not None:
        raise EnvelopeError(_trust_problem(status, signer, trust_anchor, now))
    signing_time = extract_self_reported_ts(si)
    if signing_time is not None:
        if not signer.not_valid_before_utc - CLOCK_SKEW <= signing_time <= signer.not_valid_after_utc:
            raise EnvelopeError(
                "the signer certificate was not valid at the signing time "
                f"({timefmt.format_datetime(signing_time, 'en')})"
            )
        if signing_time > now + CLOCK_SKEW:
            raise EnvelopeError("the signing time lies in the future")
    if is_revoked is not None and is_revoked(signer):
        raise EnvelopeError(f"the signer certificate (serial {signer.serial_number:x}) is revoked")
    address = office_address(signer)
    if address is None:
        raise EnvelopeError("the signer certificate names no inkless office")
    if expected_signer is not None and address != expected_signer:
        raise EnvelopeError(f"signed by {address}, but the sender claims to be {expected_signer}")
    return SignedContent(content=b"", signer=signer, signer_address=address, signing_time=signing_time)


