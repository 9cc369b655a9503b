"""The comparison counter against an independent batch computation (pandas), over random
streams with early labels, corrections, repeats, error captures and a traffic shift."""
from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from pipelines.comparison.config import Arm, Comparison, MetricSpec
from pipelines.comparison.tally import ComparisonTally
from pipelines.processor import PartitionPipeline, PipelineConfig
from pipelines.series import SegmentCap
from service import checkpoint_format

T0 = 1_790_000_000_000
GAP_S = 120

METRICS = (MetricSpec("recall", 0.02), MetricSpec("precision", 0.02), MetricSpec("error_rate", 0.005),
           MetricSpec("latency_over", 0.01, threshold_ms=40.0))


def _shadow_comparison() -> Comparison:
    return Comparison("shadow", "ep", Arm(variant="v5"), Arm(variant="v6-shadow"), METRICS,
                      segments=("cat",), concurrent_within_s=GAP_S)


def _shift_comparison() -> Comparison:
    return Comparison("shift", "ep", Arm(model_version="m5"), Arm(model_version="m6"), METRICS,
                      segments=("cat",), concurrent_within_s=GAP_S)


def _stream(seed: int, shift: bool) -> list[tuple[str, dict]]:
    """(topic, message) in processing order; one record per second of processing time."""
    rng = random.Random(seed)
    records: list[tuple[str, dict]] = []
    labels: list[tuple[int, dict]] = []  # (processing position, label)
    n = 600
    for i in range(n):
        iid = f"id-{i}"
        ts = T0 + i * 1000 + rng.randint(-3000, 3000)
        cat = rng.choice(["a", "b", "c"])
        if shift:
            # first third only m5, middle both (alternating ids), last third only m6, a gap between
            phase = i * 3 // n
            version = "m5" if phase == 0 else "m6" if phase == 2 else rng.choice(["m5", "m6"])
            arms = [("AllTraffic", version, False)]
        else:
            arms = [("v5", None, False), ("v6-shadow", None, True)]
            rng.shuffle(arms)
            if rng.random() < 0.05:
                arms = arms[:1]  # a lost shadow capture: no pair
        for variant, version, shadow in arms:
            msg = {"inference_id": iid, "endpoint": "ep", "variant": variant, "timestamp": ts,
                   "shadow": shadow, "attributes": {"cat": cat}, "latency_ms": rng.choice([5.0, 30.0, 45.0, 90.0])}
            if version:
                msg["model_version"] = version
            if rng.random() < 0.03:
                msg["status"] = 500
            else:
                msg["prediction"] = int(rng.random() < 0.4)
            records.append(("captures", msg))
        if rng.random() < 0.8:
            label = {"inference_id": iid, "endpoint": "ep", "label": int(rng.random() < 0.35),
                     "timestamp": ts + rng.randint(1000, 90_000)}
            pos = max(0, len(records) - rng.randint(-20, 30))  # sometimes before its capture
            labels.append((pos, label))
            if rng.random() < 0.1:  # a correction, later
                corrected = dict(label, label=1 - label["label"], timestamp=label["timestamp"] + 5000)
                labels.append((pos + rng.randint(1, 40), corrected))
            if rng.random() < 0.05:  # an identical repeat
                labels.append((pos + rng.randint(1, 40), dict(label)))
    out: list[tuple[str, dict]] = []
    by_pos: dict[int, list[dict]] = {}
    for pos, label in labels:
        by_pos.setdefault(pos, []).append(label)
    for i, record in enumerate(records):
        out += [("labels", lab) for lab in by_pos.pop(i, [])]
        out.append(record)
    for pos in sorted(by_pos):
        out += [("labels", lab) for lab in by_pos[pos]]
    return out


