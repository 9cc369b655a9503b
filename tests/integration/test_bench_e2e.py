"""bench/e2e.py runs in its tiny mode on the session's broker and prints its three tables and
the targets line; its figures are never asserted (a shared, noisy machine)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_end_to_end_benchmark_prints_its_tables(kafka_bootstrap: str) -> None:
    # a moto server of its own: the benchmark reads back totals it alone published
    result = subprocess.run([sys.executable, "bench/e2e.py", "--tiny", "--kafka", kafka_bootstrap], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = result.stdout
    for heading in ("1. end to end over the backlog", "2. freshness with --workers", "3. scale-out"):
        assert heading in out, out
    assert "| rollguard run --workers 1 " in out and "| bare kafka-python consumer" in out
    assert out.count("yes, ") >= 3, out  # every backlog run ended with CloudWatch totals = the batch join
    assert "targets: " in out
