"""Sliding-window gauges: edges at tick boundaries, min_samples, eviction, snapshot/restore."""
from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest

from pipelines.latency import ALPHA
from pipelines.stats import wilson_lower_bound
from pipelines.window import LATENCY_SAMPLES, SlidingWindow

MIN = 60_000
WINDOW = 15 * MIN
T0 = 1_764_000_000_000 - (1_764_000_000_000 % MIN)  # a minute boundary
S = ("fraud-ep", "v6", "fraud-v6")


def outcomes(w: SlidingWindow, t: int, tp: int = 0, fp: int = 0, fn: int = 0, tn: int = 0) -> None:
    for name, n in (("TruePositives", tp), ("FalsePositives", fp), ("FalseNegatives", fn), ("TrueNegatives", tn)):
        if n:
            w.add(S, t, name, n)
    w.add(S, t, "Labeled", tp + fp + fn + tn)


def test_gauges_from_counts() -> None:
    w = SlidingWindow(WINDOW, MIN, min_samples=30)
    outcomes(w, T0, tp=40, fp=10, fn=20, tn=130)
    w.add(S, T0, "Invocations", 400)
    w.add(S, T0, "Errors", 8)
    w.add(S, T0, "Predictions", 392)
    w.add(S, T0, "PositivePredictions", 50)
    w.add(S, T0, "ShadowComparisons", 100)
    w.add(S, T0, "ShadowAgreements", 97)
    g = w.gauges(S, T0 + 1)
    assert g["Precision"] == 40 / 50
    assert g["Recall"] == 40 / 60
    assert g["F1"] == 80 / 110
    assert g["ErrorRate"] == 8 / 400
    assert g["PositiveRate"] == 50 / 392
    assert g["LabelCoverage"] == 200 / 400  # per capture, as alarms and `query` compute it
    assert g["ShadowAgreement"] == 0.97
    assert g["PrecisionLowerBound"] == wilson_lower_bound(40, 50)
    assert g["RecallLowerBound"] == wilson_lower_bound(40, 60)
    assert not any(k.startswith("Latency") for k in g)  # no latency observed


def test_label_coverage_is_capped() -> None:
    # Labels are bucketed by label time, captures by inference time: more labels than captures can meet.
    w = SlidingWindow(WINDOW, MIN, min_samples=1)
    w.add(S, T0, "Invocations", 10)
    w.add(S, T0, "Labeled", 25)
    assert w.gauges(S, T0)["LabelCoverage"] == 1.0


def test_min_samples_hides_each_gauge_by_its_own_sample() -> None:
    w = SlidingWindow(WINDOW, MIN, min_samples=30)
    outcomes(w, T0, tp=20, fp=9, fn=10)  # precision sample 29, recall sample 30, F1 sample 39
    for _ in range(29):
        w.add_latency(S, T0, 5.0)
    w.add(S, T0, "Invocations", 30)
    g = w.gauges(S, T0)
    assert "Precision" not in g and "PrecisionLowerBound" not in g
    assert g["Recall"] == 20 / 30 and "RecallLowerBound" in g
    assert "F1" in g
    assert g["ErrorRate"] == 0.0  # a rate of zero is a value, not missing data
    assert "LatencyP99" not in g
    w.add_latency(S, T0, 5.0)
    w.add(S, T0, "FalsePositives", 1)
    g = w.gauges(S, T0)
    assert g["Precision"] == 20 / 30 and g["LatencyP50"] == pytest.approx(5.0, rel=ALPHA)


def test_zero_sample_is_absent_even_with_min_samples_zero() -> None:
    w = SlidingWindow(WINDOW, MIN, min_samples=0)
    w.add(S, T0, "Invocations", 0)
    assert w.gauges(S, T0) == {}
    assert w.gauges(("unknown",), T0) == {}


