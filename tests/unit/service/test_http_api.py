"""The status API: Prometheus rendering (parsed back line by line), the status table, the
record rate, the alarm poller, and the server itself on a loopback port with fake daemons."""
from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import urllib.error
import urllib.request
from collections import namedtuple
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from service import status
from service.commands import status as status_command
from service.http_api.alarm_states import AlarmPoller
from service.http_api.document import MAX_DIMENSION_CHARS, MAX_TEXT_CHARS, public_text, status_document
from service.http_api.prometheus import render_prometheus
from service.http_api.rate_meter import RateMeter
from service.http_api.server import MAX_CONNECTIONS, NOT_READY_REASON, _busy_response, readiness_of, start_server
from tests.unit.service.paging import Paginated

NOW_MS = 1_795_000_000_000

STATUS: dict[str, Any] = {
    "now_ms": NOW_MS,
    "window_seconds": 900.0,
    "min_samples": 30,
    "partitions": [0, 1, 2, 5],
    "ready": True,
    "series": [
        {
            "dimensions": {"EndpointName": "fraud-ep", "VariantName": "v5"},
            "gauges": {"Precision": 0.9, "PrecisionLowerBound": 0.85, "Recall": 0.75, "RecallLowerBound": 0.7,
                       "F1": 0.818, "ErrorRate": 0.01, "LabelCoverage": 0.8, "LatencyP50": 12.5,
                       "LatencyP90": 22.0, "LatencyP99": 39.9},
            "samples": {"Invocations": 1000.0, "Errors": 10.0, "Predictions": 990.0, "PositivePredictions": 100.0,
                        "TruePositives": 90.0, "FalsePositives": 10.0, "FalseNegatives": 30.0, "TrueNegatives": 662.0,
                        "Labeled": 792.0, "LatencySamples": 1000.0},
        },
        {
            "dimensions": {"EndpointName": "fraud-ep", "VariantName": "v6-shadow", "ModelVersion": "fraud-v6"},
            "gauges": {"ShadowAgreement": 0.95},
            "samples": {"Invocations": 12.0, "Predictions": 12.0, "TruePositives": 3.0, "FalsePositives": 1.0,
                        "ShadowAgreements": 950.0, "ShadowComparisons": 1000.0, "LatencySamples": 12.0},
        },
    ],
    "pending_joins": {"captures": 1234, "labels": 5},
    "join": {"captures": 2000, "labels": 1500, "duplicate_captures": 3, "repeated_labels": 2, "stale_labels": 0,
             "corrections": 7, "expired": 1, "orphan_labels": 4, "evicted_captures": 0, "evicted_labels": 0},
    "dead_letters": {"not_json": 2, "future_timestamp": 1},
    "consumer_lag": {"captures[0]": 10, "labels[0]": 0},
    "records": 3512,
    "ticks": 40,
    "last_tick_ms": NOW_MS - 1000,
    "last_checkpoint_ms": NOW_MS - 1000,
    "checkpoint_failures": 0,
    "started_ms": NOW_MS - 600_000,
    "publisher": {"sent_requests": 40, "sent_datums": 800, "failures": 2, "retries": 2, "rejected": 0,
                  "rejected_requests": 0, "dropped_too_old": 5, "dropped_too_new": 0, "dropped_invalid": 0,
                  "dropped_overflow": 0, "buffered_datums": 17, "buffered_batches": 1,
                  "last_success_ms": NOW_MS - 42_000, "last_error": None, "last_error_ms": None, "rejections": []},
    "records_per_second": 58.5,
    "alarms": {"prefix": "rollguard-", "checked_ms": NOW_MS - 30_000, "error": None, "error_ms": None, "failures": 0,
               "alarms": [{"name": "rollguard-fraud-ep-v5-recall", "state": "OK", "reason": "Threshold not crossed",
                           "updated_ms": NOW_MS - 3_600_000},
                          {"name": 'rollguard-fraud-ep-v6-"odd"\\name', "state": "ALARM", "reason": "Threshold crossed",
                           "updated_ms": NOW_MS - 60_000}]},
}


