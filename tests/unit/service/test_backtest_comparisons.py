"""`rollguard backtest` with comparisons: a shadow phase (v6-shadow scores every request v5 serves)
replayed by event time, each comparison decided at every simulated tick; a candidate worse on one
merchant category's recall FAILs on that segment, an equal one never FAILs."""
from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from alarms.evaluator import parse_time
from pipelines.comparison.config import Arm, Comparison, MetricSpec
from pipelines.verdict import State
from service.backtest.evaluation import run_backtest
from service.backtest.inputs import LocalFiles, read_lines
from service.commands.backtest import main
from service.settings import Settings, load_settings

START_MS = 1_795_251_600_000  # 2026-11-21T09:00:00Z
STEP_MS = 600  # one request every 0.6 s: 4000 in 40 minutes
REQUESTS = 4000
CATEGORIES = ("5411", "5812", "7995")
BAD = "5411"
TICK_MS = 60_000

COMPARISON_YAML = """
  - name: v6-vs-v5
    endpoint: fraud-ep
    baseline: {variant: v5}
    candidate: {variant: v6-shadow}
    metrics:
      recall: {tolerance: 0.02}
      precision: {tolerance: 0.02}
    segments: [merchant_category]
    min_samples: 30
    alpha: 0.01
"""
SPEC = "version: 1\nname: shadow\ncomparisons:" + COMPARISON_YAML
SPEC_WITH_ALARM = """
version: 1
name: shadow
endpoints:
  - name: fraud-ep
    variant: v5
    alarms:
      - {name: errors, metric: error_rate, threshold: 0.05, period: 60, evaluation_periods: 3}
comparisons:""" + COMPARISON_YAML

COMPARISON = Comparison(
    name="v6-vs-v5", endpoint="fraud-ep", baseline=Arm(variant="v5"), candidate=Arm(variant="v6-shadow"),
    metrics=(MetricSpec("recall", 0.02), MetricSpec("precision", 0.02)), segments=("merchant_category",),
)


def write_history(root: Path, *, worse: bool, seed: int = 3) -> tuple[Path, Path]:
    """Captures of v5 and of the shadow variant v6-shadow (same inference ids, 30 % frauds) and labels
    2-5 minutes later. v5 catches 90 % of frauds everywhere; the ``worse`` v6 catches 70 % on
    merchant category 5411 and 99 % elsewhere (pooled, about as good), the equal one 90 % everywhere,
    drawn independently of v5."""
    rng = random.Random(seed)
    captures: list[str] = []
    labels: list[str] = []
    for n in range(REQUESTS):
        ts = START_MS + n * STEP_MS
        iid = f"req-{n}"
        category = rng.choice(CATEGORIES)
        truth = int(rng.random() < 0.3)
        u, false_alarm = rng.random(), rng.random() < 0.05
        if worse:  # the same model family: v6 misses a subset of what v5 misses, or catches more
            v5, v6 = u < 0.9, u < (0.7 if category == BAD else 0.99)
        else:
            v5, v6 = u < 0.9, rng.random() < 0.9
        for variant, caught, shadow in (("v5", v5, False), ("v6-shadow", v6, True)):
            prediction = int(caught) if truth else int(false_alarm)
            captures.append(json.dumps({
                "inference_id": iid, "endpoint": "fraud-ep", "variant": variant, "shadow": shadow,
                "timestamp": ts + (3 if shadow else 0), "latency_ms": 12.0, "status": 200,
                "prediction": prediction, "attributes": {"merchant_category": category},
            }))
        labels.append(json.dumps({"inference_id": iid, "endpoint": "fraud-ep", "label": truth,
                                  "timestamp": ts + rng.randint(120_000, 300_000), "source": "disputes"}))
    root.mkdir(parents=True, exist_ok=True)
    caps, labs = root / "captures.jsonl", root / "labels.jsonl"
    caps.write_text("\n".join(captures) + "\n")
    rng.shuffle(labels)  # input order must not matter: the replay goes by event time
    labs.write_text("\n".join(labels) + "\n")
    return caps, labs


def settings() -> Settings:
    return load_settings(_env_file=None)


@pytest.fixture(scope="module")
def worse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_history(tmp_path_factory.mktemp("worse"), worse=True)


@pytest.fixture(scope="module")
def equal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_history(tmp_path_factory.mktemp("equal"), worse=False)


