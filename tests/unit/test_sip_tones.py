"""The fax tone watch on generated audio: CNG, CED and V.21 are heard; speech, noise and short blips are not."""

from __future__ import annotations

import math
import random
import struct

from inkless.fax.sip.tones import FaxToneDetector, ToneMeter

RATE = 8000


def to_frames(samples: list[float]) -> list[bytes]:
    ints = [max(-32768, min(32767, int(s))) for s in samples]
    ints += [0] * (-len(ints) % 160)
    return [struct.pack("<160h", *ints[i:i + 160]) for i in range(0, len(ints), 160)]


def tone(freq: float, seconds: float, amplitude: float = 6000.0, offset: int = 0) -> list[float]:
    return [amplitude * math.sin(2 * math.pi * freq * (offset + i) / RATE) for i in range(int(seconds * RATE))]


def silence(seconds: float) -> list[float]:
    return [0.0] * int(seconds * RATE)


def v21_flags(seconds: float, amplitude: float = 5000.0) -> list[float]:
    """V.21 channel 2 FSK (mark 1650 Hz, space 1850 Hz) at 300 bit/s carrying HDLC flags 0x7E."""
    bits = [int(b) for b in "01111110"] * int(seconds * 300 / 8 + 1)
    out, phase = [], 0.0
    for i in range(int(seconds * RATE)):
        freq = 1650.0 if bits[i * 300 // RATE] else 1850.0
        phase += 2 * math.pi * freq / RATE
        out.append(amplitude * math.sin(phase))
    return out


def vowel_like(seconds: float, seed: int) -> list[float]:
    """Voiced speech stand-in: a gliding pitch with many harmonics shaped by moving formants, plus pauses."""
    rng = random.Random(seed)
    out: list[float] = []
    phase = 0.0
    t = 0
    while len(out) < seconds * RATE:
        syllable = int(rng.uniform(0.12, 0.35) * RATE)
        f0 = rng.uniform(90, 220)
        formants = (rng.uniform(300, 900), rng.uniform(900, 2500))
        for n in range(syllable):
            pitch = f0 * (1 + 0.15 * math.sin(2 * math.pi * 3 * n / RATE))
            phase += 2 * math.pi * pitch / RATE
            value = 0.0
            for h in range(1, int(3400 / pitch)):
                f = h * pitch
                weight = sum(1.0 / (1 + ((f - fm) / 120) ** 2) for fm in formants)
                value += weight * math.sin(h * phase)
            out.append(2500 * value + rng.gauss(0, 150))
            t += 1
        out += silence(rng.uniform(0.05, 0.2))
    return out


def heard(samples: list[float]) -> set[str]:
    detector = FaxToneDetector()
    for frame in to_frames(samples):
        detector.feed(frame)
    return detector.heard


def test_meter_puts_a_pure_tone_in_its_bin() -> None:
    levels = ToneMeter().measure(to_frames(tone(1100, 0.02))[0])
    assert levels.cng > 0.99 and levels.ced < 0.01 and levels.v21 < 0.01
    assert ToneMeter().measure(bytes(320)).cng == 0.0  # silence is not a tone


def test_cng_cadence_is_heard() -> None:
    cng = (tone(1100, 0.5) + silence(3.0)) * 2
    assert heard(cng) == {"CNG"}


def test_cng_a_little_off_frequency_and_quiet_is_still_heard() -> None:
    assert heard(tone(1090, 0.5, amplitude=300)) == {"CNG"}  # about -40 dBm0, 10 Hz off


def test_ced_and_the_v21_preamble_are_heard() -> None:
    assert heard(tone(2100, 3.0)) == {"CED"}
    assert heard(v21_flags(1.0)) == {"V21"}


def test_a_short_blip_is_not_cng() -> None:
    assert heard(tone(1100, 0.2) + silence(1.0) + tone(1100, 0.2)) == set()


def test_speech_like_audio_noise_and_silence_are_not_fax_tones() -> None:
    for seed in range(2):
        assert heard(vowel_like(4.0, seed)) == set()
    rng = random.Random(1)
    assert heard([rng.gauss(0, 3000) for _ in range(RATE * 5)]) == set()
    assert heard(silence(5.0)) == set()
    assert heard(tone(440, 3.0) + tone(1400, 3.0)) == set()  # dial-tone-like and other pure tones
