"""`rollguard run --workers N`: the supervisor (restart with backoff, drain, exit codes) with fake
children, the pipes to a real one, and the parent's merged status, readiness and /metrics."""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from service.commands import run
from service.http_api.aggregate import merge_series, merge_status
from service.http_api.prometheus import render_prometheus
from service.settings import load_settings
from service.workers.link import LinkFds, ParentEnds, WorkerLink, read_reports
from service.workers.supervisor import RestartPolicy, Supervisor
from service.workers.view import WorkersView
from tests.unit.service.test_http_api import STATUS, parse_exposition

NOW = 1_795_000_000_000


class FakeProcess:
    def __init__(self, pid: int, exit_on_term: int | None = 0) -> None:
        self.pid, self.code, self.exit_on_term = pid, None, exit_on_term
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if self.exit_on_term is not None:
            self.code = self.exit_on_term

    def kill(self) -> None:
        self.code = -9


class FakeSpawn:
    """Each call is a new FakeProcess that (unless told otherwise) reports its API address."""

    def __init__(self, report: bool = True, exit_on_term: int | None = 0) -> None:
        self.processes: list[tuple[int, FakeProcess]] = []
        self.report, self.exit_on_term = report, exit_on_term

    def __call__(self, index: int, ends: ParentEnds) -> FakeProcess:
        process = FakeProcess(1000 + len(self.processes), self.exit_on_term)
        if self.report:
            os.write(ends.child.report, b'{"http": "127.0.0.1:%d"}\n' % (9000 + index))
        self.processes.append((index, process))
        return process

    def of(self, index: int) -> list[FakeProcess]:
        return [p for i, p in self.processes if i == index]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def wait_until(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_restart_policy_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(initial_s=1, factor=2, max_s=10)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]


def test_a_crashed_worker_is_restarted_after_its_backoff_and_counted() -> None:
    spawn, clock = FakeSpawn(), Clock()
    sup = Supervisor(2, spawn=spawn, monotonic=clock, policy=RestartPolicy(initial_s=1, factor=2, healthy_after_s=60))
    sup.start()
    wait_until(lambda: all(w.address for w in sup.workers))
    assert [w["address"] for w in sup.snapshot()] == ["127.0.0.1:9001", "127.0.0.1:9002"]
    spawn.of(1)[0].code = 1  # worker 1 crashes 5 s after its start
    clock.t += 5
    sup.check()
    assert sup.snapshot()[0] == {"worker": 1, "pid": None, "running": False, "restarts": 0, "last_exit": 1,
                                 "address": None}
    clock.t += 0.5
    sup.check()
    assert len(spawn.of(1)) == 1  # still backing off
    clock.t += 0.5
    sup.check()
    assert len(spawn.of(1)) == 2 and sup.workers[0].restarts == 1 and sup.failure is None
    spawn.of(1)[1].code = 1  # crashes again at once: twice the delay
    clock.t += 1
    sup.check()
    assert sup.workers[0].restart_at == clock.t + 2
    assert len(spawn.of(2)) == 1 and spawn.of(2)[0].signals == []  # the other worker is left alone


def test_a_worker_that_ran_long_enough_restarts_from_the_first_delay() -> None:
    spawn, clock = FakeSpawn(), Clock()
    sup = Supervisor(1, spawn=spawn, monotonic=clock, policy=RestartPolicy(initial_s=1, healthy_after_s=60))
    sup.start()
    wait_until(lambda: sup.workers[0].address is not None)  # it reported its API: it started, then crashed
    sup.workers[0].consecutive_crashes = 4
    spawn.of(1)[0].code = 1
    clock.t += 61
    sup.check()
    assert sup.workers[0].restart_at == clock.t + 1


def test_workers_that_cannot_start_end_the_run_with_their_exit_code() -> None:
    spawn = FakeSpawn(report=False)
    sup = Supervisor(2, spawn=spawn)
    stop = threading.Event()
    threading.Timer(0.05, lambda: setattr(spawn.of(1)[0], "code", 2)).start()
    assert sup.run(stop, interval_s=0.01) == 2
    assert sup.failure is not None and "worker 1 could not start (exit code 2)" in sup.failure[1]
    assert spawn.of(2)[0].signals == [signal.SIGTERM]  # the other one was drained


def test_stop_sends_sigterm_to_every_worker_and_waits_for_them() -> None:
    spawn = FakeSpawn()
    sup = Supervisor(3, spawn=spawn)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert sup.run(stop, interval_s=0.01) == 0
    assert [p.signals for _, p in spawn.processes] == [[signal.SIGTERM]] * 3
    assert all(w.process is None for w in sup.workers)


