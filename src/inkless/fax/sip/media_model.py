"""What a SIP fax call's media negotiated and shows: T.38 parameters, datagram counters, progress.

The signalling side (SDP, the call, line status) reads these without loading the media engine
(:mod:`inkless.fax.sip.media`, which runs the spandsp terminal in real time).
"""

from __future__ import annotations

from dataclasses import dataclass

from inkless.fax import spandsp as sd
from inkless.fax.sip import rtp, udptl

__all__ = ["MediaCounters", "MediaProgress", "T38Params"]


@dataclass(frozen=True)
class T38Params:
    """What the SDP ``m=image ... udptl t38`` negotiated."""

    version: int = 0
    max_bit_rate: int = 14400
    rate_management: str = "transferredTCF"  # or "localTCF"
    max_buffer: int = 2000
    max_datagram: int = 400
    udp_ec: str = "t38UDPRedundancy"  # or "t38UDPNoEC" (FEC is not offered; its packets are still read)
    redundancy: int = 3  # secondary IFP packets per datagram with t38UDPRedundancy
    fill_bit_removal: bool = False  # T38FaxFillBitRemoval

    @property
    def modems(self) -> int:
        """The spandsp modems that ``T38MaxBitRate`` allows (V.17 needs 14,400, V.29 9,600, else V.27ter)."""
        if self.max_bit_rate >= 14400:
            return sd.T30_SUPPORT_V17 | sd.T30_SUPPORT_V29 | sd.T30_SUPPORT_V27TER
        if self.max_bit_rate >= 9600:
            return sd.T30_SUPPORT_V29 | sd.T30_SUPPORT_V27TER
        return sd.T30_SUPPORT_V27TER


@dataclass
class MediaCounters:
    """Datagrams seen on the session's port, by what became of them."""

    rtp_in: int = 0
    rtp_out: int = 0
    udptl_in: int = 0
    udptl_out: int = 0
    foreign: int = 0  # from an address other than the negotiated remote
    malformed: int = 0  # not RTP / UDPTL, truncated
    oversized: int = 0
    other_payload: int = 0  # RTP of another payload type (telephone-event, CN ...)
    send_errors: int = 0


@dataclass(frozen=True)
class MediaProgress:
    """A snapshot of the call for line status: media, T.30 phase, pages, bit rate, tones heard."""

    media: str  # "g711" | "t38" | "" before media starts
    phase: str  # "A" set-up/tones, "B" negotiation, "C" page transfer, "D" post-page, "E" done
    pages: int  # pages transferred so far (sent or received)
    pages_expected: int | None  # pages in the file being sent (None when receiving)
    bit_rate: int
    tones: tuple[str, ...]
    codec: str | None
    counters: MediaCounters
    playout: rtp.PlayoutStats | None
    udptl: udptl.UdptlStats | None
