"""A moto server for the benchmarks whose CloudWatch reads scan only the series they ask for.

Why: moto's CloudWatch backend keeps every datum in one list and, on every GetMetricData, scans
all of it once per period of the query (and sorts each datum's dimensions); GetMetricStatistics
scans all of it once. A Values/Counts entry is stored as one object per observation, so at
20,000 events/s the list grows by ~28,000 objects a second. The freshness benchmark polls
GetMetricData every 0.2 s for a marker, and after a minute each read took seconds of a core,
competing (GIL and cores) with the PutMetricData calls it was timing: the measurement loaded the
thing it measured (bench/RESULTS.md, section 7).

What changes: only which datums a read looks at. An index, built lazily from moto's own
``metric_data`` list (appends since the last read), maps (namespace, metric name) and
(metric name, dimension set) to their datums; a read hands moto's own ``get_metric_data`` /
``get_metric_statistics`` just the datums that could match (a superset of what moto would
match), so moto's own code still does all the filtering and the statistics. Queries it cannot
narrow (Metrics Insights ``SELECT``) scan everything, as moto does. PutMetricData, the HTTP API,
request parsing and responses are moto's, untouched; the daemon talks to it over HTTP as to any
moto server.

Run: ``python bench/moto_indexed.py -H 127.0.0.1 -p PORT`` (moto.server's own arguments), or
:func:`start_indexed_moto` for a started server as a context manager.
"""
from __future__ import annotations

import contextlib
import heapq
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_originals: dict[str, Any] = {}  # moto's own methods while patched
_scope = threading.local()  # .datums: the candidates the current thread's read may see
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class SeriesIndex:
    """Datums of one backend by (namespace, name) and by name, each list in moto's stored order as
    (position in ``metric_data``, datum); series (name and dimension set) indexed on demand.

    Caught up from the backend's ``metric_data`` list on each read: moto only ever appends to it
    (a reset makes a new backend), so the datums past ``indexed`` are the new ones. A list shorter
    than what was indexed (replaced by hand) rebuilds the index. Series keys are computed only
    for the names a query asks about, and only for their datums not yet looked at: most datums are
    observations of a latency distribution (one object each in moto) that no benchmark reads by
    series, and keying each of them cost about as much as moto's own put."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.indexed = 0
        self.by_metric: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self.by_name: dict[str, list[tuple[int, Any]]] = {}
        self.by_series: dict[str, tuple[int, dict[SeriesKey, list[tuple[int, Any]]]]] = {}  # name: (keyed, series)

    def catch_up(self, data: list[Any]) -> None:
        with self.lock:
            if len(data) < self.indexed:
                self.indexed = 0
                self.by_metric, self.by_name, self.by_series = {}, {}, {}
            end = len(data)  # datums appended while this runs are the next read's, as moto's own copy
            by_metric, by_name = self.by_metric, self.by_name
            for position in range(self.indexed, end):
                md = data[position]
                pair = (position, md)
                found = by_metric.get((md.namespace, md.name))
                if found is None:
                    by_metric[(md.namespace, md.name)] = found = []
                found.append(pair)
                named = by_name.get(md.name)
                if named is None:
                    by_name[md.name] = named = []
                named.append(pair)
            self.indexed = end

    def metric(self, namespace: str, name: str) -> list[tuple[int, Any]]:
        """The datums of one namespace and metric name (after a catch-up)."""
        with self.lock:
            return list(self.by_metric.get((namespace, name), ()))

    def series(self, key: SeriesKey) -> list[tuple[int, Any]]:
        """The datums of one metric name and dimension set, any namespace (after a catch-up)."""
        name = key[0]
        with self.lock:
            named = self.by_name.get(name, [])
            keyed, series = self.by_series.get(name, (0, {}))
            for pair in named[keyed:]:
                md = pair[1]
                series.setdefault(series_key(md.name, [(d.name, d.value) for d in md.dimensions]), []).append(pair)
            self.by_series[name] = (len(named), series)
            return list(series.get(key, ()))


def series_key(name: str, dims: list[tuple[Any, Any]]) -> SeriesKey:
    """Equal for two dimension lists moto's GetMetricData could call the same (its sorted-list
    comparison needs equal names and values pairwise, so the multisets of pairs are equal)."""
    return name, tuple(sorted((str(k), str(v)) for k, v in dims))


def _index(backend: Any) -> SeriesIndex:
    index = backend.__dict__.get("_bench_series_index")
    if index is None:
        index = backend.__dict__.setdefault("_bench_series_index", SeriesIndex())
    index.catch_up(backend.metric_data)
    return index


def data_candidates(backend: Any, queries: list[dict[str, Any]]) -> list[Any] | None:
    """The datums GetMetricData ``queries`` could read, in moto's stored order; None for all.

    Per MetricStat query, as moto matches it: with dimensions, the same metric name and dimension
    set in any namespace (moto ignores the namespace then); without, the same namespace and name.
    Metric math reads only those queries' results; a Metrics Insights SELECT reads everything."""
    if any(str(q.get("Expression", "")).startswith("SELECT") for q in queries):
        return None
    index = _index(backend)
    lists: dict[Any, list[tuple[int, Any]]] = {}
    for query in queries:
        if "MetricStat" not in query:
            continue
        metric = query["MetricStat"]["Metric"]
        dims = metric.get("Dimensions") or []
        if dims:
            key: Any = series_key(metric["MetricName"], [(d["Name"], d["Value"]) for d in dims])
            lists[("series", key)] = index.series(key)
        else:
            key = (metric["Namespace"], metric["MetricName"])
            lists[("metric", key)] = index.metric(*key)
    return _merged(list(lists.values()))