def test_a_failed_final_checkpoint_is_exit_code_2_and_a_worker_that_does_not_drain_is_killed() -> None:
    spawn = FakeSpawn()
    sup = Supervisor(2, spawn=spawn)
    sup.start()
    spawn.of(2)[0].exit_on_term = 2
    assert sup.drain() == 2

    stuck = FakeSpawn(exit_on_term=None)
    sup = Supervisor(1, spawn=stuck, drain_timeout_s=0.1)
    sup.start()
    assert sup.drain() == 1 and stuck.of(1)[0].code == -9


def test_the_pipes_to_a_real_worker_process() -> None:
    """A child reports through its end and sees EOF on the lifeline once the parent's end closes."""
    ends = ParentEnds.open()
    child = (
        "import os, sys, threading\n"
        "from service.workers.link import LinkFds, WorkerLink\n"
        f"link = WorkerLink(LinkFds.parse({ends.child.argument()!r}))\n"
        "stop = threading.Event()\n"
        "link.watch_parent(stop)\n"
        "link.report(http='127.0.0.1:4242')\n"
        "sys.exit(0 if stop.wait(20) else 3)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child], pass_fds=(ends.child.report, ends.child.lifeline))
    ends.close_child_ends()
    seen: list[dict[str, Any]] = []
    reader = threading.Thread(target=read_reports, args=(ends.report_read, seen.append))
    reader.start()
    wait_until(lambda: seen == [{"http": "127.0.0.1:4242"}], 20)
    os.close(ends.lifeline_write)  # what the parent's exit does, SIGKILL included
    assert proc.wait(timeout=20) == 0
    reader.join(5)
    assert not reader.is_alive()  # EOF: the reader closed its end
    with pytest.raises(ValueError, match="REPORT_FD,LIFELINE_FD"):
        LinkFds.parse("3")


def test_a_worker_link_whose_parent_is_gone_does_not_raise() -> None:
    read, write = os.pipe()
    os.close(read)
    WorkerLink(LinkFds(write, write)).report(http="x")  # EPIPE swallowed (SIGPIPE is ignored by Python)
    os.close(write)


# -- the parent's document -------------------------------------------------------------------------

def worker_doc(partitions: list[int], records: int, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(STATUS)
    doc.update(partitions=partitions, records=records, **changes)
    return doc


def test_merge_status_sums_counters_unions_partitions_and_keeps_a_section_per_worker() -> None:
    one = worker_doc([0, 1], 100, consumer_lag={"c[0]": 3}, last_tick_ms=5, state_hold=None)
    two = worker_doc([2], 50, consumer_lag={"c[2]": 4}, last_tick_ms=3, state_hold="disk full")
    two["publisher"] = {**STATUS["publisher"], "last_error": "newer", "last_error_ms": NOW + 1}
    workers = [{"worker": 1, "pid": 11, "running": True, "restarts": 0, "last_exit": None, "address": "a", "status": one},
               {"worker": 2, "pid": 12, "running": True, "restarts": 3, "last_exit": 1, "address": "b", "status": two}]
    doc = merge_status(workers, now_ms=NOW, started_ms=1)
    assert doc["partitions"] == [0, 1, 2] and doc["records"] == 150 and doc["worker_restarts"] == 3
    assert doc["join"]["captures"] == 2 * STATUS["join"]["captures"]
    assert doc["dead_letters"] == {k: 2 * v for k, v in STATUS["dead_letters"].items()}
    assert doc["consumer_lag"] == {"c[0]": 3, "c[2]": 4} and doc["last_tick_ms"] == 3
    assert doc["publisher"]["sent_datums"] == 2 * STATUS["publisher"]["sent_datums"]
    assert doc["state_hold"] == "worker 2: disk full" and doc["publisher"]["last_error"] == "newer"
    assert [(w["worker"], w["partitions"], w["restarts"]) for w in doc["workers"]] == [(1, [0, 1], 0), (2, [2], 3)]
    assert "series" in doc["workers"][0]


def test_merged_series_recompute_rates_from_summed_samples_and_bound_the_percentiles() -> None:
    a = {"dimensions": {"EndpointName": "e", "VariantName": "v"}, "gauges": {"LatencyP99": 30.0},
         "samples": {"TruePositives": 40.0, "FalsePositives": 0.0, "Predictions": 40.0, "PositivePredictions": 40.0,
                     "LatencySamples": 20.0}}
    b = {"dimensions": {"VariantName": "v", "EndpointName": "e"}, "gauges": {"LatencyP99": 50.0},
         "samples": {"TruePositives": 20.0, "FalsePositives": 40.0, "Predictions": 60.0, "PositivePredictions": 60.0,
                     "LatencySamples": 20.0}}
    [merged] = merge_series([[a], [b]], min_samples=30)
    assert merged["samples"]["TruePositives"] == 60 and merged["samples"]["LatencySamples"] == 40
    assert merged["gauges"]["Precision"] == pytest.approx(60 / 100)
    assert merged["gauges"]["LatencyP99"] == 50.0  # neither worker alone had 30 latency samples, both do
    [alone] = merge_series([[a]], min_samples=30)
    assert "Precision" in alone["gauges"] and "LatencyP99" not in alone["gauges"]


def test_metrics_of_the_merged_document_have_each_family_once_plus_per_worker_ones() -> None:
    workers = [{"worker": i, "pid": i, "running": True, "restarts": i - 1, "last_exit": None, "address": "x",
                "status": worker_doc([i], 10 * i)} for i in (1, 2)]
    doc = {**merge_status(workers, now_ms=NOW, started_ms=1), "ready": True}
    families = parse_exposition(render_prometheus(doc))
    assert families["rollguard_records_total"]["samples"] == {(): 30.0}
    assert families["rollguard_worker_restarts_total"]["samples"] == {(("worker", "1"),): 0.0,
                                                                     (("worker", "2"),): 1.0}
    assert families["rollguard_worker_partitions_owned"]["samples"][(("worker", "2"),)] == 1.0
    assert families["rollguard_workers"]["samples"] == {(): 2.0}
    window = families["rollguard_window_gauge"]["samples"]
    assert len(window) == len(set(window))


class FakeSupervisor:
    def __init__(self, slots: list[dict[str, Any]]) -> None:
        self.slots = slots
        self.workers = [type("W", (), {"index": s["worker"]})() for s in slots]

    def snapshot(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.slots]


def test_the_parent_is_ready_only_when_every_worker_is_and_names_the_one_that_is_not() -> None:
    slots = [{"worker": 1, "pid": 1, "running": True, "restarts": 0, "last_exit": None, "address": "127.0.0.1:1"},
             {"worker": 2, "pid": 2, "running": True, "restarts": 0, "last_exit": None, "address": "127.0.0.1:2"}]
    docs = {"1": worker_doc([0], 5, ready=True, not_ready_reason=None),
            "2": worker_doc([1], 7, ready=False, not_ready_reason="checkpoint failing: disk full")}
    tokens: list[str | None] = []

    def fetch(url: str, timeout_s: float, token: str | None) -> dict[str, Any]:
        tokens.append(token)
        return docs[url.split(":")[2].split("/")[0]]

    settings = load_settings(_env_file=None, http_token="t" * 16)
    view = WorkersView(settings, FakeSupervisor(slots), fetch=fetch)  # type: ignore[arg-type]
    assert view.readiness() == (False, "worker 1: starting")
    doc = view.status()
    assert tokens == ["t" * 16] * 2  # the workers' APIs take the same token
    assert view.readiness() == (False, "worker 2: checkpoint failing: disk full") and not view.ready.is_set()
    assert doc["ready"] is False and doc["not_ready_reason"] == "worker 2: checkpoint failing: disk full"
    assert doc["records"] == 12 and view.stats.records == 12
    docs["2"] = worker_doc([1], 7, ready=True, not_ready_reason=None)
    view.refresh()
    assert view.readiness() == (True, "ready") and view.ready.is_set()
    slots[1].update(running=False, pid=None, address=None, last_exit=1)
    view.refresh()
    assert view.readiness() == (False, "worker 2 is not running (exit code 1), restart 1 pending")
    view.stop()


# -- the command -----------------------------------------------------------------------------------

@pytest.fixture
def state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    monkeypatch.setenv("ROLLGUARD_STATE_DIR", str(tmp_path / "state"))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield tmp_path
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_a_wrong_worker_count_is_one_line(value: str, state_dir: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--workers", value]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"rollguard: invalid --workers {value!r}: must be a whole number >= 1 and <= 64"]


def test_the_setting_picks_the_supervisor_and_one_worker_the_process_itself(
        state_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    def pool(settings: Any, stop: threading.Event, *, count: int, log_level: str, started: Any) -> int:
        calls.append(("pool", count))
        return 2

    def serve(settings: Any, stop: threading.Event, started: Any) -> Any:
        calls.append(("serve", settings.workers))

    monkeypatch.setenv("ROLLGUARD_WORKERS", "3")
    assert run.main([], serve_daemon=serve, serve_pool=pool) == 2
    assert run.main(["--workers", "1"], serve_daemon=serve, serve_pool=pool) == 0
    assert calls == [("pool", 3), ("serve", 3)]


def test_first_come_segments_need_one_worker(state_dir: Any, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROLLGUARD_SEGMENT_ATTRIBUTES", "merchant_category")
    monkeypatch.setenv("ROLLGUARD_SEGMENT_FIRST_COME", "true")
    settings = load_settings(_env_file=None)
    assert run.worker_count(None, settings) == 1  # by default: quietly one
    assert "ROLLGUARD_SEGMENT_FIRST_COME=true admits them per process" in str(run.worker_count("2", settings))
