"""The node's RFC 3161 TSA, checked with the openssl ts tool over the HTTP endpoint."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asn1crypto import tsp
from sqlalchemy import func, select

from inkless.app import Node
from inkless.db import tables as t
from inkless.db.tables_traffic import anonymous_requests
from inkless.pki.model import CertPurpose
from inkless.seals.tsa import TIMESTAMP_QUERY, TIMESTAMP_REPLY
from inkless.web.app import create_app
from tests.helpers.pki import ca_pem
from tests.helpers.seals import demo_node

with warnings.catch_warnings():
    # Starlette warns that its test client prefers the httpx2 package; httpx is what we have.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def tnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with demo_node("sqlite", tmp_path_factory.mktemp("tsa-node")) as node:
        yield node


@pytest.fixture(scope="module")
def tsa_url(tnode: Node) -> Iterator[str]:
    """The node's web app served by uvicorn on a free port: the TSA over real HTTP."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(tnode), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/tsa"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def tsa_pem(node: Node, folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    with node.db.begin() as conn:
        _, cert = node.pki.key_and_certificate(conn, CertPurpose.TSA, node.node_id)
    path = folder / "tsa.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("cert_req", [False, True])
def test_openssl_query_reply_and_verify(tnode: Node, tsa_url: str, tmp_path: Path, cert_req: bool) -> None:
    data = tmp_path / "document.txt"
    data.write_bytes("稟議書 第42号\n".encode())
    query = tmp_path / "request.tsq"
    args = ["ts", "-query", "-data", str(data), "-sha256", "-out", str(query)]
    assert openssl(*(args + (["-cert"] if cert_req else []))).returncode == 0
    response = httpx.post(tsa_url, content=query.read_bytes(), headers={"Content-Type": TIMESTAMP_QUERY})
    assert response.status_code == 200
    assert response.headers["content-type"] == TIMESTAMP_REPLY
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(response.content)
    text = openssl("ts", "-reply", "-in", str(reply), "-text")
    assert text.returncode == 0, text.stderr
    assert "Status: Granted." in text.stdout
    assert "time-stamping authority" in text.stdout
    ca = ca_pem(tnode, tmp_path)
    untrusted = [] if cert_req else ["-untrusted", str(tsa_pem(tnode, tmp_path))]
    verified = openssl("ts", "-verify", "-data", str(data), "-in", str(reply), "-CAfile", str(ca), *untrusted)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Verification: OK" in verified.stdout
    # The reply must stamp exactly this document: another one does not verify.
    other = tmp_path / "other.txt"
    other.write_bytes(b"something else")
    wrong = openssl("ts", "-verify", "-data", str(other), "-in", str(reply), "-CAfile", str(ca), *untrusted)
    assert wrong.returncode != 0


@pytest.mark.parametrize(("cert_req", "algorithm"), [(True, "SHA512"), (False, "SHA256")])
def test_rfc3161_client_requests_and_verifies_our_stamps(tnode: Node, tsa_url: str, cert_req: bool,
                                                         algorithm: str) -> None:
    # An independent RFC 3161 implementation (rfc3161-client, Rust) builds the request and checks the reply:
    # the chain to the node CA, the critical timeStamping EKU, the ESS signer binding, nonce and imprint.
    import rfc3161_client
    from cryptography import x509 as cx509

    document = "稟議書 第42号\n".encode()
    request = (rfc3161_client.TimestampRequestBuilder().data(document)
               .hash_algorithm(getattr(rfc3161_client.HashAlgorithm, algorithm))
               .cert_request(cert_request=cert_req).nonce(nonce=True).build())
    answer = httpx.post(tsa_url, content=request.as_bytes(), headers={"Content-Type": TIMESTAMP_QUERY})
    assert answer.status_code == 200
    response = rfc3161_client.decode_timestamp_response(answer.content)
    assert response.tst_info.nonce == request.nonce
    assert (len(response.signed_data.certificates) > 0) is cert_req
    with tnode.db.begin() as conn:
        ca = cx509.load_der_x509_certificate(tnode.pki.ca_certificate(conn).der)
        _, tsa_cert = tnode.pki.key_and_certificate(conn, CertPurpose.TSA, tnode.node_id)
    verifier = (rfc3161_client.VerifierBuilder.from_request(request).add_root_certificate(ca)
                .tsa_certificate(tsa_cert).build())
    assert verifier.verify_message(response, document) is True
    with pytest.raises(rfc3161_client.VerificationError, match="Mismatch between messages"):
        verifier.verify_message(response, b"another document")
    stranger = rfc3161_client.VerifierBuilder(nonce=request.nonce).add_root_certificate(tsa_cert).build()
    with pytest.raises(rfc3161_client.VerificationError):
        stranger.verify_message(response, document)


