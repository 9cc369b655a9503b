"""Resident memory per pending capture in the join (issue: aim for < 200 bytes each).

Baseline in the same run: the same ids held as a plain dict of id -> None, the floor any
in-memory join keyed by a 36-character inference id pays.
Usage: python3 bench/memory.py [N]
"""
from __future__ import annotations

import gc
import os
import sys
import uuid

from pipelines.join import JoinPolicy, JoinState
from pipelines.records import Capture

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class NullSink:
    def count(self, series: object, ts_ms: int, name: str, delta: int = 1) -> None:
        pass


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    ids = [str(uuid.UUID(int=i * 7919 + 12345)) for i in range(n)]
    gc.collect()
    base = rss()
    floor = dict.fromkeys("".join(i) for i in ids)
    gc.collect()
    floor_bytes = (rss() - base) / n
    del floor
    gc.collect()

    state = JoinState(JoinPolicy(max_pending=n + 1))
    sink = NullSink()
    series = [("fraud-ep", "v5", "fraud-v5", (("merchant_category", str(m)),)) for m in range(50)]
    now = 1_790_000_000_000
    gc.collect()
    before = rss()
    for i, held in enumerate(ids):
        iid = "".join(held)  # a fresh string, as parsing a record makes one; the join keeps it
        cap = Capture(iid, "fraud-ep", "v5", now + i, "fraud-v5", prediction=i & 1)
        state.add_capture(cap, series[i % 50], now + i, sink)
    gc.collect()
    per_capture = (rss() - before) / n
    print(f"pending captures: {state.pending_captures:,}")
    print(f"rollguard join: {per_capture:.0f} bytes RSS per pending capture, its 36-char id string included (target < 200)")
    print(f"baseline dict of fresh copies of the same ids -> None: {floor_bytes:.0f} bytes per id")
    print(f"rollguard over baseline: {per_capture - floor_bytes:.0f} bytes per capture for prediction, series, times, label")


if __name__ == "__main__":
    main()