def statistics_candidates(backend: Any, namespace: str, metric_name: str) -> list[Any]:
    """The datums GetMetricStatistics could read: moto keeps only namespace and name equal."""
    return _merged([_index(backend).metric(namespace, metric_name)])


def _merged(lists: list[list[tuple[int, Any]]]) -> list[Any]:
    """The datums of ``lists`` once each, in stored order: moto's own filters keep that order, and
    a float Sum depends on it, so the statistics come out bit for bit as moto's."""
    if len(lists) == 1:
        return [md for _, md in lists[0]]
    seen: dict[int, Any] = {}
    for position, md in heapq.merge(*lists, key=lambda pair: pair[0]):
        seen.setdefault(position, md)
    return list(seen.values())


def install() -> None:
    """Patch moto's CloudWatchBackend reads in this process (idempotent)."""
    from moto.cloudwatch.models import CloudWatchBackend

    if getattr(CloudWatchBackend, "_bench_indexed", False):
        return
    own_all = CloudWatchBackend.get_all_metrics
    own_data = CloudWatchBackend.get_metric_data
    own_statistics = CloudWatchBackend.get_metric_statistics

    def get_all_metrics(self: Any) -> list[Any]:
        datums = getattr(_scope, "datums", None)
        if datums is None:
            return own_all(self)
        return datums + self.aws_metric_data  # what moto's own returns, narrowed to the candidates

    def get_metric_data(self: Any, queries: list[dict[str, Any]], start_time: Any, end_time: Any,
                        scan_by: str = "TimestampAscending") -> list[dict[str, Any]]:
        with _scoped(data_candidates(self, queries)):
            return own_data(self, queries, start_time, end_time, scan_by)

    def get_metric_statistics(self: Any, namespace: str, metric_name: str, start_time: Any, end_time: Any,
                              period: int, stats: list[str], dimensions: list[dict[str, str]],
                              unit: str | None = None) -> list[Any]:
        with _scoped(statistics_candidates(self, namespace, metric_name)):
            return own_statistics(self, namespace, metric_name, start_time, end_time, period, stats, dimensions,
                                  unit)

    _originals.update(get_all_metrics=own_all, get_metric_data=own_data, get_metric_statistics=own_statistics)
    CloudWatchBackend.get_all_metrics = get_all_metrics  # type: ignore[method-assign]
    CloudWatchBackend.get_metric_data = get_metric_data  # type: ignore[method-assign]
    CloudWatchBackend.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign]
    CloudWatchBackend._bench_indexed = True  # type: ignore[attr-defined]


def uninstall() -> None:
    """Put moto's own reads back (so a test can compare both in one process)."""
    from moto.cloudwatch.models import CloudWatchBackend

    for name, method in _originals.items():
        setattr(CloudWatchBackend, name, method)
    _originals.clear()
    CloudWatchBackend._bench_indexed = False  # type: ignore[attr-defined]


@contextlib.contextmanager
def _scoped(datums: list[Any] | None) -> Iterator[None]:
    _scope.datums = datums
    try:
        yield
    finally:
        _scope.datums = None


def start_indexed_moto(timeout_s: float = 30.0) -> Any:
    """This module as a moto server on a free loopback port: service.devstack's MotoServer
    (``endpoint_url``; a context manager that stops it)."""
    from service.devstack.moto_server import start_moto

    return start_moto(timeout_s=timeout_s, script=str(Path(__file__).resolve()))


def main(argv: list[str] | None = None) -> None:
    install()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # bench/'s modules (state, memory, ...) must not shadow what moto imports
    main()
