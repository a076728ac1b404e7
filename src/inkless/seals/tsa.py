"""The node's RFC 3161 time-stamping authority, and the seam that picks the TSA sealing uses.

The node TSA answers ``application/timestamp-query`` requests at ``POST /tsa`` and signs the
TSTInfo with the node's TSA key (certificate from the node CA, EKU timeStamping critical).
It is a pyHanko :class:`~pyhanko.sign.timestamps.TimeStamper` (the public base class: sealing
calls it in-process) and builds its tokens with public APIs only: the TSTInfo with asn1crypto,
the SignedData around it with pyHanko's :meth:`SimpleSigner.async_sign_general_data` (content
type id-ct-TSTInfo, signing-certificate-v2 and signing-time attributes). We add unique 128-bit
serial numbers, ``certReq`` handling, an inkless policy OID, request checks and an audit entry
per stamp.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from asn1crypto import cms, core, keys, tsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, SimpleSigner
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper, TimestampRequestError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from inkless.aio import run_sync
from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db.engine import Database
from inkless.pki import asn1names  # noqa: F401  (pyHanko's OID names, known by name)
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


class NodeTimeStampAuthority(TimeStamper):
    """The node's own RFC 3161 TSA; also usable in-process as a pyHanko ``TimeStamper``."""

    def __init__(self, db: Database, pki: NodeCA, audit: AuditRecorder, clock: Clock, node_id: str) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self._db = db
        self._pki = pki
        self._audit = audit
        self._clock = clock
        self._node_id = node_id
        # Loaded on first use: at `inkless init` the node has no TSA certificate yet.
        self._tsa_chain: tuple[x509.Certificate, x509.Certificate] | None = None
        self._tsa_name = b""

    def _load(self) -> tuple[x509.Certificate, x509.Certificate]:
        if self._tsa_chain is None:
            with self._db.read() as conn:
                _, cert = self._pki.key_and_certificate(conn, CertPurpose.TSA, self._node_id)
                ca = self._pki.ca_certificate(conn)
            tsa_cert = to_asn1_certificate(cert)
            self._tsa_chain = (tsa_cert, x509.Certificate.load(ca.der))
            self._tsa_name = x509.GeneralName(name="directory_name", value=tsa_cert.subject).dump()
        return self._tsa_chain

    @property
    def tsa_cert(self) -> x509.Certificate:
        """The TSA certificate (asn1crypto)."""
        return self._load()[0]

    @property
    def ca_cert(self) -> x509.Certificate:
        """The node CA certificate that issued the TSA certificate."""
        return self._load()[1]

    def _tst_info(self, req: tsp.TimeStampReq, when: datetime) -> tsp.TSTInfo:
        args: dict[str, Any] = {
            "version": "v1",
            "policy": tsp.ObjectIdentifier(TSA_POLICY_OID),
            "message_imprint": req["message_imprint"],
            # 128 random bits: unique without shared state across processes (RFC 3161 allows up to 160 bits).
            "serial_number": uuid.uuid4().int,
            "gen_time": when,
            "accuracy": {"seconds": 1},
            "tsa": x509.GeneralName.load(self._tsa_name),
        }
        if req["nonce"].native is not None:
            args["nonce"] = req["nonce"]
        return tsp.TSTInfo(args)

    async def _token(self, tst_info: tsp.TSTInfo, md_algorithm: str, when: datetime,
                     cert_req: bool) -> cms.ContentInfo:
        tsa_cert, ca_cert = self._load()
        # The key is decrypted for this one signature and dropped: it never leaves memory. A read-only
        # transaction: stamps made in parallel (batch sealing) must not queue for the write lock here.
        with self._db.read() as conn:
            key, _ = self._pki.key_and_certificate(conn, CertPurpose.TSA, self._node_id)
        signer = SimpleSigner(
            signing_cert=tsa_cert,
            signing_key=keys.PrivateKeyInfo.load(key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
            cert_registry=SimpleCertificateStore.from_certs([ca_cert]),  # type: ignore[no-untyped-call]
        )
        content = cms.EncapsulatedContentInfo(
            {"content_type": "tst_info", "content": cms.ParsableOctetString(tst_info.dump())}
        )
        token: cms.ContentInfo = await signer.async_sign_general_data(
            content, md_algorithm, detached=False, signed_attr_settings=PdfCMSSignedAttributes(signing_time=when),
        )
        if not cert_req:
            # RFC 3161 §2.4.1: without certReq the certificates field MUST NOT be present. It is not signed,
            # so leaving it out keeps the signature intact.
            sd = token["content"]
            token = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(
                {name: sd[name] for name in ("version", "digest_algorithms", "encap_content_info", "signer_infos")}
            )})
        return token

    async def _respond(self, req: tsp.TimeStampReq, audited: bool = True) -> tsp.TimeStampResp:
        problem = _check_request(req)
        if problem is not None:
            raise TimestampRequestError(f"{problem[0]}: {problem[1]}")
        when = self._clock.now().replace(microsecond=0)
        imprint = req["message_imprint"]
        md_algorithm = imprint["hash_algorithm"]["algorithm"].native
        self._load()
        tst_info = self._tst_info(req, when)
        token = await self._token(tst_info, md_algorithm, when, bool(req["cert_req"].native))
        granted = tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})
        if not audited:
            return granted
        with self._db.begin() as conn:
            self._audit.record(conn, AuditEvent(
                actor="tsa", action="tsa.stamped", object_type="timestamp",
                object_id=format(tst_info["serial_number"].native, "x"),
                digests={md_algorithm: imprint["hashed_message"].native.hex()},
            ))
        return granted

    def request_tsa_response(self, req: tsp.TimeStampReq, *, audited: bool = True) -> tsp.TimeStampResp:
        """Answer one parsed request: a granted stamp; TimestampRequestError saying why if it is refused.

        ``audited=False`` for anonymous requests over HTTP: the web layer tallies them instead.
        """
        return run_sync(self._respond(req, audited))

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """pyHanko's TimeStamper hook: sealing asks the node TSA in-process."""
        return await self._respond(req)

    # --- HTTP ------------------------------------------------------------------------

    def answer(self, body: bytes, *, audited: bool = True) -> bytes:
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
        return bytes(self.request_tsa_response(req, audited=audited).dump())


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
