"""The seam between the fax service and a telephone line.

The interface knows no driver: each line driver (loopback, spool, sip) registers a factory under the
name the ``fax_line`` setting uses, when its module is imported; the node's fax station imports the
drivers and opens the configured one.
"""

from __future__ import annotations

from collections.abc import Callable
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


LineFactory = Callable[["Settings", "Clock | None"], FaxLine]
_drivers: dict[str, LineFactory] = {}


def register_line(name: str, factory: LineFactory) -> None:
    """Make ``fax_line = name`` open a line made by ``factory(settings, clock)``."""
    _drivers[name] = factory


def open_line(settings: Settings, clock: Clock | None = None) -> FaxLine | None:
    """The line the settings choose (``fax_line``), or None for "none".

    ``clock`` and the ``timezone`` setting date the header line stamped on outbound pages. The driver
    must have registered itself (its module imported); otherwise this is a configuration error.
    """
    if settings.fax_line == "none":
        return None
    factory = _drivers.get(settings.fax_line)
    if factory is None:
        from inkless.errors import ConfigurationError

        raise ConfigurationError(f"fax_line {settings.fax_line!r}: no line driver of that name is loaded")
    return factory(settings, clock)
