"""The running daemon's live view (`rollguard status`): ``/v1/status`` read from the daemon's
HTTP API (service.http_api) and rendered for people.

:func:`render_status` is the pure half: a status document in, text out; ages are measured
against the document's own ``now_ms`` so the caller's clock does not matter.
"""
from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from pipelines import metrics
from pipelines.comparison.report import render_plain
from pipelines.window import LATENCY_SAMPLES

DEFAULT_TIMEOUT_S = 5.0
#: rows of each comparison's table in the status view (`rollguard gate` prints them all)
COMPARISON_ROWS = 12

# the rates the table shows, in this order (pipelines.metrics.RATES defines them)
_TABLE_RATES = ("precision", "recall", "f1", "label_coverage", "error_rate", "shadow_agreement")
_LABEL_WIDTH = 18
#: the latency gauge whose absence means "below min samples"
_SLOWEST = max(metrics.LATENCY_GAUGES, key=metrics.LATENCY_GAUGES.__getitem__)


# -- formatting helpers (pure) ------------------------------------------------------------


def fmt_count(value: Any) -> str:
    """A count with thousands separators; fractional counts keep one decimal."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def fmt_rate(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:.4f}" if abs(value) < 0.1 and value != 0 else f"{value:.3f}"


def fmt_ms(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_age(then_ms: Any, now_ms: Any) -> str:
    """``"42 s ago"``, ``"3 min ago"``, ``"2.5 h ago"``; ``"never"`` for a missing time."""
    if not isinstance(then_ms, (int, float)) or not isinstance(now_ms, (int, float)) or then_ms <= 0:
        return "never"
    seconds = max(0.0, (now_ms - then_ms) / 1000.0)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} d ago"


def fmt_time(ms: Any) -> str:
    if not isinstance(ms, (int, float)) or ms <= 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000.0, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"


def _partitions(parts: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    if not parts:
        return "none"
    ranges: list[str] = []
    start = prev = parts[0]
    for p in list(parts[1:]) + [None]:
        if p is not None and p == prev + 1:
            prev = p
            continue
        ranges.append(str(start) if start == prev else f"{start}-{prev}")
        if p is not None:
            start = prev = p
    return ", ".join(ranges)


def _row(label: str, text: str) -> str:
    return f"  {label:<{_LABEL_WIDTH}}{text}"


# -- the table ----------------------------------------------------------------------------


def render_series(series: Mapping[str, Any], min_samples: Any) -> list[str]:
    """One endpoint/variant/model-version block: rates with sample sizes, latency, errors."""
    dims: Mapping[str, str] = series.get("dimensions") or {}
    gauges: Mapping[str, Any] = series.get("gauges") or {}
    samples: Mapping[str, Any] = series.get("samples") or {}
    version = dims.get(metrics.MODEL_VERSION)
    title = f"{dims.get(metrics.ENDPOINT_NAME, '?')} / {dims.get(metrics.VARIANT_NAME, '?')} / "
    title += f"model version {version}" if version else "all model versions"
    lines = [title]
    sums = {cid: float(samples.get(name, 0.0) or 0.0) for cid, name in metrics.WINDOW_COUNTER_IDS.items()}
    for rate in (metrics.RATES[name] for name in _TABLE_RATES):
        n = metrics.sample(rate, sums)
        value = gauges.get(rate.gauge)
        text = f"{fmt_rate(value):>7}  n={fmt_count(n)} {rate.sample_noun}"
        if rate.lower_bound is not None and gauges.get(rate.lower_bound) is not None:
            text += f", 95 % lower bound {fmt_rate(gauges[rate.lower_bound])}"
        if rate.name == "label_coverage":
            text += f", {fmt_count(samples.get(metrics.LABELED, 0))} labeled"
        if rate.name == "error_rate":
            text += f", {fmt_count(samples.get(metrics.ERRORS, 0))} errors"
        if value is None and n > 0:
            text += f" (below min samples {min_samples})"
        lines.append(_row(rate.label, text))
    n_latency = samples.get(LATENCY_SAMPLES, 0)
    percentiles = "  ".join(f"p{pct:g} {fmt_ms(gauges.get(name))}" for name, pct in metrics.LATENCY_GAUGES.items())
    text = f"{percentiles}  n={fmt_count(n_latency)}"
    if gauges.get(_SLOWEST) is None and (n_latency or 0) > 0:
        text += f" (below min samples {min_samples})"
    lines.append(_row("latency (ms)", text))
    return lines


def _series_key(series: Mapping[str, Any]) -> tuple[str, str, str]:
    dims = series.get("dimensions") or {}
    return (dims.get(metrics.ENDPOINT_NAME, ""), dims.get(metrics.VARIANT_NAME, ""), dims.get(metrics.MODEL_VERSION, ""))


def render_alarms(alarms: Mapping[str, Any], now_ms: Any) -> list[str]:
    """The alarm section: when states were read, any poll error, then one line per alarm."""
    items = alarms.get("alarms") or []
    checked = alarms.get("checked_ms")
    head = f"{len(items)} named {alarms.get('prefix', 'rollguard-')}*, checked {fmt_age(checked, now_ms)}"
    if not alarms:
        head = "unknown (this daemon does not report alarm states)"
    lines = [_row("alarms", head).rstrip()]
    if alarms.get("error"):
        lines.append(_row("", f"last poll failed {fmt_age(alarms.get('error_ms'), now_ms)}: {alarms['error']}"))
    if items:
        width = max(len(str(a.get("name", ""))) for a in items)
        order = {"ALARM": 0, "INSUFFICIENT_DATA": 1, "OK": 2}
        for a in sorted(items, key=lambda a: (order.get(a.get("state", ""), 3), a.get("name", ""))):
            reason = str(a.get("reason") or "")
            if len(reason) > 100:
                reason = reason[:97] + "..."
            since = fmt_age(a.get("updated_ms"), now_ms).replace("never", "-")
            lines.append(f"    {a.get('state', '?'):<17} {a.get('name', '?'):<{width}}  since {since:<12} {reason}".rstrip())
    return lines


def render_comparisons(items: Sequence[Any], limit: int | None = COMPARISON_ROWS) -> list[str]:
    """The comparison section: each comparison's state on one line, then its table (``limit`` rows)
    and the partitions its evidence came from."""
    items = [c for c in items if isinstance(c, Mapping)]
    if not items:
        return []
    states = ", ".join(f"{c.get('name', '?')} {c.get('state', '?')}" for c in items)
    lines = [_row("comparisons", states), ""]
    for c in items:
        lines += render_plain(c, limit=limit).rstrip("\n").splitlines()
        evidence = c.get("evidence")
        if isinstance(evidence, Mapping):
            text = f"counts of {fmt_count(evidence.get('partitions', 0))} partition(s)"
            stale = evidence.get("stale") or {}
            if isinstance(stale, Mapping) and stale.get(c.get("name")):
                text += f", {fmt_count(stale[c.get('name')])} counted under another definition (left out)"
            unreadable = evidence.get("unreadable") or []
            if unreadable:
                text += f", {len(unreadable)} unreadable: {str(unreadable[0])[:120]}"
            lines.append(f"  evidence: {text}")
        lines.append("")
    return lines


def render_status(doc: Mapping[str, Any]) -> str:
    """The people's view of a ``/v1/status`` document; missing parts show as ``-``."""
    now = doc.get("now_ms")
    ready = "ready" if doc.get("ready") else "NOT READY (waiting for partitions)"
    rate = doc.get("records_per_second")
    rate_text = f" ({rate:,.1f}/s over the last minute)" if isinstance(rate, (int, float)) else ""
    lines = [
        f"rollguard: {ready}, partitions {_partitions(doc.get('partitions') or [])}, "
        f"window {_duration(doc.get('window_seconds'))}, gauges need >= {doc.get('min_samples', '?')} samples",
        f"{fmt_count(doc.get('records', 0))} records consumed{rate_text}, up since {fmt_time(doc.get('started_ms'))}",
        "",
    ]
    series = sorted(doc.get("series") or [], key=_series_key)
    if not series:
        lines += ["no series in the window yet", ""]
    for s in series:
        lines += render_series(s, doc.get("min_samples", "?")) + [""]
    comparisons = doc.get("comparisons")
    if isinstance(comparisons, Sequence) and not isinstance(comparisons, str):
        lines += render_comparisons(comparisons)
    pending = doc.get("pending_joins") or {}
    lines.append(_row("pending joins", f"{fmt_count(pending.get('captures', 0))} captures held for labels (until label_ttl), "
                                       f"{fmt_count(pending.get('labels', 0))} labels waiting for a capture"))
    lag: Mapping[str, Any] = doc.get("consumer_lag") or {}
    total_lag = sum(v for v in lag.values() if isinstance(v, (int, float)))
    worst = sorted(lag.items(), key=lambda kv: -kv[1])[:4]
    detail = ", ".join(f"{k} {fmt_count(v)}" for k, v in worst if v) or "all caught up"
    lines.append(_row("consumer lag", f"{fmt_count(total_lag)} records ({detail})" if lag else "not measured yet"))
    pub: Mapping[str, Any] = doc.get("publisher") or {}
    last = pub.get("last_success_ms")
    text = f"{fmt_age(last, now)}" + (f" ({fmt_time(last)})" if last else "")
    text += f", {fmt_count(pub.get('buffered_datums', 0))} datums buffered, {fmt_count(pub.get('failures', 0))} failures"
    lines.append(_row("last publish", text))
    if pub.get("last_error"):
        lines.append(_row("", f"last error {fmt_age(pub.get('last_error_ms'), now)}: {pub['last_error']}"[:200]))
    dropped = {k: pub.get(k, 0) for k in ("dropped_too_old", "dropped_too_new", "dropped_invalid", "dropped_overflow", "rejected")}
    if any(dropped.values()):
        lines.append(_row("dropped datums", ", ".join(f"{k.removeprefix('dropped_')} {fmt_count(v)}"
                                                      for k, v in dropped.items() if v)))
    lines.append(_row("last checkpoint", f"{fmt_age(doc.get('last_checkpoint_ms'), now)}, "
                                         f"{fmt_count(doc.get('checkpoint_failures', 0))} failures"))
    dead: Mapping[str, Any] = doc.get("dead_letters") or {}
    total_dead = sum(v for v in dead.values() if isinstance(v, (int, float)))
    detail = ", ".join(f"{k} {fmt_count(v)}" for k, v in sorted(dead.items(), key=lambda kv: (-kv[1], kv[0])))
    waiting = doc.get("dead_letters_pending") or 0
    lines.append(_row("dead letters", f"{fmt_count(total_dead)} written" + (f" ({detail})" if detail else "")
                      + (f", {fmt_count(waiting)} not yet confirmed" if waiting else "")))
    if doc.get("not_ready_reason"):
        lines.append(_row("not ready", str(doc["not_ready_reason"])[:200]))
    for w in doc.get("workers") or []:  # `rollguard run --workers N`: the figures above are their sums
        state = "ready" if w.get("ready") else "not running" if not w.get("running") else "not ready"
        lines.append(_row(f"worker {w.get('worker')}", f"{state}, pid {w.get('pid') or '-'}, partitions "
                          f"{_partitions(w.get('partitions') or [])}, {fmt_count(w.get('records', 0))} records, "
                          f"{fmt_count(w.get('restarts', 0))} restarts"))
    join: Mapping[str, Any] = doc.get("join") or {}
    if join:
        keys = ("duplicate_captures", "corrections", "expired", "orphan_labels", "evicted_captures", "evicted_labels")
        lines.append(_row("join", ", ".join(f"{k.replace('_', ' ')} {fmt_count(join.get(k, 0))}" for k in keys)))
    lines += render_alarms(doc.get("alarms") or {}, now)
    return "\n".join(lines) + "\n"


# -- reading it from the daemon -------------------------------------------------------------


def connect_host(host: str) -> str:
    """Where to connect for a bind address: wildcard binds are reached on loopback."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def status_url(addr: str) -> str:
    host, _, port = addr.rpartition(":")
    host = connect_host(host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/v1/status"


def fetch_status(url: str, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> dict[str, Any]:
    """GET ``url`` (with ``token`` as a bearer token, if given) and decode it; raises OSError (incl. URLError) or ValueError."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        doc = json.loads(resp.read().decode())
    if not isinstance(doc, dict):
        raise ValueError("the answer is not a JSON object")
    return doc
