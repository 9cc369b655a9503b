"""The parent's wiring for `rollguard run --workers N`: the topic check, the supervisor, and
the HTTP API over the workers on ROLLGUARD_HTTP_ADDR."""
from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from service.settings import Settings
from service.workers.supervisor import Spawn, Supervisor, spawn_process
from service.workers.view import WorkersView

log = logging.getLogger("rollguard.workers")


def serve_workers(settings: Settings, stop: threading.Event, *, count: int, log_level: str = "INFO",
                  started: Callable[[Any], None] | None = None, spawn: Spawn | None = None) -> int:
    """Run ``count`` workers until ``stop`` is set, then drain them; the exit code (Supervisor.run)."""
    from service.http_api.server import start_server
    from service.wiring import check_topics

    check_topics(settings)  # once, so a wrong topic is one line rather than one per worker
    supervisor = Supervisor(count, spawn=spawn or spawn_process(log_level))
    view = WorkersView(settings, supervisor)
    http = start_server(view)
    if started is not None:
        started(view)
    log.info("supervising %d workers in group %r", count, settings.group_id)
    view.start()
    try:
        code = supervisor.run(stop)
    finally:
        view.stop()
        http.shutdown()
    if supervisor.failure is not None:
        print(supervisor.failure[1], file=sys.stderr, flush=True)
    return code
