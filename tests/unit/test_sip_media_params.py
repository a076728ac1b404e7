"""What the SDP's T.38 attributes turn into for spandsp."""

from __future__ import annotations

from inkless.fax import spandsp as sd
from inkless.fax.sip.media_model import T38Params


def test_max_bit_rate_limits_the_modems() -> None:
    assert T38Params().modems == sd.T30_SUPPORT_V17 | sd.T30_SUPPORT_V29 | sd.T30_SUPPORT_V27TER
    assert T38Params(max_bit_rate=9600).modems == sd.T30_SUPPORT_V29 | sd.T30_SUPPORT_V27TER
    assert T38Params(max_bit_rate=4800).modems == sd.T30_SUPPORT_V27TER
