"""G.711 codecs: ITU-T reference values, the whole code space, round-trip error bounds, and Python's audioop."""

from __future__ import annotations

import struct
import warnings

import pytest

from inkless.fax.sip import g711

ALL_SAMPLES = struct.pack("<65536h", *range(-32768, 32768))


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples_of(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(data) // 2}h", data)


def test_mu_law_reference_values() -> None:
    u = g711.codec("PCMU")
    # Zero is 0xFF (and 0x7F is "negative zero"); full scale is 0x80 / 0x00 decoding to ±32124.
    assert u.encode(pcm(0, 32767, -32768, 1000, -1000)) == bytes((0xFF, 0x80, 0x00, 0xCE, 0x4E))
    assert samples_of(u.decode(bytes((0xFF, 0x7F, 0x80, 0x00, 0xCE, 0x4E)))) == (0, 0, 32124, -32124, 988, -988)
    assert u.payload_type == 0 and u.silence_code == 0xFF


def test_a_law_reference_values() -> None:
    a = g711.codec("PCMA")
    # A-law zero is 0xD5 (even bits inverted); full scale 0xAA / 0x2A decode to ±32256.
    assert a.encode(pcm(0, 32767, -32768, 1000, -1000)) == bytes((0xD5, 0xAA, 0x2A, 0xFA, 0x7A))
    assert samples_of(a.decode(bytes((0xD5, 0x55, 0xAA, 0x2A, 0xFA, 0x7A)))) == (8, -8, 32256, -32256, 1008, -1008)
    assert a.payload_type == 8 and a.silence_code == 0xD5


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_round_trip_error_is_within_half_a_quantisation_step(name: str) -> None:
    codec = g711.codec(name)
    back = samples_of(codec.decode(codec.encode(ALL_SAMPLES)))
    clip = 32124 if name == "PCMU" else 32256
    for x, y in zip(range(-32768, 32768), back, strict=True):
        if abs(x) > clip:
            assert abs(y) == clip and (y > 0) == (x > 0)
            continue
        # Segmented (logarithmic) law: the step doubles per segment, so the error is bounded relative
        # to |x| (half a step at a segment's bottom: 1/19.8 for mu-law, 1/32 for A-law), absolute near 0.
        if abs(x) <= 256:
            assert abs(x - y) <= 12, (name, x, y)
        else:
            assert abs(x - y) <= abs(x) / (19.8 if name == "PCMU" else 32), (name, x, y)


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_decoding_then_encoding_gives_the_same_code(name: str) -> None:
    codec = g711.codec(name)
    codes = bytes(range(256))
    again = codec.encode(codec.decode(codes))
    for code, other in zip(codes, again, strict=True):
        if name == "PCMU" and code == 0x7F:
            assert other == 0xFF  # both zeros decode to 0; zero encodes as positive zero
        else:
            assert other == code


def test_tables_agree_with_pythons_audioop_over_the_whole_range() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    u, a = g711.codec("PCMU"), g711.codec("PCMA")
    assert u.encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES, 2)
    assert a.encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES, 2)
    codes = bytes(range(256))
    assert u.decode(codes) == audioop.ulaw2lin(codes, 2)
    assert a.decode(codes) == audioop.alaw2lin(codes, 2)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown G\.711 codec"):
        g711.codec("G729")
    with pytest.raises(ValueError, match="even number"):
        g711.codec("PCMU").encode(b"\x00\x01\x02")
    assert g711.codec("pcma") is g711.codec("PCMA")
