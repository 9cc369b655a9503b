"""Chart data from the timeline, and the PNG files themselves."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from service.demo.charts import CHARTS, Marker, Point, Timeline, harm_limits, harm_series, series, write_charts
from service.demo.observe import Rate, Row

ROW = Row("recall", "merchant_category=5411", "INCONCLUSIVE", True, 0.25, (0.02, 0.45), 0.05, 60, 20)


def _timeline() -> Timeline:
    points = [Point(float(t), 0.0 if t < 10 else 0.1 * (t - 9), t < 10,
                    recall={"fraud-v5 (served)": Rate(80 + t, 100 + t), "fraud-v6 (shadow)": Rate(0, 0)},
                    precision={"fraud-v5 (served)": Rate(95, 100)}, comparison="gate" if t < 10 else "shift",
                    worst=ROW if t % 2 else None) for t in range(20)]
    return Timeline(points, [Marker(9.5, "gate PASS", True), Marker(15.0, "rolled back at 60 %", False)])


def test_series_keep_the_points_with_a_sample_and_their_bands() -> None:
    recall = series(_timeline().points, "recall")
    assert set(recall) == {"fraud-v5 (served)"}  # no sample, no point
    s = recall["fraud-v5 (served)"]
    assert s.t[:2] == (0.0, 1.0) and s.value[0] == 0.8 and s.low[0] < 0.8 < s.high[0]
    harms = harm_series(_timeline().points)
    assert set(harms) == {"gate", "shift"} and harms["gate"][0] == (1.0, 0.25, 0.02, 0.45, 0.05)
    low, high = harm_limits(harms)
    assert low <= -0.1 and high >= 0.25 * 1.5


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_charts_are_png_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = write_charts(_timeline(), tmp_path / "charts")
    assert [p.name for p in written] == list(CHARTS)
    for path in written:
        width, height = _png_size(path)
        assert width >= 800 and height >= 300
