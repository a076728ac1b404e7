"""The seam between the fax service and a telephone line (loopback, spool, sip)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from inkless.fax.model import CallResult

if TYPE_CHECKING:
    from inkless.clock import Clock
    from inkless.config import Settings

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
    """A telephone line carrying audio (or T.38): loopback, spool and sip implement it."""

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

    def hang_up(self) -> None:
        """Drop every outbound call in progress at once; their ``dial`` returns or raises promptly.

        Called when the process stops: the service hands the interrupted jobs back to the queue.
        """
        ...

    def close(self) -> None:
        """Stop answering and release the line (waits for calls in progress to finish)."""
        ...


def open_line(settings: Settings, clock: Clock | None = None) -> FaxLine | None:
    """The line the settings choose (``fax_line``): loopback, spool, sip, or None for "none".

    ``clock`` and the ``timezone`` setting date the header line stamped on outbound pages.
    """
    if settings.fax_line == "loopback":
        from inkless.fax.loopback import LoopbackLine

        return LoopbackLine(
            settings.fax_loopback_socket, settings.fax_loopback_remote,
            ident=settings.fax_ident, max_calls=settings.fax_max_calls, clock=clock, timezone=settings.tz,
        )
    if settings.fax_line == "spool":
        from inkless.fax.spool import SpoolLine

        return SpoolLine(settings.fax_spool_dir, ident=settings.fax_ident, clock=clock, timezone=settings.tz)
    if settings.fax_line == "sip":
        from inkless.fax.sip.line import SipLine

        return SipLine(settings, clock)
    return None
