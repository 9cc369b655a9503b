"""``/metrics``: the ``/v1/status`` document as Prometheus metric families, through
prometheus_client's custom-collector API, rendered by its text exposition (format 0.0.4).

Counter families are named without ``_total``: prometheus_client adds it to the exposed name
(``rollguard_records`` is exposed as ``rollguard_records_total``). Missing keys yield families
without samples rather than errors, so an older or partial status still renders. Counters
restored from checkpoints (join, dead letters) continue across restarts; the process-local
ones (records, publisher) start at 0.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from pipelines import metrics
from service.http_api.alarm_states import ALARM_PREFIX, ALARM_STATES
from service.http_api.rate_meter import RATE_WINDOW_SECONDS

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

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
    "implicit_labels": "Captures counted as their endpoint's implicit label (ROLLGUARD_EXPIRY_LABELS).",
    "implicit_corrections": "Implicit labels a real label then corrected.",
}

_DROP_KEYS = {
    "too_old": "dropped_too_old",
    "too_new": "dropped_too_new",
    "invalid": "dropped_invalid",
    "overflow": "dropped_overflow",
    "rejected": "rejected",
}


def _num(value: Any) -> float | None:
    """A finite-or-not number from status data, or None for anything else (bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _seconds(ms: Any) -> float | None:
    v = _num(ms)
    return None if v is None or v <= 0 else v / 1000.0


def _sanitize(name: str) -> str:
    """A status key as a metric-name fragment (anything outside [a-zA-Z0-9_] becomes ``_``)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name).strip("_").lower() or "unnamed"


def _gauge(name: str, help_: str, value: Any) -> GaugeMetricFamily:
    """A family with one unlabelled sample, or none when ``value`` is not a number."""
    return GaugeMetricFamily(name, help_, value=_num(value))


def _counter(name: str, help_: str, value: Any) -> CounterMetricFamily:
    """As :func:`_gauge`; ``name`` without ``_total``."""
    return CounterMetricFamily(name, help_, value=_num(value))


def _by(family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[str, Any]) -> Metric:
    """``family`` (with one label) given a sample per numeric value, in key order."""
    for key, raw in sorted(values.items()):
        if (v := _num(raw)) is not None:
            family.add_metric([str(key)], v)
    return family


def families(status: Mapping[str, Any]) -> Iterator[Metric]:
    """The metric families of a ``/v1/status`` document (service.http_api.document)."""
    pub: Mapping[str, Any] = status.get("publisher") or {}
    yield _gauge("rollguard_ready",
                 "1 while /readyz says ready (assigned, restored, saving, consuming, publishing).",
                 1.0 if status.get("ready") else 0.0)
    yield _gauge("rollguard_start_time_seconds", "When the daemon started, in epoch seconds.",
                 _seconds(status.get("started_ms")))
    yield _gauge("rollguard_partitions_owned", "Partitions (of each topic) this instance owns.",
                 len(status.get("partitions") or []))
    yield _counter("rollguard_records", "Records consumed from the captures and labels topics.", status.get("records"))
    yield _gauge("rollguard_records_per_second",
                 f"Records consumed per second over the last {int(RATE_WINDOW_SECONDS)} s.",
                 status.get("records_per_second"))
    yield _by(GaugeMetricFamily("rollguard_consumer_lag", "Records behind the end of each owned partition.",
                                labels=["topic_partition"]), status.get("consumer_lag") or {})
    yield _by(GaugeMetricFamily("rollguard_pending_joins",
                                "Captures held for their label (until label_ttl) and labels waiting for their capture.",
                                labels=["kind"]), status.get("pending_joins") or {})
    yield _by(CounterMetricFamily("rollguard_bad_records",
                                  "Records found bad (bound for the dead-letter topic), by reason.",
                                  labels=["reason"]), status.get("bad_records") or {})
    yield _by(CounterMetricFamily("rollguard_dead_letters",
                                  "Dead letters the broker confirmed written (this process), by reason.",
                                  labels=["reason"]), status.get("dead_letters") or {})
    yield _gauge("rollguard_dead_letters_pending", "Dead letters handed to the producer, not yet confirmed.",
                 status.get("dead_letters_pending"))
    yield _counter("rollguard_corrupt_records",
                   "Records the Kafka client could not decode, skipped by offset and dead-lettered.",
                   status.get("corrupt_records"))
    yield _gauge("rollguard_consumer_connected", "1 while the Kafka group coordinator answers heartbeats.",
                 None if status.get("consumer_connected") is None else float(bool(status.get("consumer_connected"))))
    yield _gauge("rollguard_state_held",
                 "1 while state cannot be saved: counts and offsets are held, nothing is committed.",
                 float(status.get("state_hold") is not None) if "state_hold" in status else None)
    join: Mapping[str, Any] = status.get("join") or {}
    for key in list(_JOIN_HELP) + sorted(set(join) - set(_JOIN_HELP)):
        yield _counter(f"rollguard_join_{_sanitize(key)}", _JOIN_HELP.get(key, f"Join counter {key}."), join.get(key))
    yield _counter("rollguard_published_datums", "MetricData entries CloudWatch acknowledged.", pub.get("sent_datums"))
    yield _counter("rollguard_published_requests", "PutMetricData requests CloudWatch acknowledged.",
                   pub.get("sent_requests"))
    yield _counter("rollguard_publish_failures", "PutMetricData calls that failed (every attempt).", pub.get("failures"))
    yield _counter("rollguard_publish_retries", "PutMetricData re-attempts after a retryable failure.",
                   pub.get("retries"))
    yield _by(CounterMetricFamily("rollguard_publish_dropped_datums", "Datums dropped instead of published, by reason.",
                                  labels=["reason"]),
              {reason: pub.get(key) for reason, key in _DROP_KEYS.items()} if pub else {})
    yield _gauge("rollguard_last_publish_timestamp_seconds",
                 "When CloudWatch last acknowledged a PutMetricData (absent until the first one).",
                 _seconds(pub.get("last_success_ms")))
    yield _gauge("rollguard_buffered_datums", "Datums waiting to be published.", pub.get("buffered_datums"))
    yield _gauge("rollguard_buffered_batches", "Batches waiting to be published.", pub.get("buffered_batches"))
    yield _counter("rollguard_ticks", "Publish ticks run.", status.get("ticks"))
    yield _gauge("rollguard_last_tick_timestamp_seconds", "When the last tick ran.", _seconds(status.get("last_tick_ms")))
    yield _counter("rollguard_checkpoint_failures", "Checkpoint writes that failed.", status.get("checkpoint_failures"))
    yield _gauge("rollguard_last_checkpoint_timestamp_seconds", "When the last checkpoint was written.",
                 _seconds(status.get("last_checkpoint_ms")))
    yield from _state_families(status.get("state") or {})
    window = GaugeMetricFamily("rollguard_window_gauge",
                               "The sliding window's gauges (as published to CloudWatch) per endpoint, variant "
                               "and model version; absent below min_samples.",
                               labels=["endpoint", "variant", "model_version", "gauge"])
    for series in status.get("series") or []:
        dims: Mapping[str, str] = series.get("dimensions") or {}
        base = [dims.get(metrics.ENDPOINT_NAME, ""), dims.get(metrics.VARIANT_NAME, ""),
                dims.get(metrics.MODEL_VERSION, "")]
        for gauge, raw in sorted((series.get("gauges") or {}).items()):
            if (v := _num(raw)) is not None:
                window.add_metric([*base, str(gauge)], v)
    yield window
    alarms: Mapping[str, Any] = status.get("alarms") or {}
    states = GaugeMetricFamily("rollguard_alarm_state",
                               f"CloudWatch alarms named {ALARM_PREFIX}*: 1 for the current state, 0 for the others.",
                               labels=["alarm", "state"])
    for alarm in alarms.get("alarms") or []:
        for state in ALARM_STATES:
            states.add_metric([str(alarm.get("name")), state], 1.0 if alarm.get("state") == state else 0.0)
    yield states
    yield _counter("rollguard_alarm_poll_failures", "DescribeAlarms polls that failed.", alarms.get("failures"))
    yield _gauge("rollguard_alarm_last_poll_timestamp_seconds", "When alarm states were last read.",
                 _seconds(alarms.get("checked_ms")))
    if isinstance(status.get("workers"), list):
        yield from _worker_families(status["workers"])


def _worker_families(workers: list[Any]) -> Iterator[Metric]:
    """`rollguard run --workers N`: the families above are the workers' sums; these are per worker."""
    sections = [w for w in workers if isinstance(w, Mapping)]
    yield _gauge("rollguard_workers", "Worker processes this supervisor runs.", len(sections))
    families_by_worker = (
        (CounterMetricFamily("rollguard_worker_restarts", "Times the supervisor restarted this worker after it "
                             "exited.", labels=["worker"]), "restarts"),
        (GaugeMetricFamily("rollguard_worker_up", "1 while this worker's process runs.", labels=["worker"]), "running"),
        (GaugeMetricFamily("rollguard_worker_ready", "1 while this worker's /readyz says ready.", labels=["worker"]),
         "ready"),
        (CounterMetricFamily("rollguard_worker_records", "Records this worker's process consumed.", labels=["worker"]),
         "records"),
        (GaugeMetricFamily("rollguard_worker_partitions_owned", "Partitions (of each topic) this worker owns.",
                           labels=["worker"]), "partitions"),
    )
    for family, key in families_by_worker:
        for w in sections:
            raw = w.get(key)
            value = float(len(raw)) if isinstance(raw, list) else float(bool(raw)) if isinstance(raw, bool) \
                else _num(raw) if raw is not None else (0.0 if key in ("running", "ready") else None)
            if value is not None:
                family.add_metric([str(w.get("worker"))], value)
        yield family


def _state_families(state: Mapping[str, Any]) -> Iterator[Metric]:
    """Where the pending joins live (service/state/): restores in progress, shipping."""
    restoring: Mapping[str, Any] = state.get("restoring") or {}
    last: Mapping[str, Any] = state.get("last_restore") or {}
    yield _gauge("rollguard_restoring_partitions", "Partitions being restored from the state location now.",
                 len(restoring) if state else None)
    yield _by(GaugeMetricFamily("rollguard_restore_bytes", "Bytes of each partition restoring now.",
                                labels=["partition"]), {p: r.get("total_bytes") for p, r in restoring.items()})
    yield _by(GaugeMetricFamily("rollguard_restore_done_bytes", "Bytes fetched and checked so far, per partition restoring.",
                                labels=["partition"]), {p: r.get("done_bytes") for p, r in restoring.items()})
    yield _gauge("rollguard_last_restore_bytes", "Size of the last partition restored by this process.", last.get("bytes"))
    yield _gauge("rollguard_last_restore_seconds", "How long the last restore took.", last.get("seconds"))
    yield _gauge("rollguard_state_shipped_bytes", "Store file bytes the owned partitions' stores uploaded since they opened.",
                 state.get("shipped_bytes"))
    yield _gauge("rollguard_state_front_entries", "Pending-join changes held in memory since the last checkpoint.",
                 state.get("front_entries"))
    yield _gauge("rollguard_state_last_commit_seconds",
                 "The longest background checkpoint (write, ship, checkpoint file) of an owned partition, last tick.",
                 state.get("last_commit_seconds"))


class StatusCollector(Collector):
    """A custom collector over one ``/v1/status`` document."""

    def __init__(self, status: Mapping[str, Any]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        return families(self._status)


def render_prometheus(status: Mapping[str, Any]) -> str:
    """``/metrics``: the Prometheus text (format 0.0.4) of a ``/v1/status`` document.

    The collector goes on a private registry, never prometheus_client's global one, so nothing
    else registered in the process (nor a second daemon in it) shows up here.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    return generate_latest(registry).decode()
