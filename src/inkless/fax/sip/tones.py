"""Fax tone watch on received audio: CNG (1100 Hz), CED (2100 Hz) and the V.21 channel 2 preamble.

Each 20 ms frame (160 samples at 8 kHz) is measured at the tone frequencies
with single-bin DFTs (what a Goertzel filter computes, evaluated here with
precomputed sine/cosine tables so the inner loop runs in C). The frequencies
are multiples of the 50 Hz bin spacing, so a pure tone puts all of its energy
in one bin. A frame "has" a tone when that bin holds most of the frame's
energy and the frame is not near silence; a tone is *heard* when enough
consecutive frames have it (CNG is 0.5 s on, CED 2.6-4 s, the V.21 preamble
1 s of HDLC flags at 300 bit/s shifting between 1650 and 1850 Hz). Speech
spreads its energy over many harmonics and never holds one bin (or the
narrow V.21 band) that long.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from operator import mul

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160

CNG_HZ = 1100
CED_HZ = 2100
V21_MARK_HZ = 1650  # channel 2 (the answering side's and the caller's HDLC in T.30)
V21_SPACE_HZ = 1850
# FSK at 300 bit/s spreads around its two frequencies: the V.21 share is summed over the band's bins
# (bins 50 Hz apart are orthogonal over 160 samples, so their shares add up to at most 1).
V21_BAND = tuple(range(V21_MARK_HZ - 100, V21_SPACE_HZ + 101, 50))

# A frame below this RMS level (≈ -50 dBFS, far under the -43 dBm0 a modem must still hear) is silence.
MIN_RMS = 100.0
TONE_SHARE = 0.6  # of the frame's energy in one tone bin
V21_SHARE = 0.7  # of the frame's energy in the V.21 band (1550-1950 Hz)
# Consecutive 20 ms frames needed.
CNG_FRAMES = 20  # 400 ms of a 500 ms burst
CED_FRAMES = 20
V21_FRAMES = 10  # 200 ms of a 1 s preamble


def _tables(freq: int, n: int) -> tuple[array[float], array[float]]:
    w = 2.0 * math.pi * freq / SAMPLE_RATE
    return (array("d", (math.cos(w * i) for i in range(n))), array("d", (math.sin(w * i) for i in range(n))))


@dataclass(frozen=True)
class ToneLevels:
    """The share of one frame's energy at each watched frequency, and the frame's RMS level."""

    rms: float
    cng: float
    ced: float
    v21: float


class ToneMeter:
    """Measures 160-sample frames at the fax tone frequencies."""

    def __init__(self, n: int = FRAME_SAMPLES) -> None:
        self.n = n
        self._tables = {f: _tables(f, n) for f in (CNG_HZ, CED_HZ, *V21_BAND)}

    def _share(self, samples: array[int], energy: float, freq: int) -> float:
        cos, sin = self._tables[freq]
        re = sum(map(mul, samples, cos))
        im = sum(map(mul, samples, sin))
        return float(2.0 * (re * re + im * im) / (self.n * energy))

    def measure(self, frame: bytes) -> ToneLevels:
        """Levels of one frame of little-endian int16 samples (shorter frames are zero-padded)."""
        samples = array("h", frame[: 2 * self.n])
        if len(samples) < self.n:
            samples.extend([0] * (self.n - len(samples)))
        energy = float(sum(map(mul, samples, samples)))
        rms = math.sqrt(energy / self.n)
        if rms < MIN_RMS:
            return ToneLevels(rms, 0.0, 0.0, 0.0)
        return ToneLevels(
            rms=rms,
            cng=self._share(samples, energy, CNG_HZ),
            ced=self._share(samples, energy, CED_HZ),
            v21=sum(self._share(samples, energy, f) for f in V21_BAND),
        )


class FaxToneDetector:
    """Feeds on received audio frames and remembers which fax tones have been heard."""

    def __init__(self) -> None:
        self._meter = ToneMeter()
        self._runs = {"CNG": 0, "CED": 0, "V21": 0}
        self.heard: set[str] = set()
        self.frames = 0

    def feed(self, frame: bytes) -> None:
        """Look at one 20 ms frame."""
        self.frames += 1
        levels = self._meter.measure(frame)
        for name, present, needed in (
            ("CNG", levels.cng >= TONE_SHARE, CNG_FRAMES),
            ("CED", levels.ced >= TONE_SHARE, CED_FRAMES),
            ("V21", levels.v21 >= V21_SHARE, V21_FRAMES),
        ):
            self._runs[name] = self._runs[name] + 1 if present else 0
            if self._runs[name] >= needed:
                self.heard.add(name)

    @property
    def fax_tone_heard(self) -> bool:
        """True once any fax tone was heard."""
        return bool(self.heard)