def run(inputs: tuple[Path, Path], spec_text: str, tmp: Path, *extra: str) -> tuple[int, str, str]:
    spec = tmp / "spec.yaml"
    spec.write_text(spec_text)
    out, err = io.StringIO(), io.StringIO()
    argv: Sequence[str] = ["--captures", str(inputs[0]), "--labels", str(inputs[1]), "--spec", str(spec), *extra]
    code = main(list(argv), settings=settings(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_a_candidate_worse_on_one_category_fails_on_that_segment(worse: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, err = run(worse, SPEC, tmp_path, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"alarms", "comparisons"} and doc["alarms"] == []
    (report,) = doc["comparisons"]
    assert report["name"] == "v6-vs-v5" and report["final"] == "FAIL"
    changes = report["changes"]
    assert changes[0]["state"] == "INCONCLUSIVE"
    fail = next(c for c in changes if c["state"] == "FAIL")
    assert fail["metric"] == "recall" and fail["segment"] == f"merchant_category={BAD}"
    lower, upper = fail["interval"]
    # v5 catches 90 % on 5411, v6 70 %: the harm is about 0.20 and the FAIL bound clears the tolerance
    assert 0.02 < lower <= fail["difference"] <= upper and 0.1 < fail["difference"] < 0.3
    assert 30 <= fail["labels"] < REQUESTS * 0.3  # that segment's paired frauds, not the pooled sample
    assert "note: segment attribute(s) merchant_category added" in err


def test_an_equal_candidate_never_fails(equal: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, err = run(equal, SPEC, tmp_path, "--json")
    assert code == 0, err
    (report,) = json.loads(out)["comparisons"]
    assert report["final"] in ("INCONCLUSIVE", "PASS")
    assert all(c["state"] != "FAIL" for c in report["changes"])


def test_changes_are_ticks_of_the_simulated_clock_in_order(worse: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, err = run(worse, SPEC, tmp_path, "--json")
    assert code == 0, err
    (report,) = json.loads(out)["comparisons"]
    changes = report["changes"]
    keys = {"at", "at_ms", "state", "metric", "segment", "difference", "interval", "labels"}
    assert all(set(c) == keys for c in changes)
    stamps = [c["at_ms"] for c in changes]
    assert stamps == sorted(set(stamps)) and all(t % TICK_MS == 0 for t in stamps)
    assert stamps[0] == START_MS + TICK_MS  # the first tick's state
    assert all(parse_time(c["at"]) * 1000 == c["at_ms"] for c in changes)
    assert all(a["state"] != b["state"] for a, b in zip(changes, changes[1:]))  # only changes are listed
    assert report["final"] == changes[-1]["state"]
    for c in changes:
        if c["state"] != "FAIL":  # no single test decides: the pooled sample of the first metric (recall)
            assert c["metric"] is None and c["segment"] is None and c["difference"] is None
            assert c["interval"] is None and isinstance(c["labels"], int)
    # the FAIL comes once the labels have: they arrive 2-5 minutes after their requests
    fail = next(c for c in changes if c["state"] == "FAIL")
    end_ms = START_MS + REQUESTS * STEP_MS + 300_000
    assert START_MS + 120_000 < fail["at_ms"] <= end_ms + TICK_MS


def test_alarms_and_comparisons_side_by_side(worse: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, err = run(worse, SPEC_WITH_ALARM, tmp_path, "--json")
    assert code == 0, err
    doc = json.loads(out)
    (alarm,) = doc["alarms"]
    assert alarm["alarm"] == "rollguard-fraud-ep-v5-errors" and alarm["fired"] == 0  # the alarm report as before
    assert [c["final"] for c in doc["comparisons"]] == ["FAIL"]


def test_the_table_prints_one_line_per_comparison(worse: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, err = run(worse, SPEC, tmp_path)
    assert code == 0, err
    (line,) = [ln for ln in out.splitlines() if ln.startswith("comparison ")]
    assert line.startswith("comparison v6-vs-v5: final FAIL; changes: 2026-11-21T09:01:00Z INCONCLUSIVE (")
    assert f"FAIL recall merchant_category={BAD} +" in line
    assert "publishing lag" not in out and "alarm  fired" not in out  # no alarms, no alarm table


def test_the_replay_decides_the_comparisons_it_is_given(worse: tuple[Path, Path]) -> None:
    lines = read_lines(LocalFiles(), str(worse[0]), "capture") + read_lines(LocalFiles(), str(worse[1]), "label")
    done = run_backtest((), lines, settings(), namespace="Rollguard", comparisons=(COMPARISON,))
    (result,) = done.comparisons
    assert result.comparison is COMPARISON and result.final is State.FAIL
    assert done.results == () and done.replay.captures == 2 * REQUESTS
    fail = next(c for c in result.changes if c.state is State.FAIL)
    assert (fail.metric, fail.segment) == ("recall", f"merchant_category={BAD}")
    # without comparisons the replay has none to report
    assert run_backtest((), lines[:10], settings(), namespace="Rollguard").comparisons == ()