def _run(stream: list[tuple[str, dict]], comparison: Comparison, restart_at: int | None = None) -> ComparisonTally:
    config = PipelineConfig(comparisons=(comparison,))
    segments = SegmentCap(("cat",), allowed={"cat": ["a", "b", "c"]})
    p = PartitionPipeline(0, config, segments)
    for i, (topic, msg) in enumerate(stream):
        if i == restart_at:  # through the real checkpoint format
            state = checkpoint_format.decode(checkpoint_format.encode({"pipeline": p.snapshot(), "unsent": {}}), "t")
            p = PartitionPipeline.restore(state["pipeline"], config, SegmentCap(("cat",), allowed={"cat": ["a", "b", "c"]}))
        assert p.submit(topic, json.dumps(msg).encode(), i, T0 + (i + 1) * 1000) is None
    return p.comparison_tallies()[comparison.name]


def _expected(stream: list[tuple[str, dict]], comparison: Comparison) -> dict:
    """The batch computation: final labels joined to captures, the span rule in pandas."""
    caps = pd.DataFrame([dict(m, pos=i) for i, (t, m) in enumerate(stream) if t == "captures"])
    caps["ts"] = caps["timestamp"]
    caps = caps.drop_duplicates(["inference_id", "variant"])  # none in these streams, but as the join does
    if comparison.name == "shadow":
        caps["arm"] = caps["variant"].map({"v5": 0, "v6-shadow": 1})
    else:
        caps["arm"] = caps["model_version"].map({"m5": 0, "m6": 1})
    caps["cat"] = caps["attributes"].map(lambda a: a["cat"])
    caps["err"] = caps["status"].fillna(200) >= 500 if "status" in caps else False
    # concurrent: the other arm was seen (earlier in processing order, including the first capture)
    # with a capture time >= this one's minus the gap
    everything = pd.DataFrame([dict(m, pos=i) for i, (t, m) in enumerate(stream) if t == "captures"])
    everything["arm"] = caps["arm"].reindex(everything.index) if False else (
        everything["variant"].map({"v5": 0, "v6-shadow": 1}) if comparison.name == "shadow"
        else everything["model_version"].map({"m5": 0, "m6": 1}))
    conc = []
    for _, row in caps.iterrows():
        other = everything[(everything["pos"] <= row["pos"]) & (everything["arm"] == 1 - row["arm"])]
        conc.append(bool(len(other)) and other["timestamp"].max() >= row["ts"] - GAP_S * 1000)
    caps["conc"] = conc
    labels = pd.DataFrame([dict(m, pos=i) for i, (t, m) in enumerate(stream) if t == "labels"])
    # the final label: the latest timestamp, ties to the later record (repeats are identical)
    final = labels.sort_values(["timestamp", "pos"]).groupby("inference_id").last()["label"]
    caps["y"] = caps["inference_id"].map(final)
    joined = caps[caps["y"].notna() & caps["prediction"].notna()].copy()
    joined["y"] = joined["y"].astype(int)
    joined["prediction"] = joined["prediction"].astype(int)

    out: dict = {}

    def add(key, values):
        cur = out.setdefault(key, [0] * len(values))
        for i, v in enumerate(values):
            cur[i] += v

    def segs(cat):
        return [(None, None), ("cat", cat)]

    for _, r in caps[caps["conc"]].iterrows():
        arm = int(r["arm"])
        for a, v in segs(r["cat"]):
            add(("error_rate", "unpaired", a, v), [int(r["err"]), 1, 0, 0] if arm == 0 else [0, 0, int(r["err"]), 1])
            slow = int(r["latency_ms"] > 40)
            add(("latency_over", "unpaired", a, v), [slow, 1, 0, 0] if arm == 0 else [0, 0, slow, 1])
    for _, r in joined[joined["conc"]].iterrows():
        arm = int(r["arm"])
        for a, v in segs(r["cat"]):
            if r["y"] == 1:
                add(("recall", "unpaired", a, v), [r["prediction"], 1, 0, 0] if arm == 0 else [0, 0, r["prediction"], 1])
            if r["prediction"] == 1:
                add(("precision", "unpaired", a, v), [r["y"], 1, 0, 0] if arm == 0 else [0, 0, r["y"], 1])
    pairs = joined.pivot_table(index="inference_id", columns="arm", values="prediction", aggfunc="first")
    if 0 in pairs and 1 in pairs:
        pairs = pairs.dropna()
        meta = joined[joined["arm"] == 0].set_index("inference_id")
        for iid, r in pairs.iterrows():
            if meta.loc[iid, "y"] != 1:
                continue
            b, c = int(r[0]), int(r[1])
            for a, v in segs(meta.loc[iid, "cat"]):
                add(("recall", "paired", a, v), [1, int(b == 1 and c == 0), int(c == 1 and b == 0)])
    return {k: v for k, v in out.items() if any(v)}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("shift", [False, True])
