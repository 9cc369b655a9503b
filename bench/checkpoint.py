"""Checkpoint encode/decode time and size at N pending captures, against the pickle it replaced.

The state is a real PartitionPipeline snapshot: 80 % canonical-UUID ids (kept as 16 bytes), 20 %
other ids, a third of them labelled (entries up to 141 bits), every tenth id with a shadow capture
too (a tuple entry), N/100 pending labels (some without endpoint), a tick of counts and latency,
and one unsent batch of datums. Baseline in the same run: `pickle.dumps(state, protocol=5)`, which
rollguard wrote before format version 2 (and which can run code when loaded).
Usage: python3 bench/checkpoint.py [N]
"""
from __future__ import annotations

import gc
import pickle
import random
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from pipelines.processor import PartitionPipeline, PipelineConfig
from pipelines.join import JoinPolicy
from pipelines.records import Capture, Label
from service import checkpoint_format

NOW = 1_790_000_000_000


def build(n: int) -> dict[str, Any]:
    pipeline = PartitionPipeline(0, PipelineConfig(join=JoinPolicy(max_pending=2 * n + 10)))
    series = [("fraud-ep", v, f"fraud-{v}", (("merchant_category", str(m)),)) for v in ("v5", "v6") for m in range(50)]
    join = pipeline.join
    rng = random.Random(8)
    for i in range(n):
        iid = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if i % 5 else f"txn-{rng.getrandbits(40):012d}"
        ts = NOW - 3_600_000 + i
        join.add_capture(Capture(iid, "fraud-ep", "v5", ts, "fraud-v5", prediction=i & 1, latency_ms=12.5), series[i % 50], ts, pipeline)
        if i % 10 == 0:
            join.add_capture(Capture(iid, "fraud-ep", "v6", ts, "fraud-v6", shadow=True, prediction=1), series[50 + i % 50], ts, pipeline)
        if i % 3 == 0:
            join.add_label(Label(iid, i & 1, ts + 5000, "fraud-ep" if i % 2 else None), ts + 5000, pipeline)
    for i in range(n // 100):
        join.add_label(Label(f"early-{i}", 1, NOW - 1000, None if i % 2 else "fraud-ep"), NOW - 1000, pipeline)
    for i in range(2000):
        pipeline.aggregator.latency(series[i % 100], NOW - 60_000, 1.0 + i % 300)
    unsent = {"p0-1-1-0": pipeline.aggregator.drain(NOW)[:500]}
    for s in series:
        pipeline.count(s, NOW, "Invocations", 3)
        pipeline.aggregator.latency(s, NOW, 30.0)
    return {"pipeline": pipeline.snapshot(), "unsent": unsent}


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    state = build(n)
    join = state["pipeline"]["join"]
    pending = sum(map(len, join["captures"].values()))
    labels = sum(map(len, join["labels"].values()))
    print(f"pending captures: {pending:,} ids, pending labels: {labels:,}; best of 3 runs each")
    rows = [
        ("pickle protocol 5 (old RGCK1)", lambda: pickle.dumps(state, protocol=5), pickle.loads),
        ("RGCK2 JSON + zlib level 1", lambda: checkpoint_format.encode(state), lambda b: checkpoint_format.decode(b, "bench")),
        ("RGCK2 JSON, uncompressed", lambda: checkpoint_format.encode(state, compress=False),
         lambda b: checkpoint_format.decode(b, "bench")),
    ]
    for label, enc, dec in rows:
        t_enc, data = timed(enc)
        t_dec, back = timed(lambda: dec(data))
        assert back == state
        print(f"{label:32s} encode {t_enc:6.2f} s  decode {t_dec:6.2f} s  size {len(data) / 1e6:7.1f} MB"
              f"  ({len(data) / pending:5.1f} bytes per pending id)")


if __name__ == "__main__":
    main()
