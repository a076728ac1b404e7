"""Sealing with real pyHanko, checked by independent tools: pdfsig (poppler/NSS), the pyhanko CLI, pdfium."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from inkless.app import Node
from inkless.db import tables as t
from inkless.directory.demo import DemoSample
from inkless.errors import NotFoundError, PolicyError, SealError, ValidationError
from inkless.seals.imprint import SealKind
from inkless.seals.model import Indication, PadesLevel, SealPlacement
from tests.helpers.pki import ca_pem
from tests.helpers.seals import demo_node, nss_db_trusting, red_pixels, sample_pdf

PYHANKO = Path(sys.executable).parent / "pyhanko"
BOX = (400.0, 100.0, 434.0, 134.0)


@pytest.fixture(scope="module")
def snode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with demo_node("sqlite", tmp_path_factory.mktemp("seal-node")) as node:
        yield node


@pytest.fixture(scope="module")
def sealed(snode: Node) -> bytes:
    """One page sealed by tanaka's personal seal (認印)."""
    assert snode.sealing is not None
    return snode.sealing.seal(sample_pdf(), "tanaka", SealKind.PERSONAL, SealPlacement(page=1, box=BOX),
                              actor="tanaka", reason="確認")


def test_seal_is_recorded_and_verifies_on_both_backends(demo: DemoSample, node: Node) -> None:
    assert node.sealing is not None
    pdf = sample_pdf()
    out = node.sealing.seal(pdf, "sato", SealKind.DATE, SealPlacement(page=1, box=(300, 100, 347, 147)),
                            actor="sato")
    assert out.startswith(pdf)  # an incremental update: the original bytes are untouched
    report = node.sealing.verify(out)
    assert report.indication == Indication.PASSED
    (seal,) = report.seals
    assert (seal.signer_name, seal.office, seal.organisation) == ("佐藤 一郎", "民事局", "法務省")
    assert seal.pades_level == PadesLevel.B_LT and seal.timestamp_time is not None
    with node.db.begin() as conn:
        actions = [r.action for r in conn.execute(select(t.audit_entries.c.action)).all()]
    assert "seal.applied" in actions and "tsa.stamped" in actions and "seal.verified" in actions


def test_pdfsig_accepts_the_seal_and_trusts_the_node_ca(snode: Node, sealed: bytes, tmp_path: Path) -> None:
    if shutil.which("certutil") is None:
        pytest.fail("certutil (Debian libnss3-tools) is needed: run scripts/install-system-deps")
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    nss = nss_db_trusting(ca_pem(snode, tmp_path), tmp_path / "nss")
    out = subprocess.run(["pdfsig", "-nssdir", nss, str(path)], capture_output=True, text=True, check=True).stdout
    assert "ETSI.CAdES.detached" in out
    assert "Signature is Valid" in out
    assert "Certificate is Trusted" in out
    assert "田中 花子" in out


