"""Background work of federation: refresh the signed office directories of pinned peers."""

from __future__ import annotations

import logging

from inkless.app import Node
from inkless.directory.peers import PeerService, RefreshResult
from inkless.workers import PeriodicTask, register

log = logging.getLogger("inkless.federation")


def refresh_directories(node: Node) -> list[RefreshResult]:
    """Fetch every pinned peer's office directory; failures are recorded on the peer, not raised."""
    if not isinstance(node.peers, PeerService):
        return []
    results = node.peers.refresh(actor="system")
    for result in results:
        if not result.ok:
            log.warning("directory of %s not refreshed: %s", result.node_id, result.error)
        elif result.changed:
            log.info("directory of %s updated: %d offices", result.node_id, result.offices)
    return results


REFRESH_TASK = register(
    PeriodicTask(
        name="federation.refresh-directories",
        interval=lambda node: float(node.settings.directory_refresh_seconds),
        run=refresh_directories,
    )
)
