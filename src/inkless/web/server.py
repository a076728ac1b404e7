"""``inkless serve``: the web server and the background workers in one process."""

from __future__ import annotations

import logging
import signal
import threading

import uvicorn

from inkless.app import build_node, configure_logging
from inkless.config import Settings
from inkless.web.app import create_app

log = logging.getLogger("inkless.server")

# How long shutdown waits for a background task to finish its current step.
WORKER_JOIN_SECONDS = 30.0


def run_server(settings: Settings) -> None:
    """Serve the node until SIGTERM or SIGINT, then stop the workers and close the database."""
    configure_logging(settings)
    node = build_node(settings)
    stop = threading.Event()
    worker: threading.Thread | None = None
    metrics_server = None
    try:
        app = create_app(node)
        from inkless.metrics.openmetrics import start_listener

        # Unauthenticated OpenMetrics on its own address (metrics_listen), for a Prometheus beside the node.
        metrics_server = start_listener(node)
        if settings.workers:
            from inkless.workers import run_forever

            worker = threading.Thread(
                target=run_forever, args=(node, stop), name="inkless-workers", daemon=True
            )
            worker.start()
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            proxy_headers=False,
            # Beyond this many connections uvicorn answers 503 at once (bodies are bounded by BodyGuard).
            limit_concurrency=settings.max_connections,
            server_header=False,
            access_log=settings.log_level.upper() == "DEBUG",
        )
        server = uvicorn.Server(config)
        print(
            f"inkless node {settings.node_id} serving on http://{_host(settings.host)}:{settings.port}/"
            f" (public URL {settings.base_url})",
            flush=True,
        )
        # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the handler that was
        # installed before it; for SIGTERM that handler must not kill the process before the workers stop.
        signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
        server.run()
    finally:
        stop.set()
        if metrics_server is not None:
            from inkless.metrics.openmetrics import stop_listener

            stop_listener(metrics_server)
        if worker is not None:
            worker.join(WORKER_JOIN_SECONDS)
            if worker.is_alive():
                log.warning("background workers did not stop within %.0f s", WORKER_JOIN_SECONDS)
        node.close()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
