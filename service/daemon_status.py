"""The parts of the daemon's status document (``Daemon.status()``, served as ``/v1/status``)
that are computed from its state: the window's series and the partitions' totals. Pure."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelines import metrics
from pipelines.datum import Dimensions
from pipelines.processor import PartitionPipeline
from pipelines.window import SlidingWindow


def window_series(window: SlidingWindow, now: int) -> list[dict[str, Any]]:
    """Gauges and samples per endpoint/variant and endpoint/variant/model version.

    Segment copies are left out: available from `query`, too many to list here.
    """
    series = []
    for key in window.series():
        dims: Dimensions = key  # type: ignore[assignment]  # the window is keyed by dimension set
        d = dict(dims)
        if len(dims) > 3 or (len(dims) == 3 and metrics.MODEL_VERSION not in d):
            continue
        series.append({"dimensions": d, "gauges": window.gauges(dims, now), "samples": window.samples(dims, now)})
    return series


def pipeline_totals(pipelines: Iterable[PartitionPipeline]) -> dict[str, Any]:
    """``pending_joins``, ``join`` (JoinStats) and ``bad_records`` summed over the partitions."""
    pending = {"captures": 0, "labels": 0}
    join: dict[str, int] = {}
    bad: dict[str, int] = {}
    for pipeline in pipelines:
        pending["captures"] += pipeline.join.pending_captures
        pending["labels"] += pipeline.join.pending_labels
        for k, v in pipeline.join.stats.as_dict().items():
            join[k] = join.get(k, 0) + v
        for k, v in pipeline.bad_records.items():
            bad[k] = bad.get(k, 0) + v
    return {"pending_joins": pending, "join": join, "bad_records": bad}
