"""bench/state.py --quick runs and prints its four tables (figures are never asserted)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_state_benchmark_prints_its_tables_in_quick_mode(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "state.py"), "--quick", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    for heading in ("baseline: memory store", "1. pending captures in the disk store", "2. core pipeline",
                    "3. tick checkpoint", "4. restore of"):
        assert heading in out.stdout, out.stdout
    assert not list(tmp_path.iterdir())  # the work directory is removed
