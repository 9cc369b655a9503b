"""`rollguard query`: metric history from CloudWatch, rates computed from the published sums.

Works with the daemon down: it reads only CloudWatch (GetMetricData). For the exact
dimension set asked for (EndpointName, VariantName, + ModelVersion, + one segment
dimension) it fetches the ``Sum`` of each count metric a rate needs, per period, and
computes the rate and its sample size itself, the way an alarm's metric math does: a
count with no datapoint in a period is 0, and a rate whose denominator is 0 has no value.
Latency percentiles are CloudWatch's own percentile statistics of the ``Latency``
distribution (per period and over the whole range); its ``SampleCount`` is their sample.

A comparison's history (``--comparison``) is the ``Verdict`` metric instead (dimensions
EndpointName, Comparison): its ``Maximum`` per period, read as PASS / INCONCLUSIVE / FAIL, and
every period without a datapoint listed as MISSING, since the fail-safe alarm reads it as ALARM.

The pure half (:func:`parse_time`, :func:`align_range`, :func:`compute`, :func:`summarise`,
:func:`render_table`, :func:`verdict_periods`, :func:`render_verdict_table`) takes no clock and
makes no call; :func:`run_query` and :func:`run_verdict_query` do the I/O.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from pipelines import metrics
from pipelines.stats import wilson_lower_bound

DEFAULT_PERIOD = 300
_RELATIVE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
LATENCY_SAMPLES_ID = "latency_n"


# =========================================================================================
# what can be asked for


#: the rates: ``sum(numerator) / sum(denominator)`` over count ids (pipelines.metrics); each
#: with a ``lower_bound`` gauge also gets the Wilson 95 % lower bound, as the window does
RATES: Mapping[str, metrics.Rate] = metrics.PUBLISHED_RATES
#: plain counts: the metric's own Sum (label counts and friends), by count id
COUNTS: tuple[str, ...] = tuple(metrics.COUNT_IDS)
#: latency percentiles: query name -> CloudWatch extended statistic, one per latency gauge
LATENCY: dict[str, str] = {f"p{pct:g}_latency": f"p{pct:g}" for pct in metrics.LATENCY_GAUGES.values()}
#: shorthands accepted by --metric
GROUPS: dict[str, tuple[str, ...]] = {
    "latency": tuple(LATENCY),
    "all": (*RATES, "labeled", "invocations", *LATENCY),
}
METRIC_NAMES: tuple[str, ...] = (*RATES, *COUNTS, *LATENCY)


def expand_metrics(names: Iterable[str]) -> tuple[str, ...]:
    """``["recall,precision", "latency"]`` -> the metric names in order, groups expanded, no repeats.

    Raises ValueError naming an unknown metric and listing the known ones.
    """
    out: list[str] = []
    for chunk in names:
        for name in (n.strip().lower() for n in chunk.split(",")):
            if not name:
                continue
            if name in GROUPS:
                items: Sequence[str] = GROUPS[name]
            elif name in METRIC_NAMES:
                items = (name,)
            else:
                raise ValueError(f"unknown metric {name!r}; choose from {', '.join([*METRIC_NAMES, *GROUPS])}")
            out += [i for i in items if i not in out]
    if not out:
        raise ValueError("name at least one metric")
    return tuple(out)


def count_ids(names: Iterable[str]) -> tuple[str, ...]:
    """The count ids whose Sum the metrics need, in pipelines.metrics.COUNT_IDS order."""
    needed: set[str] = set()
    for m in names:
        if m in RATES:
            needed |= RATES[m].ids()
        elif m in metrics.COUNT_IDS:
            needed.add(m)
    return tuple(i for i in metrics.COUNT_IDS if i in needed)


# =========================================================================================
# rate math (pure)


@dataclass(frozen=True, slots=True)
class Value:
    """One metric in one period: ``value`` is None when undefined (no sample)."""

    value: float | None
    sample: float
    lower_bound: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "sample": self.sample}
        if self.lower_bound is not None:
            out["lower_bound"] = self.lower_bound
        return out


def compute_rate(rate: metrics.Rate, counts: Mapping[str, float]) -> Value:
    """The rate over ``counts`` (missing ids are 0), with its sample size.

    No value when the denominator or the sample is <= 0: a corrected label can move
    counts between periods, so a period's net count can even be negative, and a rate
    over it means nothing. The lower bound is given only when it is defined
    (0 <= successes <= sample).
    """
    num, den, n = metrics.numerator(rate, counts), metrics.denominator(rate, counts), metrics.sample(rate, counts)
    if den <= 0 or n <= 0:
        return Value(None, n)
    bound = wilson_lower_bound(num, n) if rate.lower_bound is not None and 0 <= num <= n else None
    return Value(num / den, n, bound)


def compute(metric: str, counts: Mapping[str, float], latency: Mapping[str, float | None] | None = None,
            latency_samples: float = 0.0) -> Value:
    """Any query metric over one period's (or the total's) counts and latency statistics."""
    if metric in RATES:
        return compute_rate(RATES[metric], counts)
    if metric in metrics.COUNT_IDS:
        c = counts.get(metric, 0.0)
        return Value(c, c)
    if metric in LATENCY:
        v = (latency or {}).get(LATENCY[metric])
        return Value(v if latency_samples > 0 else None, latency_samples)
    raise ValueError(f"unknown metric {metric!r}")


# =========================================================================================
# time (pure)


def parse_time(text: str, now: datetime) -> datetime:
    """``30m``/``6h``/``2d``/``1w``/``90s`` before ``now``, ``now``, or an ISO 8601 time.

    A time without a zone is UTC. Returns an aware UTC datetime; raises ValueError with the
    accepted forms otherwise.
    """
    t = text.strip()
    if t.lower() == "now":
        return now.astimezone(timezone.utc)
    m = _RELATIVE_RE.match(t.lower())
    if m:
        return (now - timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])).astimezone(timezone.utc)
    try:
        parsed = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t)
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use a duration before now (30m, 6h, 2d, 1w), 'now', "
            "or ISO 8601 (2026-11-21T09:05:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def align_range(start: datetime, end: datetime, period: int) -> tuple[datetime, datetime]:
    """``[start, end)`` widened to whole periods on the epoch grid (how CloudWatch bins best)."""
    s = math.floor(start.timestamp() / period) * period
    e = math.ceil(end.timestamp() / period) * period
    if e <= s:
        e = s + period
    return datetime.fromtimestamp(s, timezone.utc), datetime.fromtimestamp(e, timezone.utc)


def retention_note(start: datetime, period: int, now: datetime) -> str | None:
    """Why CloudWatch may return nothing at this ``period`` for a range starting at ``start``, or None."""
    age = now - start
    if age > timedelta(days=455):
        return "CloudWatch keeps data for 455 days at most; the oldest part of this range is gone"
    # (older than, resolution kept): 1-minute data lives 15 days, 5-minute data 63 days
    for limit_days, resolution in ((63, 3600), (15, 300)):
        if age > timedelta(days=limit_days) and period % resolution:
            return (f"CloudWatch keeps data older than {limit_days} days at {resolution} s resolution only; "
                    f"use --period {resolution} (or a multiple) for this range")
    return None


# =========================================================================================
# results (pure)


@dataclass
class Fetched:
    """Raw GetMetricData results: per count id and per latency statistic, timestamp -> value."""

    counts: dict[str, dict[datetime, float]] = field(default_factory=dict)
    latency: dict[str, dict[datetime, float]] = field(default_factory=dict)  # "p99" -> series; LATENCY_SAMPLES_ID too
    latency_total: dict[str, float | None] = field(default_factory=dict)  # "p99" -> over the whole range
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    """One period (or the total): its counts and each asked metric's value."""

    start: datetime | None  # None for the total
    counts: dict[str, float]
    values: dict[str, Value]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.start is None else {"start": iso(self.start)}
        out["counts"] = self.counts
        out["metrics"] = {k: v.as_dict() for k, v in self.values.items()}
        return out


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarise(fetched: Fetched, names: Sequence[str], ids: Sequence[str]) -> tuple[list[Row], Row]:
    """Rows per period that has any datapoint (sorted), and the total over the range.

    The total's counts are the sums of the per-period sums (exact: counts are additive);
    its latency percentiles are the range-wide statistics, not a merge of the periods'.
    """
    stamps: set[datetime] = set()
    for series in (*fetched.counts.values(), *fetched.latency.values()):
        stamps |= set(series)
    rows: list[Row] = []
    for t in sorted(stamps):
        counts = {cid: fetched.counts.get(cid, {}).get(t, 0.0) for cid in ids}
        stats = {s: fetched.latency.get(s, {}).get(t) for s in LATENCY.values()}
        n = fetched.latency.get(LATENCY_SAMPLES_ID, {}).get(t, 0.0)
        rows.append(Row(t, counts, {m: compute(m, counts, stats, n) for m in names}))
    totals = {cid: math.fsum(fetched.counts.get(cid, {}).values()) for cid in ids}
    n_total = math.fsum(fetched.latency.get(LATENCY_SAMPLES_ID, {}).values())
    total = Row(None, totals, {m: compute(m, totals, fetched.latency_total, n_total) for m in names})
    return rows, total


