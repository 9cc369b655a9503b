"""Plain lines: each decision at once, the state now and then."""
from __future__ import annotations

import io

from service.demo.observe import Rate, VariantView
from service.demo.view import AlarmLine, PlainView, Screen, variant_line


def test_plain_lines() -> None:
    out, now = io.StringIO(), [100.0]
    view = PlainView(out, every_s=10.0, clock=lambda: now[0])
    view.event("gate FAIL")
    v5 = VariantView("AllTraffic", "fraud-v5", False, Rate(97, 100), Rate(80, 100), Rate(3, 1000), 31.0, 1000)
    screen = Screen(phase="shadow", clock="shadow day 0 05:00", traffic="fraud-v5 serves 100 %", variants=[v5],
                    alarms=[AlarmLine("a", "OK")])
    view.refresh(screen)
    now[0] += 5
    view.refresh(screen)  # too soon: nothing
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("] gate FAIL")
    assert lines[1].endswith("shadow day 0 05:00  fraud-v5 serves 100 %")
    assert lines[2] == "  " + variant_line(v5)
    assert "recall 0.800 n=100, precision 0.970 n=100, p99 31 ms n=1,000, errors 0.30 % n=1,000" in lines[2]
    assert lines[3] == "  alarms: a OK" and len(lines) == 4


def test_the_live_view_renders_the_screen() -> None:
    from rich.console import Console

    from service.demo.view import LiveView

    buffer = io.StringIO()
    view = LiveView(Console(file=buffer, width=140, force_terminal=False))
    v6 = VariantView("v6-shadow", "fraud-v6", True, Rate(97, 100), Rate(50, 100), Rate(0, 0), None, 0)
    view.refresh(Screen(title="rollguard demo", phase="shadow", clock="shadow day 1 02:00",
                        traffic="fraud-v5 serves 100 %", variants=[v6], alarms=[AlarmLine("verdict", "ALARM", 2.0, 0.0)]))
    view.event("gate FAIL")
    view.close()
    text = buffer.getvalue()
    assert "gate FAIL" in text and "SHADOW" in text and "fraud-v6 (shadow)" in text and "0.500 n=100" in text
    assert "verdict  ALARM" in text
