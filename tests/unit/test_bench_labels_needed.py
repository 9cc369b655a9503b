"""bench/labels_needed.py --quick runs and prints the labels-needed table (README "How rollguard decides")."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_table() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "labels_needed.py"), "--quick", "--check"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, check=True)
    lines = run.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| metric | design |"))
    assert "labels, pooled (FAIL at 0.00125)" in header
    assert "labels, one segment (FAIL at 2.5e-05)" in header
    rows = [line for line in lines if line.startswith("| recall | paired (shadow) |")]
    assert len(rows) == 2  # one FAIL row, one PASS row
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        sequential, fixed = int(cells[4].replace(",", "")), int(cells[5].replace(",", ""))
        assert sequential > fixed > 0  # anytime validity costs labels, never saves them here
