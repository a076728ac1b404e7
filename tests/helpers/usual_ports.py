"""Hold the usual service ports during a test run, answering like an unrelated program would."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

# inkless's default port and the ports of the services a node talks to (HTTP alternatives, SIP).
USUAL_TCP_PORTS = (8080, 8000, 8081, 8443, 5060, 5061, 9)
USUAL_UDP_PORTS = (5060,)
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 27\r\nConnection: close\r\n\r\n"
          b"an unrelated program's page")


def _serve(server: socket.socket, stop: threading.Event) -> None:
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        with conn, contextlib.suppress(OSError):
            conn.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                conn.recv(65536)
            conn.sendall(ANSWER)


def _answer_udp(server: socket.socket, stop: threading.Event) -> None:
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            _data, peer = server.recvfrom(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        with contextlib.suppress(OSError):
            server.sendto(b"SIP/2.0 503 Service Unavailable\r\n\r\n", peer)


@contextlib.contextmanager
def occupy_usual_ports() -> Iterator[list[int]]:
    """Listen on every usual port that is free; yields the ports now taken (by us or already by others)."""
    stop = threading.Event()
    sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []
    for port, kind in [(p, socket.SOCK_STREAM) for p in USUAL_TCP_PORTS] + [(p, socket.SOCK_DGRAM)
                                                                          for p in USUAL_UDP_PORTS]:
        sock = socket.socket(socket.AF_INET, kind)
        # Every test worker holds the ports itself (SO_REUSEPORT), so they stay taken for each worker's
        # whole run, whichever worker finishes first.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:  # another program holds it already: the condition we want anyway
            sock.close()
            continue
        if kind == socket.SOCK_STREAM:
            sock.listen(16)
            target = _serve
        else:
            target = _answer_udp
        sockets.append(sock)
        thread = threading.Thread(target=target, args=(sock, stop), name=f"usual-port-{port}", daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield sorted(set(USUAL_TCP_PORTS) | set(USUAL_UDP_PORTS))
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
        for sock in sockets:
            sock.close()
