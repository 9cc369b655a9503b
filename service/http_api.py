"""The daemon's HTTP API: ``/healthz``, ``/readyz``, ``/v1/status`` and ``/metrics``.

Two halves, kept apart:

- pure rendering (:func:`render_prometheus`, :func:`prometheus_families`,
  :func:`status_document`): plain data in, text or dicts out, unit-tested without a socket;
- the server (:func:`start_server`): a stdlib ``ThreadingHTTPServer`` in a daemon thread,
  a sampler that turns the daemon's record counter into a rate, and an alarm poller
  that caches CloudWatch alarm states so a request never waits on AWS.

Contracts:

- ``/healthz`` answers 200 ``ok`` for as long as the process serves HTTP (liveness);
- ``/readyz`` answers 200 ``ready`` or 503 ``not ready: <one-line reason>``, from
  ``daemon.readiness()`` when the daemon has it, else from ``daemon.ready`` (partitions
  assigned and their state restored);
- ``/v1/status`` is ``daemon.status()`` plus ``alarms`` (the cached alarm states) and
  ``records_per_second``; it is what ``rollguard status`` prints;
- ``/metrics`` is Prometheus text exposition format 0.0.4, rendered from that same status
  dict, so both views always agree.

What it exposes: the probes say only ok/ready and a short reason, and stay open for
orchestrators. ``/v1/status`` and ``/metrics`` carry counters, partition numbers, topic
names, the dimension values of the series (endpoint, variant, model version; clipped to
:data:`MAX_DIMENSION_CHARS`), alarm names and states, and error lines clipped by
:func:`public_text` so a record's contents cannot be read back through them; with a token
(``ROLLGUARD_HTTP_TOKEN`` / ``_FILE``) they need ``Authorization: Bearer <token>``.
Slow clients are bounded: :data:`REQUEST_TIMEOUT_SECONDS` to send a request's headers,
:data:`IDLE_TIMEOUT_SECONDS` of keep-alive idleness, and at most :data:`MAX_CONNECTIONS`
connections at once (the next is answered 503 without a thread).
"""
from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol, cast

log = logging.getLogger("rollguard.http")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
ALARM_PREFIX = "rollguard-"
ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
#: how often the alarm poller asks CloudWatch (DescribeAlarms is free, but not unlimited)
ALARM_POLL_SECONDS = 60.0
#: the records/s figure is the rate over this many seconds
RATE_WINDOW_SECONDS = 60.0
#: how often the sampler reads the record counter (12 samples per rate window)
RATE_SAMPLE_SECONDS = 5.0
#: a connection has this long to send a request line and headers, however it trickles them
REQUEST_TIMEOUT_SECONDS = 5.0
#: an idle keep-alive connection is closed after this long without a new request
IDLE_TIMEOUT_SECONDS = 10.0
#: connections served at once (one thread each); the next one is answered 503 and closed
MAX_CONNECTIONS = 16
#: longest error line /v1/status carries (publisher errors can quote record values)
MAX_TEXT_CHARS = 200
#: longest dimension value /v1/status carries (capture headers have no length limit)
MAX_DIMENSION_CHARS = 256
#: publisher rejections listed in /v1/status, newest last
MAX_REJECTIONS_SHOWN = 10

_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# =========================================================================================
# Prometheus text exposition (pure)