def test_pyhanko_cli_validates_with_the_node_ca(snode: Node, sealed: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    # The node is not serving its CRL URL here: an offline verifier uses --soft-revocation-check.
    result = subprocess.run([str(PYHANKO), "sign", "validate", "--trust", str(ca_pem(snode, tmp_path)),
                             "--trust-replace", "--soft-revocation-check", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INTACT:TRUSTED" in result.stdout


def test_the_imprint_is_red_and_inside_the_box(sealed: bytes) -> None:
    inside, outside = red_pixels(sealed, 1, BOX)
    assert inside > 100
    assert outside == 0


def test_every_seal_is_an_incremental_update_and_earlier_seals_stay_valid(snode: Node, sealed: bytes) -> None:
    assert snode.sealing is not None
    second = snode.sealing.seal(sealed, "sato", SealKind.PERSONAL, SealPlacement(page=1, box=(300, 100, 334, 134)),
                                actor="sato")
    third = snode.sealing.seal(second, "sato", SealKind.OFFICE, SealPlacement(page=1, box=(200, 100, 260, 160)),
                               actor="sato", certify=True)
    assert third.startswith(second) and second.startswith(sealed)
    report = snode.sealing.verify(third)
    assert [s.indication for s in report.seals] == [Indication.PASSED] * 3
    assert [s.signer_name for s in report.seals] == ["田中 花子", "佐藤 一郎", "民事局"]
    assert report.seals[2].certification and "locks" in report.seals[2].certification
    lta = snode.sealing.extend_to_lta(third)
    report = snode.sealing.verify(lta)
    assert report.indication == Indication.PASSED
    assert [s.pades_level for s in report.seals if s.kind == "seal"] == [PadesLevel.B_LTA] * 3
    assert report.seals[-1].kind == "document-timestamp"
    for box in ((400, 100, 434, 134), (300, 100, 334, 134), (200, 100, 260, 160)):
        assert red_pixels(lta, 1, box)[0] > 100


def test_certify_on_an_unsealed_document_makes_a_certification_signature(snode: Node) -> None:
    assert snode.sealing is not None
    certified = snode.sealing.seal(sample_pdf(), "yamada", SealKind.OFFICE,
                                   SealPlacement(page=1, box=(200, 100, 260, 160)), actor="yamada", certify=True)
    report = snode.sealing.verify(certified)
    assert report.indication == Indication.PASSED
    assert report.seals[0].certification is not None and "certifies" in report.seals[0].certification


def test_closing_seal_into_an_unlocked_field_of_a_sealed_document_is_refused(snode: Node, sealed: bytes) -> None:
    # Locking an existing field after the first seal would break the earlier seals: refuse instead.
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    assert snode.sealing is not None
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    append_signature_field(writer, SigFieldSpec("later", on_page=0, box=(200, 100, 260, 160)))
    out = io.BytesIO()
    writer.write(out)
    with_field = out.getvalue()
    with pytest.raises(SealError, match="no lock"):
        snode.sealing.seal(with_field, "sato", SealKind.OFFICE, SealPlacement(page=1, field_name="later"),
                           actor="sato", certify=True)
    assert snode.sealing.verify(with_field).seals[0].indication == Indication.PASSED


def test_a_clerk_cannot_use_the_office_seal(snode: Node) -> None:
    assert snode.sealing is not None
    with pytest.raises(PolicyError, match="office seal"):
        snode.sealing.seal(sample_pdf(), "tanaka", SealKind.OFFICE, SealPlacement(page=1, box=(200, 100, 260, 160)),
                           actor="tanaka")


def test_bad_input_is_refused_and_nothing_is_recorded(snode: Node, sealed: bytes) -> None:
    assert snode.sealing is not None
    with snode.db.begin() as conn:
        before = conn.execute(select(t.audit_entries.c.idx)).all()
    pdf = sample_pdf()
    cases: list[tuple[bytes, SealPlacement | None, str]] = [
        (b"hello, not a PDF", SealPlacement(page=1, box=BOX), "not a PDF"),
        (b"%PDF-1.7\ngarbage", SealPlacement(page=1, box=BOX), "cannot be read"),
        (pdf, SealPlacement(page=2, box=BOX), "no page 2"),
        (pdf, SealPlacement(page=1, box=(500, 800, 700, 900)), "outside page 1"),
        (pdf, SealPlacement(page=1, field_name="nope"), "no signature field named"),
        (sealed, SealPlacement(page=1, field_name="seal-personal-tanaka-1"), "already sealed"),
    ]
    for data, placement, message in cases:
        with pytest.raises(ValidationError, match=message):
            snode.sealing.seal(data, "tanaka", SealKind.PERSONAL, placement, actor="tanaka")  # type: ignore[arg-type]
    for kwargs in ({"page": 0, "box": BOX}, {"page": 1}, {"page": 1, "box": (10, 10, 5, 20)},
                   {"page": 1, "box": BOX, "field_name": "x"}):
        with pytest.raises(ValidationError):
            SealPlacement(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="no such user"):
        snode.sealing.seal(pdf, "tanaka2", SealKind.PERSONAL, SealPlacement(page=1, box=BOX), actor="x")
    with snode.db.begin() as conn:
        after = conn.execute(select(t.audit_entries.c.idx)).all()
    assert after == before


def test_sync_seal_inside_an_event_loop_is_refused(snode: Node) -> None:
    import asyncio

    assert snode.sealing is not None
    service = snode.sealing

    async def call() -> None:
        service.seal(sample_pdf(), "tanaka", SealKind.PERSONAL, SealPlacement(page=1, box=BOX), actor="tanaka")

    with pytest.raises(SealError, match="_async method"):
        asyncio.run(call())


# A worker's first job is often an envelope, a route's seal comes later, in the same process.
_DELIVER_THEN_SEAL = """
import datetime, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from inkless.app import build_node
from inkless.config import load_settings
from inkless.delivery.envelope import sign
from inkless.seals.imprint import SealKind
from inkless.seals.model import SealPlacement

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "first envelope")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256()))
sign(b"an envelope", key, cert, [])  # builds CMS attributes before pyHanko was ever imported
node = build_node(load_settings(Path(sys.argv[1])))
pdf = Path(sys.argv[2]).read_bytes()
sealed = node.sealing.seal(pdf, "tanaka", SealKind.PERSONAL, SealPlacement(page=1, box=(400, 100, 434, 134)),
                           actor="tanaka")
print(node.sealing.verify(sealed).indication.value)
"""


def test_a_process_that_delivered_first_still_seals(tmp_path: Path) -> None:
    folder = tmp_path / "node"
    with demo_node("sqlite", folder):
        pass
    pdf = tmp_path / "request.pdf"
    pdf.write_bytes(sample_pdf())
    done = subprocess.run([sys.executable, "-c", _DELIVER_THEN_SEAL, str(folder), str(pdf)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == Indication.PASSED.value
