"""The parent's view of its workers, served by the parent's HTTP API (service.http_api.server)
on ROLLGUARD_HTTP_ADDR: ``/readyz`` is ready only when every worker is (the reason names the
worker), ``/v1/status`` and ``/metrics`` merge the workers' documents
(service.http_api.aggregate).

A poller reads each worker's ``/v1/status`` from its loopback API every ``interval_s``
(readiness and the record count come from that cache, so a probe never waits on a worker);
``status()`` reads them afresh.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from service.http_api.aggregate import merge_status
from service.settings import Settings
from service.status import fetch_status, status_url
from service.workers.supervisor import Supervisor

log = logging.getLogger("rollguard.workers")

#: how often the parent reads its workers' status
POLL_SECONDS = 2.0
#: a worker whose status could not be read for this long is not ready
STALE_SECONDS = 15.0
FETCH_TIMEOUT_S = 5.0


@dataclass
class _Seen:
    doc: dict[str, Any] | None = None
    at: float = 0.0  # monotonic time of the last good read
    error: str | None = None


@dataclass
class _Stats:
    records: int = 0


class WorkersView:
    """Satisfies service.http_api.server.DaemonView for the parent (no daemon of its own)."""

    def __init__(self, settings: Settings, supervisor: Supervisor, *,
                 fetch: Callable[..., dict[str, Any]] = fetch_status, interval_s: float = POLL_SECONDS,
                 stale_s: float = STALE_SECONDS, monotonic: Callable[[], float] = time.monotonic,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self._fetch, self.interval_s, self.stale_s = fetch, interval_s, stale_s
        self._monotonic, self._now_ms = monotonic, now_ms
        self._token = settings.http_bearer_token()
        self._seen: dict[int, _Seen] = {w.index: _Seen() for w in supervisor.workers}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=min(8, len(supervisor.workers)), thread_name_prefix="rollguard-view")
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.stats = _Stats()
        self.started_ms = now_ms()

    def start(self) -> None:
        threading.Thread(target=self._run, name="rollguard-workers-view", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the view must outlive any one bad read
                log.debug("reading the workers' status failed", exc_info=True)

    def refresh(self) -> None:
        """Read every worker's /v1/status now (in parallel, bounded by the fetch timeout)."""
        slots = self.supervisor.snapshot()
        futures = {s["worker"]: self._pool.submit(self._read, s["address"]) for s in slots if s["address"]}
        now = self._monotonic()
        with self._lock:
            for s in slots:
                seen = self._seen[s["worker"]]
                if not s["running"]:
                    seen.doc, seen.error = None, "not running"
                    continue
                future = futures.get(s["worker"])
                if future is None:
                    seen.doc, seen.error = None, "starting"
                    continue
                try:
                    seen.doc, seen.at, seen.error = future.result(), now, None
                except Exception as ex:  # noqa: BLE001 - counted as not ready, never raised
                    seen.error = f"status API: {type(ex).__name__}: {ex}".splitlines()[0]
            self.stats.records = sum(int(s.doc.get("records") or 0) for s in self._seen.values() if s.doc)
        if self.readiness()[0]:
            self.ready.set()
        else:
            self.ready.clear()

    def _read(self, address: str) -> dict[str, Any]:
        return self._fetch(status_url(address), FETCH_TIMEOUT_S, self._token)

    def readiness(self) -> tuple[bool, str]:
        """Ready when every worker is; else the first that is not, by number, and why."""
        now = self._monotonic()
        with self._lock:
            for slot in self.supervisor.snapshot():
                seen = self._seen[slot["worker"]]
                which = f"worker {slot['worker']}"
                if not slot["running"]:
                    exit_text = f" (exit code {slot['last_exit']})" if slot["last_exit"] is not None else ""
                    return False, f"{which} is not running{exit_text}, restart {slot['restarts'] + 1} pending"
                if seen.doc is None or now - seen.at > self.stale_s:
                    return False, f"{which}: {seen.error or 'starting'}"
                if not seen.doc.get("ready"):
                    return False, f"{which}: {seen.doc.get('not_ready_reason') or 'not ready'}"
        return True, "ready"

    def status(self) -> dict[str, Any]:
        """The merged document (the parent's server adds alarms and the record rate)."""
        self.refresh()
        with self._lock:
            workers = [{**slot, "status": self._seen[slot["worker"]].doc, "error": self._seen[slot["worker"]].error}
                       for slot in self.supervisor.snapshot()]
        doc = merge_status(workers, now_ms=self._now_ms(), started_ms=self.started_ms)
        ready, why = self.readiness()
        doc.update(ready=ready, not_ready_reason=None if ready else why, workers_configured=len(workers))
        return doc