Kind = Literal["counter", "gauge"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One exposition line: a value with its labels (label order is kept)."""

    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: one ``# HELP`` and ``# TYPE`` line, then its samples.

    ``name`` is the full sample name (counters end in ``_total``, as format 0.0.4 writes them).
    """

    name: str
    kind: Kind
    help: str
    samples: tuple[Sample, ...] = ()

    def __post_init__(self) -> None:
        if not _METRIC_NAME_RE.match(self.name):
            raise ValueError(f"metric name {self.name!r} must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        for sample in self.samples:
            for label, _ in sample.labels:
                if not _LABEL_NAME_RE.match(label) or label.startswith("__"):
                    raise ValueError(f"label name {label!r} of {self.name} must match [a-zA-Z_][a-zA-Z0-9_]* "
                                     "and not start with __")


def escape_help(text: str) -> str:
    """HELP text escaping of format 0.0.4: backslash and line feed."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(value: str) -> str:
    """Label value escaping of format 0.0.4: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Go's ParseFloat reads it: integers without a fraction, ±Inf, NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render_families(families: Iterable[Family]) -> str:
    """Exposition text for ``families``; a family without samples still declares HELP and TYPE.

    Raises ValueError when two families share a name (the format allows one block per name).
    """
    lines: list[str] = []
    seen: set[str] = set()
    for fam in families:
        if fam.name in seen:
            raise ValueError(f"metric family {fam.name!r} rendered twice")
        seen.add(fam.name)
        lines.append(f"# HELP {fam.name} {escape_help(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for sample in fam.samples:
            if sample.labels:
                inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sample.labels)
                lines.append(f"{fam.name}{{{inner}}} {format_value(sample.value)}")
            else:
                lines.append(f"{fam.name} {format_value(sample.value)}")
    return "\n".join(lines) + "\n"


def _num(value: Any) -> float | None:
    """A finite-or-not number from status data, or None for anything else (bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _one(name: str, kind: Kind, help_: str, value: Any) -> Family:
    """A family with one unlabelled sample, or none when ``value`` is not a number."""
    v = _num(value)
    return Family(name, kind, help_, () if v is None else (Sample((), v),))


def _labelled(name: str, kind: Kind, help_: str, label: str, values: Mapping[str, Any]) -> Family:
    samples = tuple(
        Sample(((label, str(key)),), v) for key, raw in sorted(values.items()) if (v := _num(raw)) is not None
    )
    return Family(name, kind, help_, samples)


def _seconds(ms: Any) -> float | None:
    v = _num(ms)
    return None if v is None or v <= 0 else v / 1000.0


def _sanitize(name: str) -> str:
    """A status key as a metric-name fragment (anything outside [a-zA-Z0-9_] becomes ``_``)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name).strip("_").lower() or "unnamed"


_JOIN_HELP: dict[str, str] = {
    "captures": "Captures the join accepted.",
    "labels": "Labels the join accepted.",
    "duplicate_captures": "Captures ignored as repeats of one already joined or pending.",
    "repeated_labels": "Labels ignored as identical repeats.",
    "stale_labels": "Labels ignored because a later label of the same inference id is already applied.",
    "corrections": "Labels that replaced an earlier label (counts moved, not added twice).",
    "expired": "Captures whose label never came within label_ttl.",
    "orphan_labels": "Labels whose capture never came within label_wait.",
    "evicted_captures": "Pending captures evicted by the max_pending bound.",
    "evicted_labels": "Pending labels evicted by the max_pending bound.",
}

_DROP_KEYS = {
    "too_old": "dropped_too_old",
    "too_new": "dropped_too_new",
    "invalid": "dropped_invalid",
    "overflow": "dropped_overflow",
    "rejected": "rejected",
}


def prometheus_families(status: Mapping[str, Any]) -> list[Family]:
    """The metric families of a ``/v1/status`` document (see :func:`status_document`).

    Missing keys yield families without samples rather than errors, so an older or partial
    status still renders. Counters restored from checkpoints (join, dead letters) continue
    across restarts; the process-local ones (records, publisher) start at 0.
    """
    pub: Mapping[str, Any] = status.get("publisher") or {}
    fams: list[Family] = [
        _one("rollguard_ready", "gauge", "1 while /readyz says ready (assigned, restored, saving, consuming, publishing).",
             1.0 if status.get("ready") else 0.0),
        _one("rollguard_start_time_seconds", "gauge", "When the daemon started, in epoch seconds.",
             _seconds(status.get("started_ms"))),
        _one("rollguard_partitions_owned", "gauge", "Partitions (of each topic) this instance owns.",
             len(status.get("partitions") or [])),
        _one("rollguard_records_total", "counter", "Records consumed from the captures and labels topics.",
             status.get("records")),
        _one("rollguard_records_per_second", "gauge",
             f"Records consumed per second over the last {int(RATE_WINDOW_SECONDS)} s.",
             status.get("records_per_second")),
        _labelled("rollguard_consumer_lag", "gauge", "Records behind the end of each owned partition.",
                  "topic_partition", status.get("consumer_lag") or {}),
        _labelled("rollguard_pending_joins", "gauge",
                  "Captures held for their label (until label_ttl) and labels waiting for their capture.",
                  "kind", status.get("pending_joins") or {}),
        _labelled("rollguard_bad_records_total", "counter", "Records found bad (bound for the dead-letter topic), by reason.",
                  "reason", status.get("bad_records") or {}),
        _labelled("rollguard_dead_letters_total", "counter",
                  "Dead letters the broker confirmed written (this process), by reason.",
                  "reason", status.get("dead_letters") or {}),
        _one("rollguard_dead_letters_pending", "gauge", "Dead letters handed to the producer, not yet confirmed.",
             status.get("dead_letters_pending")),
        _one("rollguard_corrupt_records_total", "counter",
             "Records the Kafka client could not decode, skipped by offset and dead-lettered.",
             status.get("corrupt_records")),
        _one("rollguard_consumer_connected", "gauge", "1 while the Kafka group coordinator answers heartbeats.",
             None if status.get("consumer_connected") is None else float(bool(status.get("consumer_connected")))),
        _one("rollguard_state_held", "gauge",
             "1 while state cannot be saved: counts and offsets are held, nothing is committed.",
             float(status.get("state_hold") is not None) if "state_hold" in status else None),
    ]
    join: Mapping[str, Any] = status.get("join") or {}
    for key in list(_JOIN_HELP) + sorted(set(join) - set(_JOIN_HELP)):
        fams.append(_one(f"rollguard_join_{_sanitize(key)}_total", "counter",
                         _JOIN_HELP.get(key, f"Join counter {key}."), join.get(key)))
    fams += [
        _one("rollguard_published_datums_total", "counter", "MetricData entries CloudWatch acknowledged.",
             pub.get("sent_datums")),
        _one("rollguard_published_requests_total", "counter", "PutMetricData requests CloudWatch acknowledged.",
             pub.get("sent_requests")),
        _one("rollguard_publish_failures_total", "counter", "PutMetricData calls that failed (every attempt).",
             pub.get("failures")),
        _one("rollguard_publish_retries_total", "counter", "PutMetricData re-attempts after a retryable failure.",
             pub.get("retries")),
        _labelled("rollguard_publish_dropped_datums_total", "counter",
                  "Datums dropped instead of published, by reason.", "reason",
                  {reason: pub.get(key) for reason, key in _DROP_KEYS.items()} if pub else {}),
        _one("rollguard_last_publish_timestamp_seconds", "gauge",
             "When CloudWatch last acknowledged a PutMetricData (absent until the first one).",
             _seconds(pub.get("last_success_ms"))),
        _one("rollguard_buffered_datums", "gauge", "Datums waiting to be published.", pub.get("buffered_datums")),
        _one("rollguard_buffered_batches", "gauge", "Batches waiting to be published.", pub.get("buffered_batches")),
        _one("rollguard_ticks_total", "counter", "Publish ticks run.", status.get("ticks")),
        _one("rollguard_last_tick_timestamp_seconds", "gauge", "When the last tick ran.",
             _seconds(status.get("last_tick_ms"))),
        _one("rollguard_checkpoint_failures_total", "counter", "Checkpoint writes that failed.",
             status.get("checkpoint_failures")),
        _one("rollguard_last_checkpoint_timestamp_seconds", "gauge", "When the last checkpoint was written.",
             _seconds(status.get("last_checkpoint_ms"))),
    ]
    window: list[Sample] = []
    for series in status.get("series") or []:
        dims: Mapping[str, str] = series.get("dimensions") or {}
        base = (("endpoint", dims.get("EndpointName", "")), ("variant", dims.get("VariantName", "")),
                ("model_version", dims.get("ModelVersion", "")))
        for gauge, raw in sorted((series.get("gauges") or {}).items()):
            if (v := _num(raw)) is not None:
                window.append(Sample(base + (("gauge", str(gauge)),), v))
    fams.append(Family("rollguard_window_gauge", "gauge",
                       "The sliding window's gauges (as published to CloudWatch) per endpoint, variant "
                       "and model version; absent below min_samples.", tuple(window)))
    alarms: Mapping[str, Any] = status.get("alarms") or {}
    states: list[Sample] = []
    for alarm in alarms.get("alarms") or []:
        for state in ALARM_STATES:
            states.append(Sample((("alarm", str(alarm.get("name"))), ("state", state)),
                                 1.0 if alarm.get("state") == state else 0.0))
    fams += [
        Family("rollguard_alarm_state", "gauge",
               f"CloudWatch alarms named {ALARM_PREFIX}*: 1 for the current state, 0 for the others.",
               tuple(states)),
        _one("rollguard_alarm_poll_failures_total", "counter", "DescribeAlarms polls that failed.",
             alarms.get("failures")),
        _one("rollguard_alarm_last_poll_timestamp_seconds", "gauge", "When alarm states were last read.",
             _seconds(alarms.get("checked_ms"))),
    ]
    return fams


def render_prometheus(status: Mapping[str, Any]) -> str:
    """``/metrics``: the Prometheus text (format 0.0.4) of a ``/v1/status`` document."""
    return render_families(prometheus_families(status))


# a quoted literal, or an unbroken run, long enough to be record content rather than a name
_LONG_QUOTED_RE = re.compile(r"'[^']{65,}'|\"[^\"]{65,}\"")
_LONG_RUN_RE = re.compile(r"\S{65,}")


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ``...`` marking a cut."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def public_text(text: Any, limit: int = MAX_TEXT_CHARS) -> str | None:
    """An error line fit to serve: one line, long quoted literals and unbroken runs replaced by
    their length, at most ``limit`` characters.

    Publisher errors quote what CloudWatch refused (``dimension 'k'='<value>'``, or the value
    echoed in CloudWatch's own message) and a segment value is record content up to
    ``max_record_bytes``; names and error codes stay readable.
    """
    if text is None:
        return None
    line = " ".join(str(text).splitlines())
    line = _LONG_QUOTED_RE.sub(lambda m: f"{m.group(0)[0]}<{len(m.group(0)) - 2} chars>{m.group(0)[0]}", line)
    line = _LONG_RUN_RE.sub(lambda m: f"<{len(m.group(0))} chars>", line)
    return clip(line, limit)


def _public_series(series: Any) -> Any:
    if not isinstance(series, Mapping) or not isinstance(series.get("dimensions"), Mapping):
        return series
    dims = {str(k): clip(str(v), MAX_DIMENSION_CHARS) for k, v in series["dimensions"].items()}
    return {**series, "dimensions": dims}


def _is_free_text(key: str, value: Any) -> bool:
    return isinstance(value, str) and key.endswith(("error", "reason"))


def _public_publisher(pub: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: public_text(v) if _is_free_text(k, v) else v for k, v in pub.items()}
    if "rejections" in out:
        out["rejections"] = [[list(ids), public_text(message)]
                             for ids, message in list(out["rejections"] or [])[-MAX_REJECTIONS_SHOWN:]]
    return out


def status_document(status: Mapping[str, Any], alarms: Mapping[str, Any], records_per_second: float | None) -> dict[str, Any]:
    """``/v1/status``: the daemon's status plus cached alarm states and the record rate.

    Free text that can carry record contents is bounded here: dimension values are clipped to
    :data:`MAX_DIMENSION_CHARS`; ``*error`` and ``*reason`` strings (the daemon's
    ``not_ready_reason``, the publisher's ``last_error``, the alarm poll's ``error``) go through
    :func:`public_text`; only the last :data:`MAX_REJECTIONS_SHOWN` rejections are listed.
    """
    doc: dict[str, Any] = {k: public_text(v) if _is_free_text(k, v) else v for k, v in status.items()}
    doc.update(records_per_second=records_per_second, alarms=dict(alarms))
    if isinstance(doc.get("series"), list):
        doc["series"] = [_public_series(s) for s in doc["series"]]
    if isinstance(doc.get("publisher"), Mapping):
        doc["publisher"] = _public_publisher(doc["publisher"])
    if doc["alarms"].get("error") is not None:
        doc["alarms"]["error"] = public_text(doc["alarms"]["error"])
    return doc


# =========================================================================================
# the record rate


class RateMeter:
    """The rate of a cumulative counter over the last ``window_s`` seconds, from samples.

    ``sample(t, value)`` with non-decreasing ``t``; :meth:`rate` uses the newest sample and
    the newest one at least ``window_s`` older than it (else the oldest kept), so with
    samples every few seconds it is the rate over the last minute. A counter that went
    down (a restart) starts the history again. Thread-safe.
    """

    def __init__(self, window_s: float = RATE_WINDOW_SECONDS) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def sample(self, t: float, value: float) -> None:
        with self._lock:
            if self._samples and (value < self._samples[-1][1] or t < self._samples[-1][0]):
                self._samples.clear()
            self._samples.append((t, value))
            # keep exactly one sample at or before the window's start, as the baseline
            while len(self._samples) >= 2 and self._samples[1][0] <= t - self.window_s:
                self._samples.popleft()

    def rate(self) -> float | None:
        """Per-second rate, or None before two samples at different times exist."""
        with self._lock:
            if len(self._samples) < 2:
                return None
            (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return (v1 - v0) / (t1 - t0)


# =========================================================================================
# alarm states


class AlarmClient(Protocol):
    """The CloudWatch call the poller makes (a boto3 ``cloudwatch`` client satisfies it)."""

    def describe_alarms(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class AlarmState:
    name: str
    state: str
    reason: str
    updated_ms: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "reason": self.reason, "updated_ms": self.updated_ms}


def describe_rollguard_alarms(client: AlarmClient, prefix: str = ALARM_PREFIX) -> list[AlarmState]:
    """Every metric alarm whose name starts with ``prefix``, following NextToken; may raise."""
    out: list[AlarmState] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"AlarmNamePrefix": prefix, "MaxRecords": 100}
        if token:
            kwargs["NextToken"] = token
        page = client.describe_alarms(**kwargs)
        for alarm in page.get("MetricAlarms", []):
            updated = alarm.get("StateUpdatedTimestamp")
            updated_ms = int(updated.timestamp() * 1000) if isinstance(updated, datetime) else None
            out.append(AlarmState(str(alarm.get("AlarmName", "")), str(alarm.get("StateValue", "")),
                                  str(alarm.get("StateReason", "")), updated_ms))
        token = page.get("NextToken")
        if not token:
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


# =========================================================================================
# the server


class BaseDaemonView(Protocol):
    """What the API needs from any daemon; without ``readiness`` it is ready once ``ready`` is set."""

    ready: threading.Event

    @property
    def stats(self) -> Any: ...  # .records: int, read without the daemon's lock (a plain int)

    def status(self) -> dict[str, Any]: ...


class DaemonView(BaseDaemonView, Protocol):
    """What the API reads from the daemon (service.daemon.Daemon satisfies it)."""

    def readiness(self) -> tuple[bool, str]: ...  # (ok, one-line reason); must not block


NOT_READY_REASON = "waiting for partition assignment and state restore"


def readiness_of(daemon: DaemonView | BaseDaemonView) -> tuple[bool, str]:
    """``daemon.readiness()`` when it has it, else ``daemon.ready``; the reason is one short line.

    Never raises: a failing check is itself a reason not to be ready.
    """
    check = getattr(daemon, "readiness", None)
    if check is None:
        return (True, "ready") if daemon.ready.is_set() else (False, NOT_READY_REASON)
    try:
        ok, reason = check()
    except Exception as ex:  # noqa: BLE001 - a probe answers, it does not crash
        log.debug("readiness check failed", exc_info=True)
        return False, f"readiness check failed ({type(ex).__name__})"
    return bool(ok), public_text(reason) or ("ready" if ok else "no reason given")


class StatusServer:
    """The running API: ``address``/``url`` say where it listens; :meth:`shutdown` stops everything."""

    def __init__(self, httpd: _Server, threads: list[threading.Thread],
                 poller: AlarmPoller, stop: threading.Event) -> None:
        self._httpd = httpd
        self._threads = threads
        self._poller = poller
        self._stop = stop
        host, port = httpd.server_address[:2]
        self.address: tuple[str, int] = (str(host), int(port))

    @property
    def url(self) -> str:
        host = f"[{self.address[0]}]" if ":" in self.address[0] else self.address[0]
        return f"http://{host}:{self.address[1]}"

    @property
    def connections(self) -> int:
        """Connections open now (each holds a thread)."""
        return self._httpd.open_connections()

    def shutdown(self) -> None:
        """Stop serving, close the socket, stop the sampler and poller; idempotent, bounded (~1 s)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._poller.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
        for t in self._threads:
            t.join(1.0)


class _Api:
    """The state behind the handlers: the daemon, the rate meter and the alarm cache."""

    def __init__(self, daemon: DaemonView | BaseDaemonView, meter: RateMeter, poller: AlarmPoller,
                 monotonic: Callable[[], float]) -> None:
        self.daemon, self.meter, self.poller, self.monotonic = daemon, meter, poller, monotonic

    def sample(self) -> None:
        self.meter.sample(self.monotonic(), float(self.daemon.stats.records))

    def document(self) -> dict[str, Any]:
        self.sample()  # a scrape right after a burst sees it
        return status_document(self.daemon.status(), self.poller.snapshot(), self.meter.rate())


_TEXT = "text/plain; charset=utf-8"
_PROTECTED = ("/v1/status", "/metrics")


def _busy_response() -> bytes:
    body = b"busy: too many connections, retry shortly\n"
    head = (f"HTTP/1.1 503 Service Unavailable\r\nServer: rollguard\r\nContent-Type: {_TEXT}\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (constant-time compare)."""
    scheme, _, credential = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode())


