"""Comparisons on the real stack: the daemon publishes `Verdict` to the AWS API over HTTP,
`alarms apply` creates its fail-safe alarm, `gate` exits 0/1/2, `watch` sends UpdateEndpoint (to
a recording stub: moto has no UpdateEndpoint), `query` reads the history back, and one instance
or three judge the same counts."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.comparison.config import Arm, Comparison, MetricSpec
from service import verdicts
from service.checkpoint import LocalDirStore
from tests.integration.harness import Stack, http_get, produce, wait_for
from tests.integration.sagemaker_stub import SageMakerStub

SPEC = """\
name: verdicts
comparisons:
  - name: shadow-check
    endpoint: fraud-ep
    baseline: {variant: v5}
    candidate: {variant: v6-shadow}
    metrics:
      recall: {tolerance: 0.02}
      error_rate: {tolerance: 0.01}
    segments: [merchant_category]
  - name: calm
    endpoint: fraud-ep
    baseline: {variant: v5}
    candidate: {variant: v7-shadow}
    metrics:
      recall: {tolerance: 0.02}
  - name: unseen
    endpoint: fraud-ep
    baseline: {variant: v5}
    candidate: {variant: v9-shadow}
    metrics:
      recall: {tolerance: 0.02}
"""
CATEGORIES = ("5411", "5812", "7995")
SEGMENT_ENV = {"ROLLGUARD_SEGMENT_ATTRIBUTES": "merchant_category",
               "ROLLGUARD_SEGMENT_VALUES": "merchant_category=" + "|".join(CATEGORIES)}


def _traffic(n: int, seed: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], int]:
    """Shadow traffic: v6-shadow misses 60 % of the frauds in 5411, v7-shadow answers as v5 does.
    Returns capture and label records, and the number of labelled frauds v5 and v6 both scored."""
    rng = random.Random(seed)
    start = int(time.time() * 1000) - 600_000
    caps, labels, paired_positives = [], [], 0
    for i in range(n):
        iid = str(uuid.UUID(int=rng.getrandbits(128)))
        cat, truth = rng.choice(CATEGORIES), int(rng.random() < 0.3)
        ts = start + i * 100
        v5 = truth if rng.random() < 0.9 else 1 - truth
        v6 = 0 if (cat == "5411" and truth == 1 and rng.random() < 0.6) else v5
        error = rng.random() < 0.01
        for variant, pred, shadow in (("v5", v5, False), ("v6-shadow", v6, True), ("v7-shadow", v5, True)):
            msg: dict[str, Any] = {"inference_id": iid, "endpoint": "fraud-ep", "variant": variant, "shadow": shadow,
                                   "timestamp": ts, "latency_ms": 12.0, "attributes": {"merchant_category": cat}}
            if error and variant == "v5":
                msg.update(status=503, error="timeout")
            else:
                msg["prediction"] = pred
            caps.append((iid.encode(), json.dumps(msg).encode()))
        if rng.random() < 0.9:
            labels.append((iid.encode(), json.dumps({"inference_id": iid, "endpoint": "fraud-ep", "label": truth,
                                                      "timestamp": ts + 1000}).encode()))
            paired_positives += int(truth == 1 and not error)
    return caps, labels, paired_positives


def _cli(stack: Stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env={**stack.env, **(env or {})},
                          capture_output=True, text=True, timeout=120)


def _comparison(name: str, candidate: str) -> Comparison:
    metrics = (MetricSpec("recall", 0.02), MetricSpec("error_rate", 0.01)) if name == "shadow-check" else (
        MetricSpec("recall", 0.02),)
    return Comparison(name, "fraud-ep", Arm(variant="v5"), Arm(variant=candidate), metrics,
                      segments=("merchant_category",) if name == "shadow-check" else ())


def test_verdict_metric_alarm_gate_watch_and_query(
    kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path,
) -> None:
    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path, partitions=3)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    stack.env.update(SEGMENT_ENV, ROLLGUARD_SPEC=str(spec))
    # the verdict alarms, before any data: fail-safe, so they read ALARM until verdicts arrive
    applied = _cli(stack, "alarms", "apply", "--spec", str(spec))
    assert applied.returncode == 0, applied.stderr
    alarms = {a["AlarmName"]: a for a in stack.cloudwatch.describe_alarms(AlarmNamePrefix="rollguard-fraud-ep-verdict-")["MetricAlarms"]}
    assert set(alarms) == {f"rollguard-fraud-ep-verdict-{n}" for n in ("shadow-check", "calm", "unseen")}
    alarm = alarms["rollguard-fraud-ep-verdict-shadow-check"]
    assert alarm["TreatMissingData"] == "breaching" and alarm["Threshold"] == 2.0
    stat = next(m["MetricStat"] for m in alarm["Metrics"] if m["Id"] == "verdict")
    assert stat["Metric"]["MetricName"] == "Verdict" and stat["Stat"] == "Maximum"
    assert {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]} == {"EndpointName": "fraud-ep", "Comparison": "shadow-check"}
    assert _cli(stack, "alarms", "plan", "--spec", str(spec)).returncode == 0  # nothing left to change

    assert _cli(stack, "gate", "--spec", str(spec), "--comparison", "shadow-check").returncode == 2  # no counts yet
    caps, labels, _ = _traffic(3000, seed=11)
    produce(stack.bootstrap, stack.captures, caps)
    produce(stack.bootstrap, stack.labels, labels)
    proc = stack.start()
    try:
        dims = {"EndpointName": "fraud-ep", "Comparison": "shadow-check"}
        wait_for(lambda: stack.sums("Verdict", dims, "Maximum") == 2.0, 120, "a FAIL verdict in CloudWatch")

        def gate(name: str) -> subprocess.CompletedProcess[str]:
            return _cli(stack, "gate", "--spec", str(spec), "--comparison", name, "--json")

        failed = gate("shadow-check")
        assert failed.returncode == 1, failed.stderr
        doc = json.loads(failed.stdout)
        assert doc["state"] == "FAIL" and doc["deciding"]["metric"] == "recall"
        worst = next(r for r in doc["rows"] if r["state"] == "FAIL")
        assert worst["difference"] > 0.02 and worst["interval"][0] > 0.02
        wait_for(lambda: gate("calm").returncode == 0, 60, "the identical shadow to PASS")
        assert gate("unseen").returncode == 2  # no traffic: INCONCLUSIVE, never a guess
        wait_for(lambda: stack.sums("Verdict", {"EndpointName": "fraud-ep", "Comparison": "calm"}, "Minimum") == 0.0,
                 30, "a PASS verdict in CloudWatch")

        status, body = http_get(stack, "/v1/status")
        assert status == 200
        states = {c["name"]: c["state"] for c in json.loads(body)["comparisons"]}
        assert states == {"shadow-check": "FAIL", "calm": "PASS", "unseen": "INCONCLUSIVE"}

        with SageMakerStub({"fraud-ep": {"EndpointConfigName": "fraud-ep-v6"}}) as stub:
            dry = _cli(stack, "watch", "--comparison", "shadow-check", "--rollback-config", "fraud-ep-v5", "--once",
                       env={"ROLLGUARD_AWS_ENDPOINT_URL": stub.url})
            assert dry.returncode == 1 and stub.updates == []
            assert '"EndpointConfigName": "fraud-ep-v5"' in dry.stdout
            rolled = _cli(stack, "watch", "--comparison", "shadow-check", "--rollback-config", "fraud-ep-v5",
                          "--once", "--apply", env={"ROLLGUARD_AWS_ENDPOINT_URL": stub.url})
            assert rolled.returncode == 1, rolled.stderr
            assert stub.updates == [{"EndpointName": "fraud-ep", "EndpointConfigName": "fraud-ep-v5"}]

        history = _cli(stack, "query", "--endpoint", "fraud-ep", "--comparison", "shadow-check", "--since", "1h",
                       "--period", "60", "--json")
        assert history.returncode == 0, history.stderr
        assert "FAIL" in history.stdout
    finally:
        stack.stop(proc)


def test_one_instance_or_three_judge_the_same_counts(
    kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path,
) -> None:
    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path, partitions=6)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    stack.env.update(SEGMENT_ENV, ROLLGUARD_SPEC=str(spec))
    caps, labels, paired_positives = _traffic(2400, seed=12)
    produce(stack.bootstrap, stack.captures, caps)
    produce(stack.bootstrap, stack.labels, labels)
    comparisons = [_comparison("shadow-check", "v6-shadow"), _comparison("calm", "v7-shadow")]
    groups = {"one": 1, "three": 3}
    procs = []
    try:
        for group, instances in groups.items():
            env = {"ROLLGUARD_GROUP_ID": f"{stack.env['ROLLGUARD_GROUP_ID']}-{group}",
                   "ROLLGUARD_STATE_DIR": str(tmp_path / group)}
            procs += [stack.start(**env) for _ in range(instances)]

        def evidence(group: str) -> verdicts.Evidence:
            prefix = verdicts.prefix(f"{stack.env['ROLLGUARD_GROUP_ID']}-{group}", stack.captures, stack.labels)
            return verdicts.gather(LocalDirStore(tmp_path / group), prefix, comparisons)

        def complete(group: str) -> bool:
            counts = evidence(group).tally(comparisons[0]).counts(comparisons[0])
            pooled = counts.get(("recall", None))
            return pooled is not None and pooled.sample == paired_positives

        wait_for(lambda: all(complete(g) for g in groups), 180, "both groups to count every labelled fraud")
        one, three = evidence("one"), evidence("three")
        assert one.partitions == three.partitions == 6
        for c in comparisons:
            assert one.tally(c).cells == three.tally(c).cells
            assert one.verdict(c).state == three.verdict(c).state
        assert one.verdict(comparisons[0]).state.value == "FAIL"
    finally:
        for proc in procs:
            stack.stop(proc)
