"""Benchmark: sealing and verifying through inkless against bare pyHanko with the same key and TSA.

    .venv/bin/python bench/seal.py [--n 20] [--pages 50]

Creates a demo node (SQLite) in a temporary folder, generates a one-page and a ``--pages``-page
PDF, and then measures, alternating single runs so that both see the same machine state:

* sealing: ``SealingService.seal_async`` (user lookup, key decryption, fresh CRL, vector
  imprint, pyHanko signing with the node TSA, audit entry) against a bare
  ``PdfSigner.async_sign_pdf`` with the same decrypted key, the same timestamper object, the
  same metadata (PAdES, embedded validation data) and the same imprint appearance;
* verification: ``SealingService.verify`` (trust anchors, fresh CRL, report, audit entry)
  against bare ``async_validate_pdf_signature`` with the same validation context.

Prints documents/s for both and the ratio (inkless time / bare pyHanko time; targets ≤ 1.05 for
sealing, ≤ 1.10 for verification), from the median of alternating single runs, both in wall time and
in CPU time of this process. On a shared machine the CPU-time ratio is the steadier one: wall time also
counts other people's processes and the disk's fsync of the audit entry (printed alongside).

Then batch sealing: ``--batch`` (100) documents sealed by ``inkless.seals.batch.seal_batch`` on 1
and on 2 worker processes, against bare pyHanko sealing the same documents one after another in this
process: documents/s of each and the ratio to bare pyHanko.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.stamp import StaticStampStyle

from inkless.app import Node, init_node
from inkless.config import Settings, load_settings
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.seals.imprint import SealKind
from inkless.seals.model import SealPlacement
from inkless.seals.sealing import ImprintPage, imprint_for, imprint_pdf, validation_context

BOX = (400.0, 100.0, 434.0, 134.0)
SIGNER = "sato"


def make_pdf(pages: int) -> bytes:
    """A4 pages of grey text bars, written with pyHanko's writer."""
    writer = PdfFileWriter(init_page_tree=True)
    font = writer.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"), pdf_name("/Subtype"): pdf_name("/Type1"),
        pdf_name("/BaseFont"): pdf_name("/Helvetica"),
    }))
    for number in range(1, pages + 1):
        bars = "\n".join(f"0.35 g 72 {y} 451 9 re f" for y in range(740, 80, -14))
        content = f"BT /F1 18 Tf 72 780 Td (Page {number}) Tj ET\n{bars}\n".encode()
        stream = writer.add_object(generic.StreamObject(stream_data=content))
        resources = generic.DictionaryObject({pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})})
        writer.insert_page(PageObject(contents=stream, media_box=(0, 0, 595, 842), resources=resources))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def bare_signer(node: Node) -> Callable[[bytes], Awaitable[bytes]]:
    """Bare pyHanko with inkless's key, CA, CRL, timestamper and imprint, prepared once."""
    assert node.sealing is not None
    service = node.sealing
    material = service.signer_material(SIGNER, SealKind.PERSONAL)
    user = node.directory.user(SIGNER)
    office = node.directory.office_by_id(user.office_id)
    imprint = imprint_pdf(imprint_for(user, office.name, SealKind.PERSONAL, node.clock.now()))
    signer = material.signer()
    vc_args = ([material.ca], [material.crl])

    async def sign(pdf: bytes) -> bytes:
        meta = signers.PdfSignatureMetadata(
            field_name="bare", md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES,
            location=DEMO_ORGANISATION, docmdp_permissions=MDPPerm.FILL_FORMS, embed_validation_info=True,
            validation_context=validation_context(*vc_args),
        )
        pdf_signer = signers.PdfSigner(
            meta, signer, timestamper=service.timestamper,
            stamp_style=StaticStampStyle(background=ImprintPage(imprint), border_width=0),
            new_field_spec=SigFieldSpec("bare", on_page=0, box=(400, 100, 434, 134)),
        )
        out = io.BytesIO()
        await pdf_signer.async_sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=out)
        return out.getvalue()

    return sign


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(label: str, n: int, inkless: Callable[[], object], bare: Callable[[], object]) -> None:
    """Alternate single runs of both; print docs/s (from the median time) and the ratio of the medians.

    Medians, because the machine may be shared: a burst of someone else's load hits a few runs,
    not the middle of the distribution. Means are printed too.
    """
    inkless(), bare()  # warm-up: imports, caches, the TSA's size-estimation stamp
    t_inkless: list[tuple[float, float]] = []
    t_bare: list[tuple[float, float]] = []
    for _ in range(n):
        t_inkless.append(_timed(inkless))
        t_bare.append(_timed(bare))
    for what, index in (("wall", 0), ("cpu", 1)):
        m_inkless = statistics.median(t[index] for t in t_inkless)
        m_bare = statistics.median(t[index] for t in t_bare)
        mean = sum(t[index] for t in t_inkless) / sum(t[index] for t in t_bare)
        print(f"{label:24s} {what:4s} inkless {1 / m_inkless:6.2f} docs/s   bare pyHanko {1 / m_bare:6.2f} docs/s   "
              f"ratio {m_inkless / m_bare:5.2f} (median)  {mean:5.2f} (mean)")