def test_window_edge_at_tick_boundaries() -> None:
    """Buckets with start s in (now - window, now] are in; check both ends, at and one ms off the edge."""
    w = SlidingWindow(WINDOW, MIN, min_samples=1)
    w.add(S, T0, "Invocations", 1)  # bucket [T0, T0+1min)
    w.add(S, T0 + MIN - 1, "Invocations", 10)  # same bucket, last ms
    # Newest end: the bucket is in as soon as now reaches its start, not before.
    assert w.samples(S, T0 - 1).get("Invocations", 0.0) == 0.0
    assert w.samples(S, T0)["Invocations"] == 11  # includes an event stamped after now, same bucket
    # Oldest end: in while now - window < T0, i.e. now < T0 + window.
    assert w.samples(S, T0 + WINDOW - 1)["Invocations"] == 11
    assert w.samples(S, T0 + WINDOW).get("Invocations", 0.0) == 0.0
    # So at a tick edge now = k·MIN the window holds exactly 15 buckets, the newest just opened.
    for k in range(-10, 25):
        w.add(S, T0 + k * MIN, "Ticks", 1)
    now = T0 + 10 * MIN
    assert w.samples(S, now)["Ticks"] == 15
    assert w.samples(S, now + MIN - 1)["Ticks"] == 15
    assert w.samples(S, now - 1)["Ticks"] == 15


def test_events_older_than_window_are_ignored_and_evicted() -> None:
    w = SlidingWindow(WINDOW, MIN, min_samples=1)
    now = T0 + 60 * MIN
    w.add(S, now - WINDOW - 5, "Invocations", 100)  # late arrival, already outside
    w.add(S, now - 5, "Invocations", 3)
    w.add(("other",), now - WINDOW, "Invocations", 1)  # bucket start == now - window: out
    assert w.samples(S, now)["Invocations"] == 3
    assert w.series() == [S, ("other",)]
    assert w.evict(now) == 2
    assert w.series() == [S]
    assert w.samples(S, now)["Invocations"] == 3
    assert w.evict(now + WINDOW) == 1
    assert w.series() == []


def test_negative_moves_correct_counts() -> None:
    w = SlidingWindow(WINDOW, MIN, min_samples=1)
    outcomes(w, T0, tp=5, fp=5)
    w.add(S, T0, "FalsePositives", -1)  # a corrected label moves an outcome
    w.add(S, T0, "TruePositives", 1)
    assert w.gauges(S, T0)["Precision"] == 6 / 10
    with pytest.raises(ValueError, match="finite"):
        w.add(S, T0, "TruePositives", float("nan"))


def test_latency_percentiles_match_numpy_over_the_window() -> None:
    rng = np.random.default_rng(3)
    w = SlidingWindow(WINDOW, MIN, min_samples=30)
    now = T0 + 30 * MIN
    inside: list[float] = []
    for _ in range(5000):
        t = int(rng.integers(now - 2 * WINDOW, now + 1))
        ms = float(rng.gamma(2.0, 8.0))
        w.add_latency(S, t, ms)
        if t // MIN * MIN > now - WINDOW:
            inside.append(ms)
    g = w.gauges(S, now)
    assert w.samples(S, now)[LATENCY_SAMPLES] == len(inside)
    for name, q in (("LatencyP50", 50), ("LatencyP90", 90), ("LatencyP99", 99)):
        expected = float(np.percentile(inside, q))
        assert abs(g[name] - expected) <= ALPHA * expected * (1 + 1e-9)


def test_snapshot_restore_round_trip() -> None:
    rnd = random.Random(1)
    w = SlidingWindow(WINDOW, MIN, min_samples=5)
    keys = [S, ("fraud-ep", "v5", None), ("fraud-ep", "v6", "fraud-v6", ("merchant_category", "5411"))]
    for _ in range(2000):
        key = rnd.choice(keys)
        t = T0 + rnd.randrange(0, 20 * MIN)
        w.add(key, t, rnd.choice(["TruePositives", "FalsePositives", "FalseNegatives", "Invocations"]))
        w.add_latency(key, t, rnd.uniform(0, 100))
    now = T0 + 20 * MIN
    expected = {k: (w.gauges(k, now), w.samples(k, now)) for k in keys}
    data = w.snapshot()
    for restored in (SlidingWindow.restore(pickle.loads(pickle.dumps(data))),
                     SlidingWindow.restore(json.loads(json.dumps(data)))):
        assert restored.series() == keys
        assert {k: (restored.gauges(k, now), restored.samples(k, now)) for k in keys} == expected
    with pytest.raises(ValueError, match="version"):
        SlidingWindow.restore({**data, "version": 99})


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="multiple"):
        SlidingWindow(WINDOW, 7 * MIN, 30)
    with pytest.raises(ValueError, match="> 0"):
        SlidingWindow(0, MIN, 30)
    with pytest.raises(ValueError, match="min_samples"):
        SlidingWindow(WINDOW, MIN, -1)