def test_counts_equal_a_batch_computation(seed: int, shift: bool) -> None:
    comparison = _shift_comparison() if shift else _shadow_comparison()
    stream = _stream(seed, shift)
    tally = _run(stream, comparison)
    got = {k: [round(x) for x in v] for k, v in tally.cells.items() if any(round(x) for x in v)}
    assert got == _expected(stream, comparison)
    assert tally.shadow is (not shift)


@pytest.mark.parametrize("shift", [False, True])
def test_a_restart_through_the_checkpoint_format_changes_nothing(shift: bool) -> None:
    comparison = _shift_comparison() if shift else _shadow_comparison()
    stream = _stream(7, shift)
    straight = _run(stream, comparison)
    restarted = _run(stream, comparison, restart_at=len(stream) // 2)
    assert restarted.cells == straight.cells


def test_the_shift_compares_only_concurrent_traffic() -> None:
    stream = _stream(4, shift=True)
    tally = _run(stream, _shift_comparison())
    be, bt, ce, ct = tally.cells[("error_rate", "unpaired", None, None)]
    caps = [m for t, m in stream if t == "captures"]
    # the first third (m5 only) and the last third (m6 only) are mostly outside the span
    assert bt < sum(1 for m in caps if m["model_version"] == "m5") * 0.8
    assert ct < sum(1 for m in caps if m["model_version"] == "m6") * 0.8
    counts = tally.counts(_shift_comparison())
    assert all(type(c).__name__ == "UnpairedCounts" for c in counts.values())


def test_shadow_recall_is_judged_paired() -> None:
    tally = _run(_stream(5, shift=False), _shadow_comparison())
    counts = tally.counts(_shadow_comparison())
    assert type(counts[("recall", None)]).__name__ == "PairedCounts"
    assert type(counts[("precision", None)]).__name__ == "UnpairedCounts"


def test_a_changed_definition_starts_afresh_and_never_goes_negative() -> None:
    stream = _stream(6, shift=False)
    config = PipelineConfig(comparisons=(_shadow_comparison(),))
    p = PartitionPipeline(0, config, SegmentCap(("cat",), allowed={"cat": ["a", "b", "c"]}))
    half = len(stream) // 2
    for i, (topic, msg) in enumerate(stream[:half]):
        p.submit(topic, json.dumps(msg).encode(), i, T0 + (i + 1) * 1000)
    changed = Comparison("shadow", "ep", Arm(variant="v5"), Arm(variant="v6-shadow"), METRICS,
                         segments=("cat",), concurrent_within_s=GAP_S + 1)
    p2 = PartitionPipeline.restore(p.snapshot(), PipelineConfig(comparisons=(changed,)),
                                   SegmentCap(("cat",), allowed={"cat": ["a", "b", "c"]}))
    for i, (topic, msg) in enumerate(stream[half:], start=half):
        p2.submit(topic, json.dumps(msg).encode(), i, T0 + (i + 1) * 1000 + 10_000)
    tally = p2.comparison_tallies()["shadow"]
    assert tally.fingerprint == changed.fingerprint()
    assert all(x >= 0 for cell in tally.cells.values() for x in cell)