def test_serials_are_unique_and_anonymous_stamps_are_tallied(tnode: Node, tmp_path: Path) -> None:
    client = TestClient(create_app(tnode))
    data = tmp_path / "d.txt"
    data.write_bytes(b"x")
    query = tmp_path / "q.tsq"
    assert openssl("ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)).returncode == 0
    serials = set()
    for _ in range(3):
        body = client.post("/tsa", content=query.read_bytes(), headers={"Content-Type": TIMESTAMP_QUERY}).content
        token = tsp.TimeStampResp.load(body)["time_stamp_token"]
        serials.add(token["content"]["encap_content_info"]["content"].parsed["serial_number"].native)
    assert len(serials) == 3
    with tnode.db.begin() as conn:
        stamped = {r.object_id for r in conn.execute(
            select(t.audit_entries.c.object_id).where(t.audit_entries.c.action == "tsa.stamped")).all()}
        tallied = conn.execute(select(func.sum(anonymous_requests.c.count)).where(
            anonymous_requests.c.endpoint == "tsa", anonymous_requests.c.outcome == "request")).scalar_one()
    # Anonymous HTTP stamps are counted for the hourly tally entry, not audited one by one.
    assert not {format(s, "x") for s in serials} & stamped
    assert tallied >= 3


def test_bad_requests_get_a_rejection_not_a_stamp(tnode: Node, tmp_path: Path) -> None:
    client = TestClient(create_app(tnode))
    wrong_type = client.post("/tsa", content=b"\x30\x00", headers={"Content-Type": "application/octet-stream"})
    assert wrong_type.status_code == 415
    data = tmp_path / "d.txt"
    data.write_bytes(b"x")
    sha1 = tmp_path / "sha1.tsq"
    assert openssl("ts", "-query", "-data", str(data), "-sha1", "-out", str(sha1)).returncode == 0
    policy = tmp_path / "policy.tsq"
    assert openssl("ts", "-query", "-data", str(data), "-sha256", "-tspolicy", "1.2.3.4",
                   "-out", str(policy)).returncode == 0
    with tnode.db.begin() as conn:
        before = conn.execute(select(t.audit_entries.c.idx)).all()
    cases = [
        (b"garbage", "the data submitted has the wrong format"),
        (b"\x30\x03\x02\x01\x01", "the data submitted has the wrong format"),
        (b"\x00" * 20000, "the data submitted has the wrong format"),
        (sha1.read_bytes(), "unsupported algorithm identifier"),
        (policy.read_bytes(), "policy is not supported"),
    ]
    for body, fail_info in cases:
        response = client.post("/tsa", content=body, headers={"Content-Type": TIMESTAMP_QUERY})
        assert response.status_code == 200
        reply = tmp_path / "reply.tsr"
        reply.write_bytes(response.content)
        text = openssl("ts", "-reply", "-in", str(reply), "-text")
        assert text.returncode == 0, text.stderr
        assert "Status: Rejected" in text.stdout
        assert f"Failure info: {fail_info}" in text.stdout or fail_info in text.stdout
        assert "TST info:\nNot included." in text.stdout
    with tnode.db.begin() as conn:
        assert conn.execute(select(t.audit_entries.c.idx)).all() == before


def test_seals_can_be_stamped_by_an_external_tsa_over_http(tnode: Node, tsa_url: str) -> None:
    # The node's own /tsa endpoint, served by uvicorn, plays the external TSA (tsa_url).
    from inkless.seals.imprint import SealKind
    from inkless.seals.model import Indication, SealPlacement
    from inkless.seals.sealing import SealingService
    from inkless.seals.tsa import choose_timestamper
    from tests.helpers.seals import sample_pdf

    with tnode.db.begin() as conn:
        before = conn.execute(select(func.sum(anonymous_requests.c.count)).where(
            anonymous_requests.c.endpoint == "tsa")).scalar_one() or 0
    external = SealingService(
        tnode.db, tnode.pki, tnode.directory, tnode.audit, tnode.clock, node_id=tnode.node_id,
        organisation=tnode.settings.organisation,
        timestamper=choose_timestamper(tsa_url, None),  # type: ignore[arg-type]
    )
    first = external.seal(sample_pdf(), "tanaka", SealKind.PERSONAL,
                          SealPlacement(page=1, box=(400, 100, 434, 134)), actor="tanaka")
    # A second synchronous call runs in a new event loop: the HTTP client must cope.
    second = external.seal(first, "sato", SealKind.PERSONAL, SealPlacement(page=1, box=(300, 100, 334, 134)),
                           actor="sato")
    assert tnode.sealing is not None
    report = tnode.sealing.verify(second)
    assert report.indication == Indication.PASSED
    assert all(s.timestamp_time is not None for s in report.seals)
    with tnode.db.begin() as conn:
        after = conn.execute(select(func.sum(anonymous_requests.c.count)).where(
            anonymous_requests.c.endpoint == "tsa")).scalar_one() or 0
    assert after > before  # the stamps came over HTTP from the endpoint (counted there, as anyone's)