def _cell(metric: str, v: Value) -> list[str]:
    if metric in metrics.COUNT_IDS:
        return [_num(v.value)]
    if metric in LATENCY:
        return [_num(v.value, ms=True), _num(v.sample)]
    return [_num(v.value, rate=True), _num(v.sample)]


def _num(x: float | None, rate: bool = False, ms: bool = False) -> str:
    if x is None:
        return "-"
    if rate:
        return f"{x:.4f}"
    if ms:
        return f"{x:.1f}"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def render_table(result: Mapping[str, Any], rows: Sequence[Row], total: Row, names: Sequence[str]) -> str:
    """The people's table: one line per period, then the total; each rate with its sample n."""
    dims = " ".join(f"{k}={v}" for k, v in result["dimensions"].items())
    head = [f"{result['namespace']}  {dims}",
            f"{result['start']} .. {result['end']}, period {result['period']} s (UTC)", ""]
    columns = ["period start"]
    for m in names:
        columns += [m] if m in metrics.COUNT_IDS else [m, "n"]
    table = [columns]
    for r in rows:
        assert r.start is not None
        line = [r.start.strftime("%Y-%m-%d %H:%M")]
        for m in names:
            line += _cell(m, r.values[m])
        table.append(line)
    line = ["total"]
    for m in names:
        line += _cell(m, total.values[m])
    table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    out = head + ["  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
                  for row in table]
    if not rows:
        out.insert(len(head), "no datapoints in this range for exactly these dimensions")
    for note in result.get("notes", []):
        out.append(f"note: {note}")
    return "\n".join(out) + "\n"


