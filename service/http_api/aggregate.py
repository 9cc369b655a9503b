"""One ``/v1/status`` document from the workers' (``rollguard run --workers N``). Pure.

Counters add up (each worker counts its own records and partitions), partitions are the
union, ages take the stalest worker, comparisons come from any worker (each judges from the
shared state location, so they agree), and each worker keeps a section of its own under
``workers``. The window's ``series`` are merged per dimension set: ``samples`` summed, the
rate gauges and Wilson bounds recomputed from those sums (what one window over every
partition gives), and the latency percentiles the largest of the workers' (an upper bound:
the union's quantile is never above its parts' largest); each worker's exact ones are in its
section.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipelines import metrics
from pipelines.window import LATENCY_SAMPLES, SlidingWindow

#: the fields of a worker's section, taken from its own document as they are
WORKER_FIELDS = ("ready", "not_ready_reason", "partitions", "records", "ticks", "last_tick_ms", "state_hold",
                 "consumer_connected", "series")
_SUMMED = ("records", "ticks", "checkpoint_failures", "corrupt_records", "dead_letters_pending")
_SUMMED_MAPS = ("join", "bad_records", "dead_letters", "pending_joins")
_OLDEST = ("last_tick_ms", "last_checkpoint_ms")
_PUBLISHER_NEWEST = ("last_success_ms", "last_error_ms")


def _num(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _add_maps(maps: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        for key, value in (m or {}).items() if isinstance(m, Mapping) else ():
            if _num(value) is not None:
                out[key] = out.get(key, 0) + value
    return out


def merge_publisher(stats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The publishers' counters summed; the newest success and error; every listed rejection."""
    if not stats:
        return {}
    out: dict[str, Any] = {}
    for key in stats[0]:
        values = [s.get(key) for s in stats]
        if key in _PUBLISHER_NEWEST:
            known = [n for v in values if (n := _num(v)) is not None]
            out[key] = max(known) if known else None
        elif key == "rejections":
            out[key] = [r for v in values for r in (v or [])]
        elif all(_num(v) is not None for v in values):
            out[key] = sum(values)
    errors = [s for s in stats if s.get("last_error")]
    newest = max(errors, key=lambda s: _num(s.get("last_error_ms")) or 0, default=None)
    out["last_error"] = newest.get("last_error") if newest else None
    return out


def merge_series(per_worker: Sequence[Sequence[Mapping[str, Any]]], min_samples: float) -> list[dict[str, Any]]:
    """The window's series of every worker merged per dimension set (module docstring)."""
    merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for series in per_worker:
        for s in series:
            dims = s.get("dimensions") or {}
            key = tuple(sorted((str(k), str(v)) for k, v in dims.items()))
            entry = merged.setdefault(key, {"dimensions": dict(dims), "samples": {}, "latency": {}})
            for name, value in (s.get("samples") or {}).items():
                if _num(value) is not None:
                    entry["samples"][name] = entry["samples"].get(name, 0.0) + value
            for name, value in (s.get("gauges") or {}).items():
                if name in metrics.LATENCY_GAUGES and _num(value) is not None:
                    entry["latency"][name] = max(value, entry["latency"].get(name, value))
    out = []
    for entry in merged.values():
        samples = entry["samples"]
        gauges = _rate_gauges({k: v for k, v in samples.items() if k != LATENCY_SAMPLES}, min_samples)
        if samples.get(LATENCY_SAMPLES, 0) >= max(min_samples, 1):
            gauges.update(entry["latency"])
        out.append({"dimensions": entry["dimensions"], "gauges": gauges, "samples": samples})
    return out


def _rate_gauges(sums: Mapping[str, float], min_samples: float) -> dict[str, float]:
    """The window's rate gauges of these sums, computed by the window's own code (one bucket)."""
    window = SlidingWindow(1, 1, min_samples)
    for name, value in sums.items():
        window.add("merged", 0, name, value)
    return window.gauges("merged", 0)


def merge_status(workers: Sequence[Mapping[str, Any]], *, now_ms: int, started_ms: int) -> dict[str, Any]:
    """The parent's document from ``workers``: one dict each with ``worker`` (index), ``pid``,
    ``running``, ``restarts``, ``last_exit``, ``address``, ``error`` and ``status`` (its own
    ``/v1/status``, or None when it could not be read)."""
    docs = [w["status"] for w in workers if isinstance(w.get("status"), Mapping)]
    first = docs[0] if docs else {}
    out: dict[str, Any] = {
        "now_ms": now_ms,
        "started_ms": started_ms,
        "window_seconds": first.get("window_seconds"),
        "min_samples": first.get("min_samples"),
        "partitions": sorted({p for d in docs for p in d.get("partitions") or []}),
        "series": merge_series([d.get("series") or [] for d in docs], float(first.get("min_samples") or 0)),
        "consumer_lag": {k: v for d in docs for k, v in (d.get("consumer_lag") or {}).items()},
        "consumer_connected": all(d.get("consumer_connected") for d in docs) if docs else None,
        "publisher": merge_publisher([d["publisher"] for d in docs if isinstance(d.get("publisher"), Mapping)]),
        "worker_restarts": sum(int(w.get("restarts") or 0) for w in workers),
    }
    for key in _SUMMED:
        out[key] = sum(v for d in docs if (v := _num(d.get(key))) is not None)
    for key in _SUMMED_MAPS:
        out[key] = _add_maps(d.get(key) for d in docs)
    for key in _OLDEST:
        known = [v for d in docs if (v := _num(d.get(key))) is not None]
        out[key] = min(known) if known else 0
    holds = [f"worker {w['worker']}: {w['status']['state_hold']}" for w in workers
             if isinstance(w.get("status"), Mapping) and w["status"].get("state_hold")]
    out["state_hold"] = holds[0] if holds else None
    comparisons = next((d["comparisons"] for d in docs if d.get("comparisons") is not None), None)
    if comparisons is not None:
        out["comparisons"] = comparisons
    out["workers"] = [_section(w) for w in workers]
    return out


def _section(worker: Mapping[str, Any]) -> dict[str, Any]:
    status = worker.get("status")
    doc: Mapping[str, Any] = status if isinstance(status, Mapping) else {}
    section = {k: worker.get(k) for k in ("worker", "pid", "running", "restarts", "last_exit", "address", "error")}
    section.update({k: doc.get(k) for k in WORKER_FIELDS if k in doc})
    return section