# -- a strict parser of the text format, independent of the renderer ----------------------

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str) -> dict[str, dict[str, Any]]:
    """{family: {"type", "help", "samples": {sorted labels tuple: value}}}; asserts the format's rules."""
    assert text.endswith("\n")
    families: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        assert line, f"line {n}: empty line"
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert name not in families, f"line {n}: second HELP for {name}"
            families[name] = {"help": re.sub(r"\\\\|\\n", lambda m: _UNESCAPE[m.group()], help_), "samples": {}}
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and "type" not in families[name], f"line {n}: TYPE out of place"
            assert kind in ("counter", "gauge"), f"line {n}: type {kind}"
            families[name]["type"] = kind
        else:
            assert not line.startswith("#"), f"line {n}: unknown comment"
            m = _SAMPLE_RE.match(line)
            assert m, f"line {n}: not a sample line: {line!r}"
            name, labels_text, value = m.groups()
            assert name == current and "type" in families[name], f"line {n}: sample {name} outside its family"
            labels: list[tuple[str, str]] = []
            pos = 0
            while labels_text and pos < len(labels_text):
                lm = _LABEL_RE.match(labels_text, pos)
                assert lm, f"line {n}: bad labels {labels_text!r}"
                labels.append((lm.group(1), re.sub(r'\\\\|\\"|\\n', lambda x: _UNESCAPE[x.group()], lm.group(2))))
                pos = lm.end()
            key = tuple(sorted(labels))  # label order carries no meaning in the format
            assert key not in families[name]["samples"], f"line {n}: duplicate sample"
            families[name]["samples"][key] = float(value)
    return families


def test_render_prometheus_parses_back_with_every_value() -> None:
    fams = parse_exposition(render_prometheus(STATUS))
    assert fams["rollguard_records_total"] == {"help": "Records consumed from the captures and labels topics.",
                                               "type": "counter", "samples": {(): 3512.0}}
    assert fams["rollguard_records_per_second"]["samples"] == {(): 58.5}
    assert fams["rollguard_consumer_lag"]["samples"] == {(("topic_partition", "captures[0]"),): 10.0,
                                                         (("topic_partition", "labels[0]"),): 0.0}
    assert fams["rollguard_pending_joins"]["samples"] == {(("kind", "captures"),): 1234.0, (("kind", "labels"),): 5.0}
    assert fams["rollguard_dead_letters_total"]["samples"] == {(("reason", "future_timestamp"),): 1.0,
                                                              (("reason", "not_json"),): 2.0}
    assert fams["rollguard_publish_failures_total"]["samples"] == {(): 2.0}
    assert fams["rollguard_published_datums_total"]["samples"] == {(): 800.0}
    assert fams["rollguard_last_publish_timestamp_seconds"]["samples"] == {(): (NOW_MS - 42_000) / 1000}
    assert fams["rollguard_buffered_datums"]["samples"] == {(): 17.0}
    assert fams["rollguard_checkpoint_failures_total"]["samples"] == {(): 0.0}
    assert fams["rollguard_publish_dropped_datums_total"]["samples"][(("reason", "too_old"),)] == 5.0
    for key, value in STATUS["join"].items():
        assert fams[f"rollguard_join_{key}_total"]["samples"] == {(): float(value)}
        assert fams[f"rollguard_join_{key}_total"]["type"] == "counter"
    window = fams["rollguard_window_gauge"]["samples"]
    assert window[(("endpoint", "fraud-ep"), ("gauge", "Recall"), ("model_version", ""), ("variant", "v5"))] == 0.75
    assert window[(("endpoint", "fraud-ep"), ("gauge", "ShadowAgreement"), ("model_version", "fraud-v6"),
                   ("variant", "v6-shadow"))] == 0.95
    states = fams["rollguard_alarm_state"]["samples"]
    odd = 'rollguard-fraud-ep-v6-"odd"\\name'  # quotes and backslashes survive the round trip
    assert states[(("alarm", odd), ("state", "ALARM"))] == 1.0
    assert states[(("alarm", odd), ("state", "OK"))] == 0.0
    assert sum(states.values()) == 2  # one current state per alarm
    for name, fam in fams.items():
        assert name.startswith("rollguard_")
        assert name.endswith("_total") == (fam["type"] == "counter"), name


def test_render_prometheus_of_an_empty_status_declares_families_without_samples() -> None:
    fams = parse_exposition(render_prometheus({}))
    assert fams["rollguard_ready"]["samples"] == {(): 0.0}
    assert fams["rollguard_records_total"]["samples"] == {}
    assert "rollguard_last_publish_timestamp_seconds" in fams


def test_escaping_of_label_values_and_help() -> None:
    nasty = 'a\\b"c\nd'
    text = render_prometheus({"join": {"two\nlines \\ here": 1},
                              "alarms": {"alarms": [{"name": nasty, "state": "OK"}]}})
    lines = text.splitlines()
    assert "# HELP rollguard_join_two_lines___here_total Join counter two\\nlines \\\\ here." in lines
    assert 'rollguard_alarm_state{alarm="a\\\\b\\"c\\nd",state="OK"} 1.0' in lines
    fams = parse_exposition(text)
    assert fams["rollguard_join_two_lines___here_total"] == {"help": "Join counter two\nlines \\ here.",
                                                           "type": "counter", "samples": {(): 1.0}}
    assert fams["rollguard_alarm_state"]["samples"][(("alarm", nasty), ("state", "OK"))] == 1.0