# =========================================================================================
# a comparison's Verdict history (pure)


#: the Verdict metric's values back to states (pipelines.metrics.VERDICT_VALUES)
VERDICT_STATES: dict[float, str] = {v: k for k, v in metrics.VERDICT_VALUES.items()}
MISSING = "MISSING"
#: the Verdict statistic: the worst state any instance published in the period
VERDICT_STAT = "Maximum"
VERDICT_ID = "verdict"


@dataclass(frozen=True, slots=True)
class VerdictPeriod:
    """One period of a comparison's Verdict: ``value`` None when nothing was published."""

    start: datetime
    value: float | None

    @property
    def state(self) -> str:
        if self.value is None:
            return MISSING
        return VERDICT_STATES.get(self.value, f"UNKNOWN({self.value:g})")

    def as_dict(self) -> dict[str, Any]:
        return {"start": iso(self.start), "value": self.value, "state": self.state}


def verdict_dimensions(endpoint: str, comparison: str) -> list[dict[str, str]]:
    """The Verdict metric's dimension set (SPEC.md "Comparisons and verdicts")."""
    return [{"Name": metrics.ENDPOINT_NAME, "Value": endpoint}, {"Name": metrics.COMPARISON, "Value": comparison}]


def verdict_periods(series: Mapping[datetime, float], start: datetime, end: datetime, period: int) -> list[VerdictPeriod]:
    """Every period of the aligned ``[start, end)``, with its value or None (missing).

    Missing is shown, not skipped: the fail-safe guardrail alarm on Verdict treats missing
    data as breaching, so a gap reads as ALARM there.
    """
    by_start = {int(t.timestamp()) // period * period: v for t, v in series.items()}
    first, last = int(start.timestamp()), int(end.timestamp())
    return [VerdictPeriod(datetime.fromtimestamp(s, timezone.utc), by_start.get(s))
            for s in range(first, last, period)]


def verdict_summary(periods: Sequence[VerdictPeriod]) -> dict[str, int]:
    """Periods per state, in the order PASS, INCONCLUSIVE, FAIL, MISSING (then anything unknown)."""
    out = {state: 0 for state in (*metrics.VERDICT_VALUES, MISSING)}
    for p in periods:
        out[p.state] = out.get(p.state, 0) + 1
    return out


def render_verdict_table(result: Mapping[str, Any], periods: Sequence[VerdictPeriod]) -> str:
    """One line per period (runs of the same state folded into one line), then the totals."""
    dims = " ".join(f"{k}={v}" for k, v in result["dimensions"].items())
    out = [f"{result['namespace']}  {metrics.VERDICT} {dims}",
           f"{result['start']} .. {result['end']}, period {result['period']} s (UTC), Maximum per period", ""]
    runs: list[tuple[VerdictPeriod, VerdictPeriod, int]] = []
    for p in periods:
        if runs and runs[-1][0].state == p.state:
            first, _, n = runs[-1]
            runs[-1] = (first, p, n + 1)
        else:
            runs.append((p, p, 1))
    step = timedelta(seconds=int(result["period"]))
    for first, last, n in runs:
        span = f"{first.start:%Y-%m-%d %H:%M} .. {(last.start + step):%Y-%m-%d %H:%M}"
        out.append(f"{span}  {first.state:<12}  {n} period{'s' if n != 1 else ''}")
    summary = verdict_summary(periods)
    out += ["", "periods: " + ", ".join(f"{k} {v}" for k, v in summary.items())]
    if summary.get(MISSING):
        out.append("note: missing periods read as ALARM on the fail-safe Verdict alarm (no daemon published)")
    for note in result.get("notes", []):
        out.append(f"note: {note}")
    return "\n".join(out) + "\n"


# =========================================================================================
# CloudWatch (I/O)


class MetricDataClient(Protocol):
    """The CloudWatch call `query` makes, through boto3's paginator (a boto3 ``cloudwatch`` client satisfies it)."""

    def get_paginator(self, operation_name: str) -> Any: ...


def dimensions(endpoint: str, variant: str, model_version: str | None = None,
               segment: tuple[str, str] | None = None) -> list[dict[str, str]]:
    """The exact CloudWatch dimension set of a query (SPEC.md "Metrics")."""
    dims = [{"Name": metrics.ENDPOINT_NAME, "Value": endpoint}, {"Name": metrics.VARIANT_NAME, "Value": variant}]
    if model_version:
        dims.append({"Name": metrics.MODEL_VERSION, "Value": model_version})
    if segment:
        dims.append({"Name": segment[0], "Value": segment[1]})
    return dims


def _stat(qid: str, namespace: str, metric: str, dims: list[dict[str, str]], period: int, stat: str) -> dict[str, Any]:
    return {"Id": qid, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims},
        "Period": period, "Stat": stat}}


