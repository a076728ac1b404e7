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

Prints documents/s for both and the ratio (inkless time / bare pyHanko time; target < 1.10),
from the median of alternating single runs.
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
from inkless.config import load_settings
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


def measure(label: str, n: int, inkless: Callable[[], object], bare: Callable[[], object]) -> None:
    """Alternate single runs of both; print docs/s (from the median time) and the ratio of the medians.

    Medians, because the machine may be shared: a burst of someone else's load hits a few runs,
    not the middle of the distribution. Means are printed too.
    """
    inkless(), bare()  # warm-up: imports, caches, the TSA's size-estimation stamp
    t_inkless: list[float] = []
    t_bare: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        inkless()
        t_inkless.append(time.perf_counter() - start)
        start = time.perf_counter()
        bare()
        t_bare.append(time.perf_counter() - start)
    m_inkless, m_bare = statistics.median(t_inkless), statistics.median(t_bare)
    print(f"{label:24s} inkless {1 / m_inkless:6.2f} docs/s   bare pyHanko {1 / m_bare:6.2f} docs/s   "
          f"ratio {m_inkless / m_bare:5.2f} (median)  {sum(t_inkless) / sum(t_bare):5.2f} (mean)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="documents per measurement")
    parser.add_argument("--pages", type=int, default=50, help="pages of the long document")
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
            finally:
                loop.close()
        finally:
            node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