@pytest.mark.parametrize("value", [3, 3.0, 0.25, -1e-9, float("inf"), float("-inf"), float("nan"), 2.0**60,
                                   1_795_000_000.123])
def test_values_parse_back_as_go_reads_them(value: float) -> None:
    line = next(x for x in render_prometheus({"records_per_second": value}).splitlines()
                if x.startswith("rollguard_records_per_second "))
    text = line.split(" ", 1)[1]
    assert text in ("+Inf", "-Inf", "NaN") or re.fullmatch(r"-?[0-9.]+(e[+-][0-9]+)?", text), text
    parsed = parse_exposition(line.join(["# HELP rollguard_records_per_second h\n# TYPE rollguard_records_per_second gauge\n", "\n"]))
    got = parsed["rollguard_records_per_second"]["samples"][()]
    assert math.isnan(got) if math.isnan(value) else got == value


def test_every_exposed_name_is_a_classic_name_and_every_family_appears_once() -> None:
    text = render_prometheus({**STATUS, "join": {**STATUS["join"], "new-thing.x": 3, "__odd": 1}})
    fams = parse_exposition(text)  # refuses a second HELP for a name
    for name, fam in fams.items():
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name), name
        for labels in fam["samples"]:
            for label, _ in labels:
                assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) and not label.startswith("__"), (name, label)
    assert len([line for line in text.splitlines() if line.startswith("# TYPE ")]) == len(fams)


def test_unknown_join_keys_get_a_sanitised_family() -> None:
    fams = parse_exposition(render_prometheus({"join": {"new-thing.x": 3}}))
    assert fams["rollguard_join_new_thing_x_total"]["samples"] == {(): 3.0}


# -- the status table -----------------------------------------------------------------------


