"""The UDP port of one SIP fax call's media (RTP, then UDPTL on the same port after a switch to T.38)."""

from __future__ import annotations

import contextlib
import errno
import random
import socket

from inkless.errors import FaxError


class MediaPort:
    """One UDP socket for a call's media: RTP first, UDPTL on the same port after a switch to T.38."""

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self.sock = sock
        self.host = host
        self.port = port
        self.family = sock.family

    @classmethod
    def allocate(cls, host: str, port_range: tuple[int, int]) -> MediaPort:
        """Bind an even port (RTP convention; RTCP would be the odd one) in ``port_range`` inclusive."""
        low, high = port_range
        if low < 1 or high > 65535 or low > high:
            raise FaxError(f"RTP port range {low}-{high} is not a range of UDP ports")
        evens = list(range(low + (low % 2), high + 1, 2))
        if not evens:
            raise FaxError(f"RTP port range {low}-{high} has no even port")
        start = random.randrange(len(evens))  # noqa: S311 - spreading calls over the range, not security
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for port in evens[start:] + evens[:start]:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise FaxError(f"cannot bind a media port on {host}: {exc.strerror}") from None
            sock.setblocking(False)
            return cls(sock, host, port)
        raise FaxError(f"no free media port in {low}-{high} on {host}: every port is in use")

    def close(self) -> None:
        """Close the socket (idempotent)."""
        with contextlib.suppress(OSError):
            self.sock.close()


def resolve(remote: tuple[str, int], family: int) -> tuple[str, int]:
    """``remote`` as the (address, port) that ``recvfrom`` reports for it (names resolved once, here)."""
    host, port = remote
    if not 0 < int(port) < 65536:
        raise FaxError(f"media address {host}:{port} has no valid port")
    try:
        info = socket.getaddrinfo(host, int(port), family, socket.SOCK_DGRAM)
    except OSError:
        raise FaxError(f"media address {host}:{port} cannot be resolved") from None
    address = info[0][4]
    return str(address[0]), int(address[1])
