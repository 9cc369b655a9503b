"""CloudWatch alarm states for the status API, polled in the background and cached."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger("rollguard.http")

ALARM_PREFIX = "rollguard-"
ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
#: how often the alarm poller asks CloudWatch (DescribeAlarms is free, but not unlimited)
ALARM_POLL_SECONDS = 60.0


class AlarmClient(Protocol):
    """The CloudWatch call the poller makes, DescribeAlarms through boto3's paginator (a boto3
    ``cloudwatch`` client satisfies it)."""

    def get_paginator(self, operation_name: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class AlarmState:
    name: str
    state: str
    reason: str
    updated_ms: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "reason": self.reason, "updated_ms": self.updated_ms}


def describe_rollguard_alarms(client: AlarmClient, prefix: str = ALARM_PREFIX) -> list[AlarmState]:
    """Every metric alarm whose name starts with ``prefix``, over every page; may raise."""
    out: list[AlarmState] = []
    for page in client.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix, MaxRecords=100):
        for alarm in page.get("MetricAlarms", []):
            updated = alarm.get("StateUpdatedTimestamp")
            updated_ms = int(updated.timestamp() * 1000) if isinstance(updated, datetime) else None
            out.append(AlarmState(str(alarm.get("AlarmName", "")), str(alarm.get("StateValue", "")),
                                  str(alarm.get("StateReason", "")), updated_ms))
    return sorted(out, key=lambda a: a.name)


@dataclass
class _AlarmCache:
    alarms: list[AlarmState] = field(default_factory=list)
    checked_ms: int | None = None
    error: str | None = None
    error_ms: int | None = None
    failures: int = 0


class AlarmPoller:
    """Caches alarm states: :meth:`poll_once` reads CloudWatch, :meth:`snapshot` never does.

    A failed poll (no credentials, no region, CloudWatch down) is recorded in the snapshot
    (``error``, ``failures``) and the last good states are kept; nothing is raised.
    ``client_factory`` is called lazily, and again after a failure, so a client that could
    not be built at start-up (no region yet) is retried at the next poll.
    """

    def __init__(
        self,
        client_factory: Callable[[], AlarmClient],
        *,
        interval_s: float = ALARM_POLL_SECONDS,
        prefix: str = ALARM_PREFIX,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._factory = client_factory
        self._client: AlarmClient | None = None
        self.interval_s = interval_s
        self.prefix = prefix
        self._now_ms = now_ms
        self._cache = _AlarmCache()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> bool:
        """Read alarm states now; True on success. Never raises (except BaseException like KeyboardInterrupt)."""
        try:
            if self._client is None:
                self._client = self._factory()
            alarms = describe_rollguard_alarms(self._client, self.prefix)
        except Exception as ex:  # noqa: BLE001 - a status page must outlive any AWS problem
            message = f"{type(ex).__name__}: {ex}".replace("\n", " ")[:300]
            with self._lock:
                self._cache.error, self._cache.error_ms = message, self._now_ms()
                self._cache.failures += 1
            self._client = None
            log.debug("alarm poll failed: %s", message)
            return False
        with self._lock:
            self._cache.alarms, self._cache.checked_ms = alarms, self._now_ms()
            self._cache.error = None
        return True

    def snapshot(self) -> dict[str, Any]:
        """``{"alarms": [...], "checked_ms", "error", "error_ms", "failures", "prefix"}``; JSON-able."""
        with self._lock:
            c = self._cache
            return {"prefix": self.prefix, "alarms": [a.as_dict() for a in c.alarms], "checked_ms": c.checked_ms,
                    "error": c.error, "error_ms": c.error_ms, "failures": c.failures}

    def start(self) -> None:
        """Poll now and then every ``interval_s`` from a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="rollguard-alarm-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.poll_once()
        while not self._stop.wait(self.interval_s):
            self.poll_once()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop polling; a poll in flight is left to finish on its daemon thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