def test_render_status_table() -> None:
    text = status.render_status(STATUS)
    lines = text.splitlines()
    assert lines[0] == "rollguard: ready, partitions 0-2, 5, window 15 min, gauges need >= 30 samples"
    assert "3,512 records consumed (58.5/s over the last minute)" in lines[1]
    block = text.split("fraud-ep / v5 / all model versions\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block[0].split() == ["precision", "0.900", "n=100", "predicted", "positive,", "95", "%", "lower", "bound", "0.850"]
    assert block[1].split()[:3] == ["recall", "0.750", "n=120"]
    assert block[2].split()[:3] == ["F1", "0.818", "n=130"]
    assert "0.800  n=1,000 invocations, 792 labeled" in block[3]  # one label-coverage definition
    assert "0.0100  n=1,000 invocations, 10 errors" in block[4]
    assert block[5].split()[:4] == ["shadow", "agreement", "-", "n=0"]
    assert block[6].split() == ["latency", "(ms)", "p50", "12.5", "p90", "22.0", "p99", "39.9", "n=1,000"]
    shadow = text.split("fraud-ep / v6-shadow / model version fraud-v6\n", 1)[1]
    assert shadow.splitlines()[0].split() == ["precision", "-", "n=4", "predicted", "positive", "(below", "min",
                                              "samples", "30)"]
    assert "n=12 invocations, 0 labeled (below min samples 30)" in shadow
    assert "0.950  n=1,000 comparisons" in shadow
    assert "1,234 captures held for labels (until label_ttl), 5 labels waiting for a capture" in text
    assert "consumer lag      10 records (captures[0] 10)" in text
    assert "last publish      42 s ago (" in text and "17 datums buffered, 2 failures" in text
    assert "dead letters      3 written (not_json 2, future_timestamp 1)" in text
    assert "corrections 7" in text and "orphan labels 4" in text
    alarm_lines = text.split("alarms ", 1)[1].splitlines()
    assert alarm_lines[0].strip() == "2 named rollguard-*, checked 30 s ago"
    assert alarm_lines[1].split()[:2] == ["ALARM", 'rollguard-fraud-ep-v6-"odd"\\name']  # ALARM first
    assert alarm_lines[2].split()[:2] == ["OK", "rollguard-fraud-ep-v5-recall"]
    assert "since 60 min ago" in alarm_lines[2]


def test_render_status_of_a_fresh_daemon() -> None:
    text = status.render_status({"now_ms": NOW_MS, "ready": False, "alarms": {"error": "NoRegionError: x",
                                                                            "error_ms": NOW_MS, "failures": 1}})
    assert text.startswith("rollguard: NOT READY")
    assert "no series in the window yet" in text
    assert "last publish      never" in text
    assert "last poll failed 0 s ago: NoRegionError: x" in text


@pytest.mark.parametrize("then,age", [(NOW_MS - 5_000, "5 s ago"), (NOW_MS - 600_000, "10 min ago"),
                                      (NOW_MS - 3 * 3_600_000, "3.0 h ago"), (NOW_MS - 3 * 86_400_000, "3.0 d ago"),
                                      (None, "never"), (0, "never")])
def test_fmt_age(then: int | None, age: str) -> None:
    assert status.fmt_age(then, NOW_MS) == age


# -- the record rate ----------------------------------------------------------------------


def test_rate_meter_is_the_rate_over_the_last_minute() -> None:
    meter = RateMeter(60)
    assert meter.rate() is None
    meter.sample(0, 0)
    assert meter.rate() is None
    for t in range(5, 181, 5):  # 10/s for two minutes, then 100/s for the last minute
        meter.sample(t, meter._samples[-1][1] + (50 if t <= 120 else 500))
    assert meter.rate() == pytest.approx(100.0)
    meter.sample(185, 5)  # the counter went down: a new process; history starts again
    assert meter.rate() is None
    meter.sample(190, 55)
    assert meter.rate() == pytest.approx(10.0)


# -- the alarm poller ---------------------------------------------------------------------


class FakeAlarms(Paginated):
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []
        self.fail: Exception | None = None

    def describe_alarms(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.fail is not None:
            raise self.fail
        return self.pages[int(kwargs.get("NextToken", 0))]


UPDATED = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)


def alarm(name: str, state: str) -> dict[str, Any]:
    return {"AlarmName": name, "StateValue": state, "StateReason": f"{name} is {state}",
            "StateUpdatedTimestamp": UPDATED}


def test_alarm_poller_follows_pages_and_caches_states() -> None:
    client = FakeAlarms([{"MetricAlarms": [alarm("rollguard-b", "OK")], "NextToken": "1"},
                         {"MetricAlarms": [alarm("rollguard-a", "ALARM")]}])
    poller = AlarmPoller(lambda: client, now_ms=lambda: NOW_MS)
    assert poller.snapshot()["checked_ms"] is None
    assert poller.poll_once()
    snap = poller.snapshot()
    assert [a["name"] for a in snap["alarms"]] == ["rollguard-a", "rollguard-b"]
    assert snap["alarms"][0] == {"name": "rollguard-a", "state": "ALARM", "reason": "rollguard-a is ALARM",
                                 "updated_ms": int(UPDATED.timestamp() * 1000)}
    assert snap["checked_ms"] == NOW_MS and snap["error"] is None
    assert all(c["AlarmNamePrefix"] == "rollguard-" for c in client.calls)
    json.dumps(snap)


def test_alarm_poller_records_failures_and_keeps_the_last_good_states() -> None:
    client = FakeAlarms([{"MetricAlarms": [alarm("rollguard-a", "OK")]}])
    built = []

    def factory() -> FakeAlarms:
        built.append(1)
        if len(built) == 1:
            raise RuntimeError("no region")
        return client

    poller = AlarmPoller(factory, now_ms=lambda: NOW_MS)
    assert not poller.poll_once()  # the factory failed: recorded, not raised
    assert poller.snapshot()["error"] == "RuntimeError: no region"
    assert poller.poll_once()  # built again
    client.fail = ConnectionError("refused")
    assert not poller.poll_once()
    snap = poller.snapshot()
    assert snap["failures"] == 2 and snap["error"] == "ConnectionError: refused"
    assert [a["name"] for a in snap["alarms"]] == ["rollguard-a"]  # the last good states stay


# -- the server ---------------------------------------------------------------------------


class FakeDaemon:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.ready = threading.Event()
        self.stats = namedtuple("Stats", "records")(doc.get("records", 0))
        self.settings = namedtuple("S", "http_addr")("127.0.0.1:0")
        self.doc = doc
        self.fail = False

    def status(self) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("boom")
        return {k: v for k, v in self.doc.items() if k not in ("alarms", "records_per_second")}


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as ex:
        return ex.code, ex.headers["Content-Type"], ex.read().decode()


def test_server_endpoints(caplog: pytest.LogCaptureFixture) -> None:
    daemon = FakeDaemon(STATUS)
    client = FakeAlarms([{"MetricAlarms": [alarm("rollguard-fraud-ep-v5-recall", "ALARM")]}])
    with caplog.at_level(logging.INFO, logger="rollguard.http"):
        server = start_server(daemon, alarm_client=client)
    try:
        host, port = server.address
        assert port > 0
        assert f"http listening on 127.0.0.1:{port}" in caplog.messages
        base = server.url
        assert get(base + "/healthz")[:2] == (200, "text/plain; charset=utf-8")
        assert get(base + "/readyz")[0] == 503
        daemon.ready.set()
        assert get(base + "/readyz")[0] == 200
        code, ctype, body = get(base + "/v1/status")
        assert (code, ctype) == (200, "application/json")
        doc = json.loads(body)
        http_api_deadline(lambda: bool(server._poller.snapshot()["checked_ms"]))
        doc = json.loads(get(base + "/v1/status")[2])
        assert doc["alarms"]["alarms"][0]["state"] == "ALARM"
        assert doc["series"] == STATUS["series"] and doc["records"] == 3512
        code, ctype, body = get(base + "/metrics")
        assert (code, ctype) == (200, "text/plain; version=0.0.4; charset=utf-8")
        fams = parse_exposition(body)
        assert fams["rollguard_records_total"]["samples"] == {(): 3512.0}
        assert fams["rollguard_ready"]["samples"] == {(): 1.0}
        assert get(base + "/nope")[0] == 404
        daemon.fail = True
        code, _, body = get(base + "/v1/status")
        assert code == 500 and "RuntimeError: boom" in body
        assert get(base + "/healthz")[0] == 200  # one failing request does not take the API down
    finally:
        server.shutdown()
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=1)
    server.shutdown()  # idempotent


