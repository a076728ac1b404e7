"""The node's RFC 3161 time-stamping authority, and the seam that picks the TSA sealing uses.

The node TSA answers ``application/timestamp-query`` requests at ``POST /tsa`` and signs the
TSTInfo with the node's TSA key (certificate from the node CA, EKU timeStamping critical). It
builds on pyHanko's :class:`~pyhanko.sign.timestamps.DummyTimeStamper`, which is a complete
RFC 3161 responder; we add ECDSA keys, unique 128-bit serial numbers, ``certReq`` handling,
an inkless policy OID, request checks and an audit entry per stamp.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import datetime
from typing import Any

from asn1crypto import algos, cms, core, tsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute
from pyhanko.sign.timestamps import DummyTimeStamper, HTTPTimeStamper, TimeStamper, TimestampRequestError
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db.engine import Database
from inkless.errors import ValidationError
from inkless.pki.ca import NodeCA
from inkless.pki.model import CertPurpose

# A UUID-derived OID (ITU-T X.667, arc 2.25) names the inkless time-stamping policy without a registered arc.
TSA_POLICY_OID = "2.25.247183296563185536722376305442563906913"

# Digests a request may carry, with their lengths (RFC 3161 §2.4.1: the imprint must match the algorithm).
SUPPORTED_DIGESTS = {"sha256": 32, "sha384": 48, "sha512": 64}

TIMESTAMP_QUERY = "application/timestamp-query"
TIMESTAMP_REPLY = "application/timestamp-reply"
MAX_REQUEST_BYTES = 16 * 1024


def to_asn1_certificate(cert: cx509.Certificate) -> x509.Certificate:
    """The asn1crypto form of a ``cryptography`` certificate (what pyHanko wants)."""
    return x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class NodeTimeStampAuthority(DummyTimeStamper):
    """The node's own RFC 3161 TSA; also usable in-process as a pyHanko ``TimeStamper``."""

    def __init__(self, db: Database, pki: NodeCA, audit: AuditRecorder, clock: Clock, node_id: str) -> None:
        self._db = db
        self._pki = pki
        self._audit = audit
        self._clock = clock
        self._node_id = node_id
        self._tsa_chain: tuple[x509.Certificate, x509.Certificate] | None = None
        self._signing_cert_attr = b""
        self._sid = b""
        self._tsa_name = b""
        self._cert_set = b""
        # pyHanko's responder keeps per-request state on the instance: one request at a time.
        self._lock = threading.Lock()
        self._cert_req = True
        self._algorithm = "sha256_ecdsa"
        self.certs_to_embed = []
        self.fixed_dt = None
        self.override_md = None
        # DummyTimeStamper.__init__ wants the certificate now; the node may not have it yet (init).
        TimeStamper.__init__(self, include_nonce=True)  # type: ignore[no-untyped-call]

    def _load(self) -> tuple[x509.Certificate, x509.Certificate]:
        if self._tsa_chain is None:
            with self._db.begin() as conn:
                _, cert = self._pki.key_and_certificate(conn, CertPurpose.TSA, self._node_id)
                ca = self._pki.ca_certificate(conn)
            tsa_cert = to_asn1_certificate(cert)
            self._tsa_chain = (tsa_cert, x509.Certificate.load(ca.der))
            # asn1crypto re-encodes names whenever they are copied into a new structure (milliseconds
            # each): the parts that depend only on the certificate are encoded once and loaded per stamp.
            self._signing_cert_attr = simple_cms_attribute(  # type: ignore[no-untyped-call]
                "signing_certificate_v2", as_signing_certificate_v2(tsa_cert)).dump()
            self._sid = cms.SignerIdentifier({
                "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                    {"issuer": tsa_cert.issuer, "serial_number": tsa_cert.serial_number}
                )
            }).dump()
            self._tsa_name = x509.GeneralName(name="directory_name", value=tsa_cert.subject).dump()
            self._cert_set = cms.CertificateSet(list(self._tsa_chain)).dump()
        return self._tsa_chain

    @property
    def tsa_cert(self) -> x509.Certificate:
        """The TSA certificate (asn1crypto)."""
        return self._load()[0]

    @property
    def ca_cert(self) -> x509.Certificate:
        """The node CA certificate that issued the TSA certificate."""
        return self._load()[1]

    # --- pyHanko hooks -----------------------------------------------------------------

    def _build_tst_info(self, message_imprint: tsp.MessageImprint, dt: datetime, req: tsp.TimeStampReq) -> Any:
        args: dict[str, Any] = {
            "version": "v1",
            "policy": tsp.ObjectIdentifier(TSA_POLICY_OID),
            "message_imprint": message_imprint,
            # 128 random bits: unique without shared state across processes (RFC 3161 allows up to 160 bits).
            "serial_number": uuid.uuid4().int,
            "gen_time": dt,
            "accuracy": {"seconds": 1},
            "tsa": x509.GeneralName.load(self._tsa_name),
        }
        if req["nonce"].native is not None:
            args["nonce"] = req["nonce"]
        return tsp.TSTInfo(args)

    def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str, dt: datetime) -> tuple[bytes, Any]:
        md = hashes.Hash(get_pyca_cryptography_hash(md_algorithm))
        md.update(tst_info_data)
        signed_attrs = cms.CMSAttributes([
            simple_cms_attribute("content_type", "tst_info"),  # type: ignore[no-untyped-call]
            simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(dt)})),  # type: ignore[no-untyped-call]
            cms.CMSAttribute.load(self._signing_cert_attr),
            simple_cms_attribute("message_digest", md.finalize()),  # type: ignore[no-untyped-call]
        ])
        # The key is decrypted for this one signature and dropped: it never leaves memory.
        with self._db.begin() as conn:
            key, _ = self._pki.key_and_certificate(conn, CertPurpose.TSA, self._node_id)
        chosen = get_pyca_cryptography_hash(md_algorithm)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            signature = key.sign(signed_attrs.dump(), ec.ECDSA(chosen))
        elif isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(signed_attrs.dump(), padding.PKCS1v15(), chosen)
        else:
            raise ValidationError("the TSA key is of an unsupported type")
        self._algorithm = f"{md_algorithm}_ecdsa" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsassa_pkcs1v15"
        return signature, signed_attrs

    def _build_signed_data(
        self, tst_info_data: bytes, md_algorithm: str, signature: bytes, signed_attrs: cms.CMSAttributes
    ) -> dict[str, Any]:
        digest_algorithm = algos.DigestAlgorithm({"algorithm": md_algorithm})
        signer_info = cms.SignerInfo({
            "version": "v1",
            "sid": cms.SignerIdentifier.load(self._sid),
            "digest_algorithm": digest_algorithm,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": self._algorithm}),
            "signed_attrs": signed_attrs,
            "signature": signature,
        })
        data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": cms.DigestAlgorithms((digest_algorithm,)),
            "encap_content_info": cms.EncapsulatedContentInfo(
                {"content_type": cms.ContentType("tst_info"), "content": cms.ParsableOctetString(tst_info_data)}
            ),
            "signer_infos": [signer_info],
        }
        # RFC 3161 §2.4.1: the TSA certificate goes in only when the request asks for it (certReq).
        if self._cert_req:
            data["certificates"] = cms.CertificateSet.load(self._cert_set)
        return data

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """Answer one parsed request: a granted stamp, or a rejection saying why."""
        problem = _check_request(req)
        if problem is not None:
            raise TimestampRequestError(f"{problem[0]}: {problem[1]}")
        self._load()
        with self._lock:
            self._cert_req = bool(req["cert_req"].native)
            self.fixed_dt = self._clock.now().replace(microsecond=0)
            response = super().request_tsa_response(req)
        tst_info = response["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        imprint = req["message_imprint"]
        with self._db.begin() as conn:
            self._audit.record(conn, AuditEvent(
                actor="tsa", action="tsa.stamped", object_type="timestamp",
                object_id=format(tst_info["serial_number"].native, "x"),
                digests={imprint["hash_algorithm"]["algorithm"].native: imprint["hashed_message"].native.hex()},
            ))
        return response

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return self.request_tsa_response(req)

    # --- HTTP ------------------------------------------------------------------------

    def answer(self, body: bytes) -> bytes:
        """The DER ``TimeStampResp`` for a DER ``TimeStampReq`` received over HTTP (RFC 3161 §3.4)."""
        if len(body) > MAX_REQUEST_BYTES:
            return bytes(_rejection("bad_data_format", "the request is too large").dump())
        try:
            req = tsp.TimeStampReq.load(body, strict=True)
            _ = req.native  # parse everything now, so garbage is refused here and not half-way
        except (ValueError, TypeError, KeyError) as exc:
            return bytes(_rejection("bad_data_format", f"not a DER TimeStampReq: {exc}").dump())
        problem = _check_request(req)
        if problem is not None:
            return bytes(_rejection(*problem).dump())
        return bytes(self.request_tsa_response(req).dump())


def _check_request(req: tsp.TimeStampReq) -> tuple[str, str] | None:
    if req["version"].native != "v1":
        return "bad_request", "only version 1 requests are supported"
    algorithm = req["message_imprint"]["hash_algorithm"]["algorithm"].native
    if algorithm not in SUPPORTED_DIGESTS:
        return "bad_alg", f"unsupported digest algorithm {algorithm} (use {', '.join(SUPPORTED_DIGESTS)})"
    if len(req["message_imprint"]["hashed_message"].native) != SUPPORTED_DIGESTS[algorithm]:
        return "bad_data_format", f"the message imprint is not a {algorithm} digest"
    policy = req["req_policy"].native
    if policy is not None and policy != TSA_POLICY_OID:
        return "unaccepted_policy", f"this TSA only stamps under policy {TSA_POLICY_OID}"
    if req["extensions"].native:
        return "unaccepted_extension", "this TSA accepts no request extensions"
    return None


class _RejectedResp(core.Sequence):  # type: ignore[misc]
    # asn1crypto's TimeStampResp marks timeStampToken mandatory, but RFC 3161 §2.4.2 omits it when
    # the request is refused: this is the same SEQUENCE with the status only.
    _fields = [("status", tsp.PKIStatusInfo)]  # noqa: RUF012  (asn1crypto reads this class attribute)


def _rejection(fail_info: str, text: str) -> _RejectedResp:
    return _RejectedResp({
        "status": tsp.PKIStatusInfo({
            "status": tsp.PKIStatus("rejection"),
            "status_string": [text],
            "fail_info": tsp.PKIFailureInfo({fail_info}),
        })
    })


def choose_timestamper(tsa_url: str | None, node_tsa: NodeTimeStampAuthority) -> TimeStamper:
    """The TSA that stamps seals: an external one when ``tsa_url`` is set, else the node's own (in-process)."""
    if tsa_url:
        return HTTPTimeStamper(tsa_url, timeout=10)
    return node_tsa


def digest_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
