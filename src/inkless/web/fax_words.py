"""Fax results in plain words: what a T.30 result code and the line's answer mean to a clerk.

The pages say "送信速度 14.4kbps・誤り訂正あり" and "相手のFAXが応答しませんでした", keeping the T.30
code in a detail line for whoever reads the log; the codes are spandsp's ``T30_ERR_*`` values.
"""

from __future__ import annotations

from inkless.fax.line import BUSY, NO_ANSWER


def N_(message: str) -> str:
    """Mark a message for extraction (as ``inkless.web.render.N_``, which imports this module)."""
    return message


# spandsp T30_ERR_* ranges: 1-4 timers, 5-8 training and negotiation, 9-12 capabilities, 49 call dropped.
_BY_CODE: tuple[tuple[range, str], ...] = (
    (range(0, 1), N_("Sent and confirmed by the receiving machine.")),
    (range(1, 5), N_("The other machine did not respond in time.")),
    (range(5, 9), N_("The two machines could not agree on how to transmit.")),
    (range(9, 13), N_("The other machine cannot receive this kind of document.")),
    (range(49, 50), N_("The call was cut off during the transmission.")),
)
FAILED = N_("The transmission failed.")


def fax_result(code: int | None, text: str | None) -> str:
    """The message id of the plain sentence for a call's or job's T.30 ``code`` and line ``text``."""
    if text == BUSY:
        return N_("The line was busy.")
    if text == NO_ANSWER:
        return N_("Nobody answered.")
    if text and text.startswith("only ") and "pages were confirmed" in text:
        return N_("Not every page was confirmed by the receiving machine.")
    if code is None:
        return ""
    if code < 0:
        return N_("The call did not reach a fax machine.")
    return next((message for codes, message in _BY_CODE if code in codes), FAILED)


def speed_kbps(bit_rate: int | None) -> str:
    """``14400`` → ``14.4`` (kbps), as fax machines print it."""
    return f"{(bit_rate or 0) / 1000:g}"
