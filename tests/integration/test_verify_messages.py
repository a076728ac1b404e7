"""``inkless verify`` and office seals speak in clean findings: no pyHanko traceback, log line or misleading word."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.app import Node
from inkless.seals.imprint import SealKind
from inkless.seals.model import SealPlacement
from tests.helpers.nodes import INKLESS, clean_env
from tests.helpers.seals import demo_node, sample_pdf

SHA256_OID = "0609608648016503040201"  # DER of 2.16.840.1.101.3.4.2.1
BROKEN_OID = "0609608648116503040201"  # 2.16.840.17.101.3.4.2.1: no such algorithm


@pytest.fixture(scope="module")
def vnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with demo_node("sqlite", tmp_path_factory.mktemp("verify-messages")) as node:
        yield node


@pytest.fixture(scope="module")
def sealed(vnode: Node) -> bytes:
    assert vnode.sealing is not None
    return vnode.sealing.seal(sample_pdf(), "tanaka", SealKind.PERSONAL,
                              SealPlacement(page=1, box=(400.0, 100.0, 434.0, 134.0)), actor="tanaka")


def inkless(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INKLESS, *args, "--data", str(node.settings.data_dir)], capture_output=True, text=True,
                          env=clean_env(), check=False, timeout=120)


def _with_broken_digest_oids(pdf: bytes) -> list[bytes]:
    """The PDF once per SHA-256 OID in its signature, that OID replaced by one naming no algorithm."""
    start = pdf.index(b"/Contents <") + len(b"/Contents <")
    end = pdf.index(b">", start)
    contents = pdf[start:end].decode()
    positions = [i for i in range(len(contents)) if contents.startswith(SHA256_OID, i)]
    assert len(positions) >= 3  # the signer's, the timestamp token's, the digest sets
    return [pdf[:start] + (contents[:i] + BROKEN_OID + contents[i + len(SHA256_OID):]).encode() + pdf[end:]
            for i in positions]


def test_a_signature_pyhanko_cannot_process_is_one_finding_not_a_traceback(
    vnode: Node, sealed: bytes, tmp_path: Path
) -> None:
    # Some of these made pyHanko raise AttributeError deep inside (an unknown hash name): a traceback.
    processed = 0
    for n, variant in enumerate(_with_broken_digest_oids(sealed)):
        damaged = tmp_path / f"damaged-{n}.pdf"
        damaged.write_bytes(variant)
        result = inkless(vnode, "verify", str(damaged))
        assert result.stderr == "", (n, result.stderr[-2000:])
        assert result.returncode in (0, 5), (n, result.stdout)  # an OID outside the signed data changes nothing
        if result.returncode == 5:
            lines = result.stdout.splitlines()
            assert lines[0] == "#1 seal-personal-tanaka-1: FAILED / FORMAT_FAILURE", lines
            [reason] = [line for line in lines if line.strip().startswith("reason:")]
            assert "The signature cannot be processed: " in reason
            assert lines[-1].startswith("overall: FAILED / FORMAT_FAILURE — Signature 1")
            processed += 1
    assert processed >= 2


def test_a_hash_failure_does_not_claim_the_signer_is_untrusted(vnode: Node, sealed: bytes, tmp_path: Path) -> None:
    at = sealed.index(b"Request for approval")
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(sealed[:at] + b"X" + sealed[at + 1:])
    result = inkless(vnode, "verify", str(tampered))
    assert result.returncode == 5 and result.stderr == ""
    assert "FAILED / HASH_FAILURE" in result.stdout
    assert "trusted: NO" not in result.stdout
    assert "intact:     NO; trusted: not checked (the signature itself is broken)" in result.stdout


def test_garbage_in_the_signature_is_a_single_error_line(vnode: Node, sealed: bytes, tmp_path: Path) -> None:
    start = sealed.index(b"/Contents <") + len(b"/Contents <")
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(sealed[:start] + b"0" * 200 + sealed[start + 200:])
    result = inkless(vnode, "verify", str(garbage))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: the PDF's signatures cannot be read: ")


def test_the_office_seal_prints_no_pyhanko_log_lines(vnode: Node, tmp_path: Path) -> None:
    document = tmp_path / "稟議書.pdf"
    document.write_bytes(sample_pdf())
    started = inkless(vnode, "route", "start", str(document), "--as", "tanaka", "--step", "sato", "--title", "係長")
    assert started.returncode == 0, started.stderr
    route_id = started.stdout.split("route ", 1)[1].split()[0].strip(":")
    stamped = inkless(vnode, "route", "approve", route_id, "--as", "sato")
    assert stamped.returncode == 0, stamped.stderr
    office = inkless(vnode, "route", "approve", route_id, "--as", "sato")  # the office seal, extended to B-LTA
    assert office.returncode == 0, office.stderr
    assert "office seal" in office.stdout
    assert office.stderr == ""  # was: "Document does not have any document timestamps yet. This may cause …"
    final = tmp_path / "final.pdf"
    assert inkless(vnode, "route", "download", route_id, "--out", str(final)).returncode == 0
    verified = inkless(vnode, "verify", str(final))
    assert verified.returncode == 0 and verified.stderr == ""
