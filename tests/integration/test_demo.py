"""`rollguard demo --fast` end to end: each story's outcome on its own local stack (Kafka, the
AWS API over HTTP, the daemon as `rollguard run`), its charts, and that nothing it started
outlives it, also after Ctrl-C.

The demo starts its own broker and moto server (as a user's `rollguard demo` does), so these
tests need no session fixtures. Every process the demo starts is its child (each in its own
session), so the test follows the demo's descendants in /proc while it runs and checks that
none survives it.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 420


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0], fields[19]


class Descendants(threading.Thread):
    """Every process below ``root`` seen while it runs, as (pid, start time, command line)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.seen = root, {}  # type: ignore[var-annotated]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            parents: dict[int, int] = {}
            starts: dict[int, str] = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit() and (stat := _stat(int(entry))) is not None:
                    parents[int(entry)], starts[int(entry)] = stat[0], stat[2]
            below, frontier = set(), {self.root}
            while frontier:
                frontier = {pid for pid, parent in parents.items() if parent in frontier} - below
                below |= frontier
            for pid in below:
                if pid not in self.seen:
                    try:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        cmd = "?"
                    self.seen[pid] = (starts[pid], cmd.strip())
            self.done.wait(0.2)

    def survivors(self) -> list[str]:
        alive = []
        for pid, (start, cmd) in self.seen.items():
            stat = _stat(pid)
            if stat is not None and stat[2] == start and stat[1] != "Z":
                alive.append(f"{pid} {cmd}")
        return alive


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLGUARD_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _demo(tmp_path: Path, *flags: str, interrupt_when: str | None = None) -> tuple[int, str, dict[str, Any], list[str], Descendants]:
    out_dir = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "demo", "--fast", "--plain", "--out", str(out_dir), *flags],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = Descendants(proc.pid)
    watcher.start()
    lines: list[str] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if interrupt_when is not None and interrupt_when in line:
                proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
                interrupt_when = None
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo ran over {TIMEOUT_S} s:\n{''.join(lines[-40:])}")
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        time.sleep(0.5)  # one more look at /proc before the verdict
        watcher.done.set()
        watcher.join()
    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return code, "".join(lines), summary, watcher.survivors(), watcher


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 300, (path, width, height)


def _assert_story_ran(code: int, output: str, summary: dict[str, Any], survivors: list[str], watcher: Descendants) -> None:
    assert code == 0, output[-4000:]
    assert summary and not summary["interrupted"] and summary["error"] is None, output[-4000:]
    assert not survivors, f"still running after the demo: {survivors}"
    commands = " ".join(cmd for _, cmd in watcher.seen.values())
    # the real stack: a Kafka broker, moto over HTTP and the daemon as `rollguard run`
    assert "kafka.Kafka" in commands and "moto.server" in commands and "service.cli run" in commands
    assert [Path(p).name for p in summary["charts"]] == ["recall.png", "precision.png", "traffic.png", "comparison.png"]
    for chart in summary["charts"]:
        _assert_png(Path(chart))


def test_the_default_story_fails_at_the_gate_on_the_seeded_category(tmp_path: Path) -> None:
    code, output, summary, survivors, watcher = _demo(tmp_path)
    _assert_story_ran(code, output, summary, survivors, watcher)
    gate = summary["gate"]
    assert gate["state"] == "FAIL" and gate["exit_code"] == 1, output[-4000:]
    assert gate["deciding"] == {"metric": "recall", "segment": "merchant_category=5411"}
    assert gate["worst"]["difference"] > 0.08  # far beyond the tolerance ...
    assert summary["deploy"]["outcome"] == "not started"
    # ... shown moving from INCONCLUSIVE to FAIL, then gate's own table
    assert "v6-shadow-vs-v5 INCONCLUSIVE" in output
    assert "$ rollguard gate --spec" in output and "(exit 1: FAIL)" in output
    assert "v6-shadow-vs-v5: FAIL  fraud-ep, candidate variant v6-shadow" in output
    assert "decided by recall merchant_category=5411" in output


def test_a_good_v6_passes_the_gate_and_is_promoted_to_all_traffic(tmp_path: Path) -> None:
    code, output, summary, survivors, watcher = _demo(tmp_path, "--good")
    _assert_story_ran(code, output, summary, survivors, watcher)
    assert summary["gate"]["state"] == "PASS", output[-4000:]
    assert summary["deploy"]["outcome"] == "promoted" and summary["deploy"]["pct"] == 100, output[-4000:]
    assert "SageMaker shifts 10 % of fraud-ep's traffic to fraud-ep-v6" in output
    for pct in range(20, 101, 10):
        assert f"SageMaker shifts to {pct} %" in output
    assert "fraud-ep-v6 promoted, 100 % of traffic" in output


def test_a_regression_after_the_shift_is_rolled_back_by_the_verdict_alarm(tmp_path: Path) -> None:
    code, output, summary, survivors, watcher = _demo(tmp_path, "--regress-after-shift")
    _assert_story_ran(code, output, summary, survivors, watcher)
    assert summary["gate"]["state"] == "PASS", output[-4000:]
    deploy = summary["deploy"]
    assert deploy["outcome"] == "rolled back", output[-4000:]
    assert 30 <= deploy["pct"] < 100
    assert "rollguard-fraud-ep-verdict-fraud-v6-vs-v5" in deploy["alarms"]
    assert "injected a regression into fraud-v6 at 30 %" in output
    assert "fraud-v6-vs-v5 FAIL: error_rate" in output


@pytest.mark.parametrize("when", ["shadow phase:"])
def test_ctrl_c_stops_kafka_the_aws_api_and_the_daemon(tmp_path: Path, when: str) -> None:
    code, output, summary, survivors, watcher = _demo(tmp_path, "--good", interrupt_when=when)
    assert code == 130, output[-4000:]
    assert summary["interrupted"] is True
    assert "interrupted: stopping the traffic, the daemon, the AWS API and Kafka" in output
    commands = " ".join(cmd for _, cmd in watcher.seen.values())
    assert "kafka.Kafka" in commands and "moto.server" in commands and "service.cli run" in commands
    assert not survivors, f"still running after Ctrl-C: {survivors}"