def _handler(api: _Api, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "rollguard"
        sys_version = ""  # no Python version in the Server header
        protocol_version = "HTTP/1.1"
        server: _Server
        _served = 0

        def version_string(self) -> str:
            return self.server_version

        def handle_one_request(self) -> None:
            srv = self.server
            if self._served:
                # keep-alive: wait idle_timeout for the next request's first byte (a single read,
                # so no trickle extends it), then the request deadline covers its headers
                self.connection.settimeout(srv.idle_timeout_s)
                try:
                    if not cast(io.BufferedReader, self.rfile).peek(1):
                        self.close_connection = True
                        return
                except OSError:  # TimeoutError included
                    log.debug("%s idle keep-alive connection closed", self.address_string())
                    self.close_connection = True
                    return
            self.connection.settimeout(srv.request_timeout_s)
            srv.arm(self.connection)
            try:
                super().handle_one_request()
            finally:
                srv.disarm(self.connection)
            self._served += 1

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            if not self.server.disarm(self.connection):
                # past its deadline: the socket was shut, and the EOF read as the end of the headers
                self.close_connection = True
                return
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            try:
                if path in _PROTECTED and token is not None and not self._authorized(token, body):
                    return
                if path == "/healthz":
                    self._send(HTTPStatus.OK, _TEXT, b"ok\n", body)
                elif path == "/readyz":
                    ok, reason = readiness_of(api.daemon)
                    if ok:
                        self._send(HTTPStatus.OK, _TEXT, b"ready\n", body)
                    else:
                        self._send(HTTPStatus.SERVICE_UNAVAILABLE, _TEXT, f"not ready: {reason}\n".encode(), body)
                elif path == "/v1/status":
                    doc = json.dumps(api.document(), default=str, sort_keys=True).encode()
                    self._send(HTTPStatus.OK, JSON_CONTENT_TYPE, doc, body)
                elif path == "/metrics":
                    self._send(HTTPStatus.OK, PROMETHEUS_CONTENT_TYPE, render_prometheus(api.document()).encode(), body)
                else:
                    self._send(HTTPStatus.NOT_FOUND, _TEXT,
                               b"not found; try /healthz, /readyz, /v1/status or /metrics\n", body)
            except (ConnectionError, TimeoutError):  # the client went away or stopped reading
                log.debug("%s HTTP %s: client gone", self.address_string(), path)
                self.close_connection = True
            except Exception as ex:  # noqa: BLE001 - one broken request must not take the API down
                log.exception("HTTP %s failed", path)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT,
                           f"internal error: {public_text(f'{type(ex).__name__}: {ex}')}\n".encode(), body)

        def _authorized(self, token: str, body: bool) -> bool:
            """True when the request carries the token; else answers 401 and returns False."""
            header = self.headers.get("Authorization")
            if bearer_matches(header, token):
                return True
            challenge = 'Bearer realm="rollguard"' + (', error="invalid_token"' if header else "")
            self._send(HTTPStatus.UNAUTHORIZED, _TEXT,
                       b"unauthorized: send Authorization: Bearer <ROLLGUARD_HTTP_TOKEN>\n", body,
                       extra=(("WWW-Authenticate", challenge),))
            return False

        def _send(self, code: HTTPStatus, content_type: str, payload: bytes, body: bool,
                  extra: tuple[tuple[str, str], ...] = ()) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that bounds what slow or idle clients can hold.

    Each open connection is tracked with the deadline by which its current request's headers
    must be in; ``service_actions`` (run by ``serve_forever`` at every poll) shuts down the
    sockets past it, which ends their threads' reads. Beyond ``max_connections`` a new
    connection gets a canned 503 from the accept loop itself, no thread started.
    """

    daemon_threads = True  # a slow client never holds up shutdown
    allow_reuse_address = True
    request_queue_size = 64  # the stdlib's 5 drops a burst of connects into 1-3 s SYN retries

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 request_timeout_s: float, idle_timeout_s: float, max_connections: int,
                 monotonic: Callable[[], float]) -> None:
        self.request_timeout_s = request_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._monotonic = monotonic
        self._deadlines: dict[Any, float | None] = {}  # open connection -> header deadline, None while answering
        self._reaped: set[Any] = set()  # shut for missing their deadline, until closed
        self._conn_lock = threading.Lock()
        super().__init__(address, handler)

    def open_connections(self) -> int:
        with self._conn_lock:
            return len(self._deadlines)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            admitted = len(self._deadlines) < self.max_connections
            if admitted:
                self._deadlines[request] = self._monotonic() + self.request_timeout_s
        if not admitted:
            log.debug("%s refused: %d connections open", client_address, self.max_connections)
            self._refuse(request)
            return
        super().process_request(request, client_address)  # on failure the caller runs shutdown_request

    def _refuse(self, request: Any) -> None:
        try:
            request.setblocking(False)  # the accept loop never waits on a client
            try:
                request.recv(65536)  # what already arrived, so closing does not reset the 503 away
            except BlockingIOError:
                pass
            request.sendall(_busy_response())
        except OSError:
            pass
        super().shutdown_request(request)

    def arm(self, conn: Any) -> None:
        with self._conn_lock:
            if conn in self._deadlines:
                self._deadlines[conn] = self._monotonic() + self.request_timeout_s

    def disarm(self, conn: Any) -> bool:
        """No deadline while ``conn``'s request is answered; False if it already missed it."""
        with self._conn_lock:
            if conn in self._deadlines:
                self._deadlines[conn] = None
            return conn not in self._reaped

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:  # forgotten before it is closed, so service_actions never sees a closed socket
            self._deadlines.pop(request, None)
            self._reaped.discard(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        now = self._monotonic()
        with self._conn_lock:
            for conn, deadline in self._deadlines.items():
                if deadline is not None and deadline <= now:
                    self._deadlines[conn] = None
                    self._reaped.add(conn)
                    try:
                        conn.shutdown(socket.SHUT_RDWR)  # the handler's read returns at once
                    except OSError:
                        pass
                    log.debug("connection cut: no complete request within %s s", self.request_timeout_s)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _client_factory(alarm_client: AlarmClient | Callable[[], AlarmClient] | None, settings: Any) -> Callable[[], AlarmClient]:
    if alarm_client is None:
        from service import aws

        return lambda: aws.client("cloudwatch", settings)
    if hasattr(alarm_client, "describe_alarms"):
        client: AlarmClient = alarm_client
        return lambda: client
    return alarm_client


def start_server(
    daemon: DaemonView | BaseDaemonView,
    *,
    addr: str | None = None,
    alarm_client: AlarmClient | Callable[[], AlarmClient] | None = None,
    alarm_interval_s: float = ALARM_POLL_SECONDS,
    sample_interval_s: float = RATE_SAMPLE_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
    token: str | None = None,
    request_timeout_s: float = REQUEST_TIMEOUT_SECONDS,
    idle_timeout_s: float = IDLE_TIMEOUT_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> StatusServer:
    """Serve the API for ``daemon`` on ``addr`` (default ``daemon.settings.http_addr``) and return at once.

    Port 0 picks a free port; the bound address is logged at INFO as
    ``http listening on HOST:PORT`` and available as ``.address``. ``alarm_client`` is a
    CloudWatch client or a factory of one (default: ``service.aws.client("cloudwatch",
    daemon.settings)``). ``token`` (default: ``daemon.settings.http_bearer_token()``, if the
    settings have one) makes ``/v1/status`` and ``/metrics`` require it as a bearer token.
    ``monotonic`` also times the request deadlines. Raises ``SystemExit`` with one line when
    the address cannot be bound, so ``rollguard run`` stops with a clear message instead of a
    traceback.
    """
    if token == "":
        raise ValueError("token must not be empty (None for no token)")
    if request_timeout_s <= 0 or idle_timeout_s <= 0 or max_connections < 1:
        raise ValueError(f"need request_timeout_s > 0, idle_timeout_s > 0 and max_connections >= 1, got "
                         f"{request_timeout_s}, {idle_timeout_s} and {max_connections}")
    settings: Any = getattr(daemon, "settings", None)
    addr = addr or str(settings.http_addr)
    if token is None and hasattr(settings, "http_bearer_token"):
        token = settings.http_bearer_token()
    host, _, port_text = addr.rpartition(":")
    host = host.strip("[]")
    poller = AlarmPoller(_client_factory(alarm_client, settings), interval_s=alarm_interval_s)
    api = _Api(daemon, RateMeter(), poller, monotonic)
    try:
        server_class = _Server6 if ":" in host else _Server
        httpd = server_class((host, int(port_text)), _handler(api, token), request_timeout_s=request_timeout_s,
                             idle_timeout_s=idle_timeout_s, max_connections=max_connections, monotonic=monotonic)
    except OSError as ex:  # bound before any thread starts, so a bad address leaves nothing behind
        raise SystemExit(f"rollguard: cannot serve HTTP on {addr} (ROLLGUARD_HTTP_ADDR): {ex.strerror or ex}") from ex
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(sample_interval_s):
            try:
                api.sample()
            except Exception:  # noqa: BLE001 - never let the sampler die
                log.debug("record-rate sample failed", exc_info=True)

    api.sample()
    serve = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                             name="rollguard-http", daemon=True)
    sample = threading.Thread(target=sampler, name="rollguard-http-sampler", daemon=True)
    serve.start()
    sample.start()
    poller.start()
    server = StatusServer(httpd, [serve, sample], poller, stop)
    log.info("http listening on %s:%d", *server.address)
    if token is not None:
        log.info("http: /v1/status and /metrics require the bearer token")
    elif not _is_loopback(server.address[0]):
        log.warning("http on %s without ROLLGUARD_HTTP_TOKEN: /v1/status and /metrics are open to anyone "
                    "who can reach this address", addr)
    return server

