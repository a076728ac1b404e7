"""The suite runs with the usual ports taken, so that no test can silently depend on one of them."""

from __future__ import annotations

import socket

from tests.helpers.nodes import refused_port
from tests.helpers.usual_ports import USUAL_TCP_PORTS


def test_the_usual_ports_are_held_by_another_program_during_the_run(usual_ports_taken: list[int]) -> None:
    assert 8080 in usual_ports_taken and 5060 in usual_ports_taken
    for port in USUAL_TCP_PORTS:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # something answers there: a test that used the port would talk to it


def test_the_refused_port_refuses() -> None:
    try:
        socket.create_connection(("127.0.0.1", refused_port()), timeout=5).close()
    except ConnectionRefusedError:
        return
    raise AssertionError("a connection to the refused port was accepted")
