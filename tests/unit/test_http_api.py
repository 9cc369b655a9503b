"""The status API: Prometheus rendering (parsed back line by line), the status table, the
record rate, the alarm poller, and the server itself on a loopback port with fake daemons."""
from __future__ import annotations

import json
import logging
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

from service import http_api, status
from service.http_api import (
    AlarmPoller,
    Family,
    RateMeter,
    Sample,
    escape_label_value,
    format_value,
    render_families,
    render_prometheus,
    start_server,
)

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
    """{family: {"type", "help", "samples": {labels tuple: value}}}; asserts the format's rules."""
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
            key = tuple(labels)
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
    assert window[(("endpoint", "fraud-ep"), ("variant", "v5"), ("model_version", ""), ("gauge", "Recall"))] == 0.75
    assert window[(("endpoint", "fraud-ep"), ("variant", "v6-shadow"), ("model_version", "fraud-v6"),
                   ("gauge", "ShadowAgreement"))] == 0.95
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
    assert escape_label_value(nasty) == 'a\\\\b\\"c\\nd'
    text = render_families([Family("x_total", "counter", "two\nlines \\ here", (Sample((("k", nasty),), 1),))])
    assert text == '# HELP x_total two\\nlines \\\\ here\n# TYPE x_total counter\nx_total{k="a\\\\b\\"c\\nd"} 1\n'
    assert parse_exposition(text)["x_total"] == {"help": "two\nlines \\ here", "type": "counter",
                                                 "samples": {(("k", nasty),): 1.0}}


@pytest.mark.parametrize("value,text", [(3, "3"), (3.0, "3"), (0.25, "0.25"), (-1e-9, "-1e-09"),
                                        (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (float("nan"), "NaN"),
                                        (2.0**60, "1.152921504606847e+18")])
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_invalid_names_and_duplicate_families_are_refused() -> None:
    with pytest.raises(ValueError, match="metric name"):
        Family("bad-name", "gauge", "h")
    with pytest.raises(ValueError, match="label name"):
        Family("ok", "gauge", "h", (Sample((("bad-label", "v"),), 1),))
    with pytest.raises(ValueError, match="rendered twice"):
        render_families([Family("a", "gauge", "h"), Family("a", "gauge", "h")])


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
    assert "0.800  n=990 predictions, 792 labeled" in block[3]
    assert "0.0100  n=1,000 invocations, 10 errors" in block[4]
    assert block[5].split()[:4] == ["shadow", "agreement", "-", "n=0"]
    assert block[6].split() == ["latency", "(ms)", "p50", "12.5", "p90", "22.0", "p99", "39.9", "n=1,000"]
    shadow = text.split("fraud-ep / v6-shadow / model version fraud-v6\n", 1)[1]
    assert shadow.splitlines()[0].split() == ["precision", "-", "n=4", "predicted", "positive", "(below", "min",
                                              "samples", "30)"]
    assert "n=12 predictions, 0 labeled (below min samples 30)" in shadow
    assert "0.950  n=1,000 comparisons" in shadow
    assert "1,234 captures held for labels (until label_ttl), 5 labels waiting for a capture" in text
    assert "consumer lag      10 records (captures[0] 10)" in text
    assert "last publish      42 s ago (" in text and "17 datums buffered, 2 failures" in text
    assert "dead letters      3 (not_json 2, future_timestamp 1)" in text
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


class FakeAlarms:
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
        assert status.main(["--addr", addr]) == 0
        out = capsys.readouterr().out
        assert out.startswith("rollguard: ready") and "fraud-ep / v5 / all model versions" in out
        assert status.main(["--addr", addr, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["pending_joins"] == {"captures": 1234, "labels": 5} and "alarms" in doc
    finally:
        server.shutdown()


def test_status_command_without_a_daemon_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    assert status.main(["--addr", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no rollguard daemon answering at http://127.0.0.1:{port}/v1/status" in err


def test_status_command_rejects_port_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert status.main(["--addr", "127.0.0.1:0"]) == 2
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
    def commit(self, offsets: Any = None) -> None: ...


class NoProducer:
    def send(self, *a: Any, **k: Any) -> None: ...
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
    from service.traffic import generate

    clock = MockedClock(NOW_MS)
    settings = load_settings(tick_seconds=1, min_samples=5, http_addr="127.0.0.1:0")
    daemon = Daemon(settings, consumer=NoConsumer(), dead_letters=DeadLetters(NoProducer(), "dlq"),  # type: ignore[arg-type]
                    publisher=Publisher(PutsNothing(), "Test", clock), store=LocalDirStore(tmp_path), clock=clock)
    caps_tp, labels_tp = TopicPartition(settings.captures_topic, 0), TopicPartition(settings.labels_topic, 0)
    daemon.on_partitions_assigned([caps_tp, labels_tp])
    traffic = generate(200, NOW_MS - 300_000, span_ms=200_000)
    daemon.process({caps_tp: [Record(k, v, i, [], NOW_MS) for i, (k, v) in enumerate(traffic.capture_records())],
                    labels_tp: [Record(k, v, i, [], NOW_MS) for i, (k, v) in enumerate(traffic.label_records())]})
    daemon.process({caps_tp: [Record(None, b"{nope", len(traffic.captures), [], NOW_MS)]})
    daemon.tick()
    doc = http_api.status_document(daemon.status(), {}, None)
    fams = parse_exposition(render_prometheus(json.loads(json.dumps(doc))))
    assert fams["rollguard_records_total"]["samples"] == {(): float(len(traffic.captures) + len(traffic.labels) + 1)}
    assert fams["rollguard_dead_letters_total"]["samples"] == {(("reason", "not_json"),): 1.0}
    assert fams["rollguard_buffered_datums"]["samples"][()] > 0
    assert fams["rollguard_join_captures_total"]["samples"][()] == len(traffic.captures)
    gauges = {dict(k)["gauge"] for k in fams["rollguard_window_gauge"]["samples"]}
    assert {"Precision", "Recall", "ErrorRate", "ShadowAgreement", "LatencyP99"} <= gauges
    text = status.render_status(doc)
    assert "fraud-ep / v5 / model version fraud-v5" in text and "fraud-ep / v6-shadow / all model versions" in text