def http_api_deadline(predicate: Any, timeout_s: float = 5.0) -> None:
    event = threading.Event()
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        event.wait(0.02)
    raise AssertionError("condition not met in time")


def test_server_refuses_an_address_in_use_with_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(SystemExit, match=r"cannot serve HTTP on 127\.0\.0\.1:\d+ \(ROLLGUARD_HTTP_ADDR\)"):
            start_server(FakeDaemon({}), addr=addr, alarm_client=FakeAlarms([{}]))


# -- `rollguard status` against the server --------------------------------------------------


def test_status_command_prints_the_table_and_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = FakeDaemon(STATUS)
    server = start_server(daemon, alarm_client=FakeAlarms([{"MetricAlarms": []}]))
    try:
        addr = f"127.0.0.1:{server.address[1]}"
        assert status_command.main(["--addr", addr]) == 0
        out = capsys.readouterr().out
        assert out.startswith("rollguard: ready") and "fraud-ep / v5 / all model versions" in out
        assert status_command.main(["--addr", addr, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["pending_joins"] == {"captures": 1234, "labels": 5} and "alarms" in doc
    finally:
        server.shutdown()


def test_status_command_without_a_daemon_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    assert status_command.main(["--addr", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no rollguard daemon answering at http://127.0.0.1:{port}/v1/status" in err


def test_status_command_rejects_port_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert status_command.main(["--addr", "127.0.0.1:0"]) == 2
    assert "port 1..65535" in capsys.readouterr().err


@pytest.mark.parametrize("addr,url", [("0.0.0.0:8787", "http://127.0.0.1:8787/v1/status"),
                                      ("[::]:9000", "http://[::1]:9000/v1/status"),
                                      ("status.internal:80", "http://status.internal:80/v1/status")])
def test_status_url(addr: str, url: str) -> None:
    assert status.status_url(addr) == url


# -- the real daemon's status shape ---------------------------------------------------------


Record = namedtuple("Record", "key value offset headers timestamp")


class NoConsumer:
    def seek(self, partition: Any, offset: int) -> None: ...
    def pause(self, *partitions: Any) -> None: ...
    def resume(self, *partitions: Any) -> None: ...
    def commit(self, offsets: Any = None) -> None: ...


class Written:
    is_done = True

    def succeeded(self) -> bool: return True


class NoProducer:
    def send(self, *a: Any, **k: Any) -> Written: return Written()
    def flush(self, timeout: float | None = None) -> None: ...


class PutsNothing:
    def put_metric_data(self, **kwargs: Any) -> None: ...


def test_the_real_daemon_status_renders(tmp_path: Path) -> None:
    """Contract with service.daemon: its status() feeds /metrics and the table unchanged."""
    from kafka import TopicPartition

    from alarms.publisher import Publisher
    from pipelines.clock import MockedClock
    from service.checkpoint import LocalDirStore
    from service.daemon import Daemon
    from service.dead_letter import DeadLetters
    from service.settings import load_settings
    from service.devstack.traffic import generate
    from tests.unit.service.test_daemon import assign

    clock = MockedClock(NOW_MS)
    settings = load_settings(tick_seconds=1, min_samples=5, http_addr="127.0.0.1:0")
    daemon = Daemon(settings, consumer=NoConsumer(), dead_letters=DeadLetters(NoProducer(), "dlq"),  # type: ignore[arg-type]
                    publisher=Publisher(PutsNothing(), "Test", clock), store=LocalDirStore(tmp_path), clock=clock)
    caps_tp, labels_tp = TopicPartition(settings.captures_topic, 0), TopicPartition(settings.labels_topic, 0)
    assign(daemon, [caps_tp, labels_tp])
    traffic = generate(200, NOW_MS - 300_000, span_ms=200_000)
    daemon.process({caps_tp: [Record(k, v, i, [], NOW_MS) for i, (k, v) in enumerate(traffic.capture_records())],
                    labels_tp: [Record(k, v, i, [], NOW_MS) for i, (k, v) in enumerate(traffic.label_records())]})
    daemon.process({caps_tp: [Record(None, b"{nope", len(traffic.captures), [], NOW_MS)]})
    daemon.tick()
    doc = status_document(daemon.status(), {}, None)
    fams = parse_exposition(render_prometheus(json.loads(json.dumps(doc))))
    assert fams["rollguard_records_total"]["samples"] == {(): float(len(traffic.captures) + len(traffic.labels) + 1)}
    assert fams["rollguard_dead_letters_total"]["samples"] == {(("reason", "not_json"),): 1.0}
    assert fams["rollguard_buffered_datums"]["samples"][()] > 0
    assert fams["rollguard_join_captures_total"]["samples"][()] == len(traffic.captures)
    gauges = {dict(k)["gauge"] for k in fams["rollguard_window_gauge"]["samples"]}
    assert {"Precision", "Recall", "ErrorRate", "ShadowAgreement", "LatencyP99"} <= gauges
    text = status.render_status(doc)
    assert "fraud-ep / v5 / model version fraud-v5" in text and "fraud-ep / v6-shadow / all model versions" in text


# -- exposure: the bearer token, readiness reasons, what /v1/status carries ------------------


TOKEN = "s3cret-token-0123456789abcdef"


def get_with(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, Any, str]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as ex:
        return ex.code, ex.headers, ex.read().decode()


def test_server_header_names_no_python_version() -> None:
    server = start_server(FakeDaemon(STATUS), alarm_client=FakeAlarms([{}]))
    try:
        for path in ("/healthz", "/readyz", "/v1/status", "/nope"):
            assert get_with(server.url + path)[1]["Server"] == "rollguard"
    finally:
        server.shutdown()


def test_the_token_guards_status_and_metrics_but_not_the_probes() -> None:
    daemon = FakeDaemon(STATUS)
    server = start_server(daemon, alarm_client=FakeAlarms([{}]), token=TOKEN)
    try:
        base = server.url
        for path in ("/v1/status", "/metrics"):
            code, headers, body = get_with(base + path)
            assert code == 401 and headers["WWW-Authenticate"] == 'Bearer realm="rollguard"'
            assert "fraud-ep" not in body and "3512" not in body
            code, headers, _ = get_with(base + path, {"Authorization": f"Bearer {TOKEN}x"})
            assert code == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
            assert get_with(base + path, {"Authorization": f"Basic {TOKEN}"})[0] == 401
            assert get_with(base + path, method="HEAD")[0] == 401
            assert get_with(base + path, {"Authorization": f"bearer {TOKEN}"})[0] == 200  # the scheme is case-blind
        assert json.loads(get_with(base + "/v1/status", {"Authorization": f"Bearer {TOKEN}"})[2])["records"] == 3512
        assert get_with(base + "/healthz")[::2] == (200, "ok\n")
        assert get_with(base + "/readyz")[::2] == (503, "not ready: waiting for partition assignment and state restore\n")
        daemon.ready.set()
        assert get_with(base + "/readyz")[::2] == (200, "ready\n")
    finally:
        server.shutdown()


def test_the_token_comes_from_the_settings_or_a_file(tmp_path: Path) -> None:
    from service.settings import load_settings

    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    for settings in (load_settings(http_addr="127.0.0.1:0", http_token=TOKEN),
                     load_settings(http_addr="127.0.0.1:0", http_token_file=str(token_file))):
        daemon = FakeDaemon(STATUS)
        daemon.settings = settings  # type: ignore[assignment]
        server = start_server(daemon, alarm_client=FakeAlarms([{}]))
        try:
            assert get_with(server.url + "/metrics")[0] == 401
            assert get_with(server.url + "/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
            addr = f"127.0.0.1:{server.address[1]}"
            assert status_command.main(["--addr", addr, "--json"], settings=settings) == 0  # `rollguard status` sends it
        finally:
            server.shutdown()


def test_status_command_without_the_token_says_which_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from service.settings import load_settings

    server = start_server(FakeDaemon(STATUS), alarm_client=FakeAlarms([{}]), token=TOKEN)
    try:
        addr = f"127.0.0.1:{server.address[1]}"
        assert status_command.main(["--addr", addr], settings=load_settings()) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "HTTP 401" in err and "ROLLGUARD_HTTP_TOKEN" in err
        assert status_command.main(["--addr", addr], settings=load_settings(http_token="x" * 20)) == 2
        assert "the token does not match" in capsys.readouterr().err
    finally:
        server.shutdown()


class ReportingDaemon(FakeDaemon):
    """A daemon that says why it is not ready (service.daemon.Daemon.readiness)."""

    def __init__(self) -> None:
        super().__init__(STATUS)
        self.answer: tuple[bool, str] | Exception = (False, "cannot consume: broker unreachable for 45 s")

    def readiness(self) -> tuple[bool, str]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_readyz_says_the_daemons_reason() -> None:
    daemon = ReportingDaemon()
    daemon.ready.set()  # readiness() wins over the event when the daemon has it
    server = start_server(daemon, alarm_client=FakeAlarms([{}]))
    try:
        url = server.url + "/readyz"
        assert get_with(url)[::2] == (503, "not ready: cannot consume: broker unreachable for 45 s\n")
        daemon.answer = (False, "checkpoint failing: [Errno 28] No space left on device\nTraceback ...")
        assert get_with(url)[::2] == (503, "not ready: checkpoint failing: [Errno 28] No space left on device "
                                           "Traceback ...\n")
        daemon.answer = (False, "x" * 5000)
        code, _, body = get_with(url)
        assert code == 503 and len(body) <= len("not ready: \n") + MAX_TEXT_CHARS
        daemon.answer = (False, "cannot publish to CloudWatch for 60 s: rejected batch(es) tick-1: dimension "
                                "'merchant_category'=" + repr("4111111111111111" * 100))
        code, _, body = get_with(url)
        assert code == 503 and "4111111111111111" * 3 not in body and "merchant_category" in body
        daemon.answer = RuntimeError("secret detail")
        assert get_with(url)[::2] == (503, "not ready: readiness check failed (RuntimeError)\n")
        daemon.answer = (True, "consuming")
        assert get_with(url)[::2] == (200, "ready\n")
        assert get_with(url, method="HEAD")[0] == 200
    finally:
        server.shutdown()


def test_readiness_falls_back_to_the_ready_event() -> None:
    daemon = FakeDaemon({})
    assert readiness_of(daemon) == (False, NOT_READY_REASON)
    daemon.ready.set()
    assert readiness_of(daemon) == (True, "ready")


def test_public_text_keeps_names_and_drops_record_contents() -> None:
    assert public_text(None) is None
    assert public_text("a\nb\r\nc") == "a b c"
    value = "card=4111111111111111;" * 50
    text = public_text(f"dimension 'merchant_category'={value!r}: name must be 1..255 chars")
    assert text == "dimension 'merchant_category'='<1100 chars>': name must be 1..255 chars"
    assert public_text("InvalidParameterValue: " + "y" * 1000) == "InvalidParameterValue: <1000 chars>"
    assert len(public_text("yy " * 1000) or "") == MAX_TEXT_CHARS


def test_status_document_bounds_what_the_publisher_quotes_from_records() -> None:
    """A segment value is record content; CloudWatch refuses it over 1024 chars and the publisher quotes it."""
    import dataclasses

    from alarms.publisher import Publisher
    from pipelines.clock import MockedClock
    from pipelines.datum import Datum

    secret = "4111111111111111" * 200
    clock = MockedClock(NOW_MS)
    publisher = Publisher(PutsNothing(), "Test", clock)
    dims = (("EndpointName", "fraud-ep"), ("VariantName", "v5"), ("merchant_category", secret))
    publisher.enqueue("tick-1", [Datum("Invocations", dims, NOW_MS, value=1.0)])
    raw = dataclasses.asdict(publisher.stats())
    assert secret in raw["last_error"]  # what the daemon's status() carries
    raw["rejections"] = [(("tick-%d" % i,), f"InvalidParameterValue: {secret}") for i in range(150)]
    status_in = {"publisher": raw, "not_ready_reason": f"cannot publish: {secret}", "series": [{"dimensions": {"EndpointName": "e" * 5000, "VariantName": "v5"},
                                               "gauges": {}, "samples": {}}]}
    doc = json.loads(json.dumps(status_document(status_in, {"error": secret}, None), default=str))
    body = json.dumps(doc)
    assert "4111111111111111" * 3 not in body
    pub = doc["publisher"]
    assert len(pub["last_error"]) <= MAX_TEXT_CHARS and "tick-1" in pub["last_error"]
    assert "merchant_category" in pub["last_error"]  # the name stays, the value goes
    assert [ids for ids, _ in pub["rejections"]] == [[f"tick-{i}"] for i in range(140, 150)]
    assert len(doc["series"][0]["dimensions"]["EndpointName"]) == MAX_DIMENSION_CHARS
    assert doc["series"][0]["dimensions"]["VariantName"] == "v5"
    assert len(doc["alarms"]["error"]) <= MAX_TEXT_CHARS
    assert doc["not_ready_reason"] == "cannot publish: <3200 chars>"
    assert status.render_status(doc)  # the table still renders


# -- exposure: slow and idle clients, the connection cap ------------------------------------


def wait_closed(sock: socket.socket, bound_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes ``sock``; fails if it is still open after ``bound_s``."""
    sock.settimeout(bound_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {bound_s} s") from None
    return received


def test_slow_loris_clients_are_dropped_after_the_request_timeout() -> None:
    server = start_server(FakeDaemon(STATUS), alarm_client=FakeAlarms([{}]), request_timeout_s=0.3)
    silent = [socket.create_connection(server.address, timeout=10) for _ in range(MAX_CONNECTIONS + 4)]
    try:
        for sock in silent:  # the ones over the cap get a 503, the rest are cut when their time is up
            assert wait_closed(sock) in (b"", _busy_response())
        http_api_deadline(lambda: server.connections == 0, timeout_s=10)  # no thread left holding one
        assert get(server.url + "/healthz")[0] == 200
    finally:
        for sock in silent:
            sock.close()
        server.shutdown()


def test_a_client_trickling_headers_is_cut_at_the_request_deadline() -> None:
    server = start_server(FakeDaemon(STATUS), alarm_client=FakeAlarms([{}]), request_timeout_s=0.5)
    try:
        with socket.create_connection(server.address, timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(0.1)  # each header line comes well within any per-read timeout
            closed = False
            for i in range(100):  # 10 s at most
                try:
                    sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
                    closed = sock.recv(65536) == b""
                except TimeoutError:
                    continue
                except OSError:  # reset or broken pipe: closed too
                    closed = True
                if closed:
                    break
            assert closed, "the server kept a trickling client for 10 s"
        http_api_deadline(lambda: server.connections == 0, timeout_s=10)
    finally:
        server.shutdown()


def read_response(sock: socket.socket) -> bytes:
    """One HTTP response (headers and a Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    assert len(body) == length, "more than one response"
    return head + b"\r\n\r\n" + body


def test_keep_alive_works_and_an_idle_connection_is_closed() -> None:
    server = start_server(FakeDaemon(STATUS), alarm_client=FakeAlarms([{}]), idle_timeout_s=0.3)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        with socket.create_connection(server.address, timeout=10) as sock:
            sock.sendall(request)
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
            sock.sendall(request)  # the same connection serves the next request
            assert read_response(sock).endswith(b"\r\n\r\nok\n")
            assert wait_closed(sock) == b""  # then, idle, it is closed
        http_api_deadline(lambda: server.connections == 0, timeout_s=10)
    finally:
        server.shutdown()


class StepClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_connections_over_the_cap_get_503_at_once() -> None:
    clock = StepClock()  # the request deadlines pass when the test says so
    server = start_server(FakeDaemon(STATUS), alarm_client=FakeAlarms([{}]), monotonic=clock,
                          request_timeout_s=60, max_connections=3)
    silent = [socket.create_connection(server.address, timeout=10) for _ in range(3)]
    try:
        http_api_deadline(lambda: server.connections == 3, timeout_s=10)
        with socket.create_connection(server.address, timeout=10) as extra:
            answer = wait_closed(extra, bound_s=10)  # well before the 60 s request timeout
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"\r\nServer: rollguard\r\n" in answer and b"\r\nConnection: close\r\n" in answer
        assert get(server.url + "/healthz")[0] == 503  # a real client is told the same
        assert server.connections == 3  # and no thread was started for either
        clock.now += 61
        for sock in silent:
            assert wait_closed(sock) == b""
        http_api_deadline(lambda: server.connections == 0, timeout_s=10)
        assert get(server.url + "/healthz")[0] == 200
    finally:
        for sock in silent:
            sock.close()
        server.shutdown()