def get_metric_data(client: MetricDataClient, queries: list[dict[str, Any]], start: datetime,
                    end: datetime) -> dict[str, dict[datetime, float]]:
    """Id -> {timestamp: value}, over every page; raises what the client raises."""
    out: dict[str, dict[datetime, float]] = {q["Id"]: {} for q in queries}
    pages = client.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending")
    for page in pages:
        for res in page.get("MetricDataResults", []):
            series = out.setdefault(res["Id"], {})
            for t, v in zip(res.get("Timestamps", []), res.get("Values", [])):
                if v is not None:
                    series[t.astimezone(timezone.utc)] = float(v)
    return out


def run_query(client: MetricDataClient, namespace: str, dims: list[dict[str, str]], names: Sequence[str],
              start: datetime, end: datetime, period: int) -> Fetched:
    """Fetch what the metrics ``names`` need over the aligned ``[start, end)``.

    Counts and the latency SampleCount come in one request; percentiles in a second one
    (per period, plus one datapoint over the whole range) so a backend that cannot compute
    percentiles (moto) costs the percentiles only, recorded as a note.
    """
    ids = count_ids(names)
    fetched = Fetched()
    want_latency = any(m in LATENCY for m in names)
    queries = [_stat(cid, namespace, metrics.COUNT_IDS[cid], dims, period, "Sum") for cid in ids]
    if want_latency:
        queries.append(_stat(LATENCY_SAMPLES_ID, namespace, metrics.LATENCY, dims, period, "SampleCount"))
    if queries:
        raw = get_metric_data(client, queries, start, end)
        fetched.counts = {cid: raw.get(cid, {}) for cid in ids}
        if want_latency:
            fetched.latency[LATENCY_SAMPLES_ID] = raw.get(LATENCY_SAMPLES_ID, {})
    if want_latency:
        span = int((end - start).total_seconds())
        stats = sorted({LATENCY[m] for m in names if m in LATENCY})
        pq = [_stat(s, namespace, metrics.LATENCY, dims, period, s) for s in stats]
        pq += [_stat(f"{s}_total", namespace, metrics.LATENCY, dims, span, s) for s in stats]
        try:
            raw = get_metric_data(client, pq, start, end)
        except Exception as ex:  # noqa: BLE001 - the counts are still worth printing
            fetched.notes.append(f"latency percentiles unavailable: {type(ex).__name__}: {str(ex).splitlines()[0][:200]}")
            return fetched
        for s in stats:
            fetched.latency[s] = raw.get(s, {})
            whole = raw.get(f"{s}_total", {})
            # one datapoint spans the range; more means CloudWatch split it, and percentiles do not merge
            fetched.latency_total[s] = next(iter(whole.values())) if len(whole) == 1 else None
    return fetched


def run_verdict_query(client: MetricDataClient, namespace: str, dims: list[dict[str, str]],
                      start: datetime, end: datetime, period: int) -> dict[datetime, float]:
    """The Verdict metric's Maximum per period over ``[start, end)``: timestamp -> value."""
    query = _stat(VERDICT_ID, namespace, metrics.VERDICT, dims, period, VERDICT_STAT)
    return get_metric_data(client, [query], start, end).get(VERDICT_ID, {})
