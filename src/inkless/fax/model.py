"""Domain types of the fax engine: pages, call setup and the facts of a finished call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from inkless import timefmt

# Widths a TIFF Class F page may have (ISO A4/B4/A3 at 8 pels/mm).
FAX_WIDTHS = (1728, 2048, 2432)
# Vertical resolutions a fax carries: standard (3.85 lines/mm) and fine (7.7 lines/mm).
STANDARD_DPI = (204, 98)
FINE_DPI = (204, 196)


@dataclass(frozen=True)
class FaxPage:
    """One page of a fax: a single-page TIFF-F (CCITT G4 or G3) and its geometry."""

    image: bytes
    x_dpi: int
    y_dpi: int
    width: int
    height: int


@dataclass(frozen=True)
class CallSetup:
    """What the network tells about a call before it is answered (DID, CID, sub-address)."""

    called_number: str | None = None
    calling_number: str | None = None
    sub_address: str | None = None


@dataclass(frozen=True)
class CallResult:
    """The T.30 facts of a completed or failed fax call, as a transmission report needs them."""

    success: bool
    t30_code: int
    t30_text: str
    pages_transferred: int
    pages_expected: int | None
    remote_ident: str | None  # the far end's TSI (inbound) or CSI (outbound)
    local_ident: str
    calling_number: str | None
    called_number: str | None
    sub_address: str | None
    bit_rate: int
    ecm: bool
    compression: str  # "T.6 MMR", "T.4 2D MR", "T.4 1D MH" ... as negotiated
    bad_rows: int
    duration_s: float  # line time in seconds (audio samples / 8000 on audio lines)
    started_at: datetime
    received_tiff: bytes | None = None  # multi-page TIFF-F of what was received (inbound)
    # The line's own facts (SIP): media "g711" | "t38", the SIP Call-ID, the gateway used,
    # and whether the caller turned out to be a person (no fax tones): a voice call, not an error.
    media: str | None = None
    call_id: str | None = None
    gateway: str | None = None
    voice: bool = False


@dataclass(frozen=True)
class RenderedFax:
    """A document rendered for the line: a multi-page TIFF-F and its page count."""

    tiff: bytes
    pages: int


# The engine's imaging, behind two callables so that the service can be tested without it.
Renderer = Callable[[Sequence[bytes], "CoverPage | None"], RenderedFax]
PdfMaker = Callable[[bytes], bytes]
Ocr = Callable[[bytes], tuple[bytes, bool]]


@dataclass(frozen=True)
class CoverPage:
    """What a cover page says."""

    sender_office: str
    sender_number: str | None
    sender_name: str
    recipient_number: str
    pages: int
    subject: str | None
    sent_at: datetime
    reference: str | None = None
    timezone: tzinfo = timefmt.TOKYO  # the zone the cover page's date is written in
    invitation_url: str | None = None  # the office's intake window: "次回からはオンラインで送れます" and a QR code
