"""ITU-T G.711 (mu-law PCMU and A-law PCMA) codecs, table driven, on 16-bit little-endian linear PCM.

The tables are built once from the segment algorithm of the ITU-T reference
(the same bit patterns as the Sun reference code that every SIP stack uses);
encoding looks each sample up in a 65,536-entry table and decoding uses
``bytes.translate`` on two 256-entry tables (low and high byte), so a 20 ms
frame costs a few microseconds and no deprecated ``audioop``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final

_BIAS = 0x84
_ULAW_CLIP = 8159
_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)

CODECS: Final = ("PCMU", "PCMA")
# Static RTP payload types (RFC 3551).
PAYLOAD_TYPES: Final = {"PCMU": 0, "PCMA": 8}


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for seg, end in enumerate(ends):
        if value <= end:
            return seg
    return len(ends)


def linear_to_ulaw(sample: int) -> int:
    """One 16-bit linear sample to its mu-law code."""
    value = sample >> 2
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, _ULAW_CLIP) + (_BIAS >> 2)
    seg = _segment(value, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def ulaw_to_linear(code: int) -> int:
    """One mu-law code to its 16-bit linear sample."""
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + _BIAS) << ((code & 0x70) >> 4)
    return _BIAS - t if code & 0x80 else t - _BIAS


def linear_to_alaw(sample: int) -> int:
    """One 16-bit linear sample to its A-law code."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask, value = 0x55, -value - 1
    seg = _segment(value, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    code = seg << 4
    code |= ((value >> 1) if seg < 2 else (value >> seg)) & 0x0F
    return code ^ mask


def alaw_to_linear(code: int) -> int:
    """One A-law code to its 16-bit linear sample."""
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


def _signed(u16: int) -> int:
    return u16 - 0x10000 if u16 & 0x8000 else u16


def _encode_table(encode: Callable[[int], int]) -> bytes:
    return bytes(encode(_signed(u)) for u in range(0x10000))


def _decode_tables(decode: Callable[[int], int]) -> tuple[bytes, bytes]:
    values = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(v & 0xFF for v in values), bytes(v >> 8 for v in values)


class G711Codec:
    """One G.711 law: ``encode`` linear PCM (int16 LE) to codes, ``decode`` codes to linear PCM."""

    def __init__(self, name: str) -> None:
        if name not in CODECS:
            raise ValueError(f"unknown G.711 codec {name!r}; expected PCMU or PCMA")
        self.name = name
        self.payload_type = PAYLOAD_TYPES[name]
        enc, dec = (linear_to_ulaw, ulaw_to_linear) if name == "PCMU" else (linear_to_alaw, alaw_to_linear)
        self._encode = _encode_table(enc)
        self._lo, self._hi = _decode_tables(dec)
        self.silence_code = self._encode[0]

    def encode(self, pcm: bytes) -> bytes:
        """16-bit little-endian linear PCM to one code byte per sample."""
        if len(pcm) % 2:
            raise ValueError("linear PCM must have an even number of bytes")
        view = memoryview(pcm).cast("H")
        if sys.byteorder != "little":  # pragma: no cover - the machines we run on are little-endian
            import array

            swapped = array.array("H", pcm)
            swapped.byteswap()
            return bytes(map(self._encode.__getitem__, swapped))
        return bytes(map(self._encode.__getitem__, view))

    def decode(self, codes: bytes) -> bytes:
        """Code bytes to 16-bit little-endian linear PCM (two bytes per sample)."""
        out = bytearray(2 * len(codes))
        out[0::2] = codes.translate(self._lo)
        out[1::2] = codes.translate(self._hi)
        return bytes(out)


_codecs: dict[str, G711Codec] = {}


def codec(name: str) -> G711Codec:
    """The shared (immutable) codec for ``name`` ("PCMU" or "PCMA"); tables are built on first use."""
    name = name.upper()
    found = _codecs.get(name)
    if found is None:
        found = _codecs[name] = G711Codec(name)
    return found