def audit_commit(node: Node, n: int) -> float:
    """Median wall time of one audit entry in its own transaction (what every seal and verification adds)."""
    from inkless.audit.model import AuditEvent

    times = []
    for _ in range(n):
        start = time.perf_counter()
        with node.db.begin() as conn:
            node.audit.record(conn, AuditEvent(actor="bench", action="seal.verified", object_type="document",
                                               object_id="0" * 64, digests={"document": "0" * 64}, details={}))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def batch(node: Node, settings: Settings, count: int, bare_sign: Callable[[bytes], Awaitable[bytes]],
          loop: asyncio.AbstractEventLoop) -> None:
    """``count`` documents: bare pyHanko one after another, then inkless's batch sealing on 1 and 2 workers."""
    from inkless.seals.batch import BatchItem, SealOrder, seal_batch

    pdf = make_pdf(1)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "in").mkdir()
        for i in range(count):
            (root / "in" / f"doc-{i:03d}.pdf").write_bytes(pdf)
        order = SealOrder(signer=SIGNER, kind=SealKind.PERSONAL, page=1, at=(BOX[0], BOX[1]))
        start = time.perf_counter()
        for source in sorted((root / "in").iterdir()):
            loop.run_until_complete(bare_sign(source.read_bytes()))
        bare = count / (time.perf_counter() - start)
        print(f"batch of {count:3d}            bare pyHanko, one by one   {bare:6.2f} docs/s")
        for workers in (1, 2):
            out = root / f"out-{workers}"
            out.mkdir()
            items = [BatchItem(p, out / p.name) for p in sorted((root / "in").iterdir())]
            start = time.perf_counter()
            results = seal_batch(settings, order, items, actor="bench", workers=workers, node=node)
            rate = count / (time.perf_counter() - start)
            failed = [r for r in results if not r.ok]
            assert not failed, failed[0].error
            print(f"batch of {count:3d}            inkless, {workers} worker(s)       {rate:6.2f} docs/s   "
                  f"ratio to bare {rate / bare:5.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="documents per measurement")
    parser.add_argument("--pages", type=int, default=50, help="pages of the long document")
    parser.add_argument("--batch", type=int, default=100, help="documents of the batch (0: no batch)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        settings = load_settings(data, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION,
            "database_url": f"sqlite:///{data / 'inkless.db'}",
        })
        node = init_node(settings)
        try:
            create_demo(node.directory)
            assert node.sealing is not None
            service = node.sealing
            bare_sign = bare_signer(node)
            material = service.signer_material(SIGNER, SealKind.PERSONAL)
            placement = SealPlacement(page=1, box=BOX)
            loop = asyncio.new_event_loop()
            try:
                for pages in (1, args.pages):
                    pdf = make_pdf(pages)
                    sealed: list[bytes] = []

                    def seal_inkless(pdf: bytes = pdf, sealed: list[bytes] = sealed) -> None:
                        sealed.append(loop.run_until_complete(
                            service.seal_async(pdf, SIGNER, SealKind.PERSONAL, placement, actor="bench")))

                    def seal_bare(pdf: bytes = pdf) -> None:
                        loop.run_until_complete(bare_sign(pdf))

                    measure(f"seal, {pages}-page PDF", args.n, seal_inkless, seal_bare)
                    document = sealed[-1]
                    # Bare pyHanko gets the same trust roots and CRL, in a fresh context per document as inkless
                    # (a reused context caches path and revocation checks).
                    roots = [material.ca]
                    crls = [material.crl]

                    def verify_inkless(document: bytes = document) -> None:
                        service.verify(document, actor="bench")

                    def verify_bare(document: bytes = document, roots: list[Any] = roots,
                                    crls: list[Any] = crls) -> None:
                        reader = PdfFileReader(io.BytesIO(document))
                        for sig in reader.embedded_regular_signatures:
                            vc = validation_context(roots, crls)
                            loop.run_until_complete(async_validate_pdf_signature(
                                sig, signer_validation_context=vc, ts_validation_context=vc))

                    measure(f"verify, {pages}-page PDF", args.n, verify_inkless, verify_bare)
                print(f"one audit entry, committed: {audit_commit(node, args.n) * 1000:.1f} ms (wall)")
                if args.batch:
                    batch(node, settings, args.batch, bare_sign, loop)
            finally:
                loop.close()
        finally:
            node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
