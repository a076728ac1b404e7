"""The seam between the fax service and a telephone line (loopback, spool; SIP/RTP later)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from inkless.fax.model import CallResult

# FaxError messages that dial() raises for call outcomes where no fax session took place;
# the service retries on these (HylaFAX's tries / interval / kill time).
BUSY = "busy"
NO_ANSWER = "no answer"

DEFAULT_DIAL_TIMEOUT_S = 600.0


class IncomingCallHandler(Protocol):
    """Called once per finished inbound call (successful or not), from a line's worker thread."""

    def __call__(self, result: CallResult) -> None: ...


@runtime_checkable
class FaxLine(Protocol):
    """A telephone line carrying audio (or T.38). A SIP/RTP driver will implement it too."""

    name: str

    def dial(
        self,
        number: str,
        tiff: bytes,
        *,
        ident: str,
        header: str | None,
        ecm: bool = True,
        timeout_s: float = DEFAULT_DIAL_TIMEOUT_S,
    ) -> CallResult:
        """Send the multi-page TIFF-F ``tiff`` to ``number``; ``header`` is stamped atop each page.

        Returns the CallResult of the fax session (``success`` only when T.30 phase E ended
        OK and all pages went through). Raises ``FaxError("busy")`` / ``FaxError("no answer")``
        when no fax session took place, and FaxError for a bad document.
        """
        ...

    def listen(self, handler: IncomingCallHandler) -> None:
        """Start answering inbound calls in background threads; each result goes to ``handler``."""
        ...

    def close(self) -> None:
        """Stop answering and release the line (waits for calls in progress to finish)."""
        ...
