"""`rollguard gate`: judge a comparison once from the partitions' counts objects; exit with its state."""
from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipelines.comparison.config import Arm, Comparison, MetricSpec
from pipelines.comparison.tally import ComparisonTally
from service import verdicts
from service.checkpoint import LocalDirStore
from service.commands import gate
from service.settings import Settings, load_settings

CMP = Comparison("v6-vs-v5", "fraud-ep", Arm(variant="v5"), Arm(variant="v6-shadow"),
                 (MetricSpec("recall", 0.02), MetricSpec("error_rate", 0.005)), segments=("merchant_category",))
OTHER = Comparison("v7-vs-v6", "fraud-ep", Arm(variant="v6"), Arm(variant="v7-shadow"), (MetricSpec("recall", 0.02),))

Cells = Mapping[tuple[str, str, str | None, str | None], Sequence[float]]
#: 5 points worse pooled, 32 points in 5411: FAIL
FAILING: Cells = {("recall", "paired", None, None): [5000, 400, 150],
                  ("recall", "paired", "merchant_category", "5411"): [150, 52, 4],
                  ("error_rate", "unpaired", None, None): [216, 43_200, 30, 4_800]}
#: the same rates, many labels: shown within tolerance everywhere
PASSING: Cells = {("recall", "paired", None, None): [20_000, 100, 100],
                  ("error_rate", "unpaired", None, None): [50, 100_000, 50, 100_000]}
#: too few labels to tell
WAITING: Cells = {("recall", "paired", None, None): [40, 2, 1],
                  ("error_rate", "unpaired", None, None): [1, 100, 1, 100]}


def settings_for(state_dir: Path, **overrides: Any) -> Settings:
    return load_settings(_env_file=None, state_dir=str(state_dir), **overrides)


def tally(cells: Cells, comparison: Comparison = CMP, fingerprint: str | None = None) -> ComparisonTally:
    t = ComparisonTally(fingerprint or comparison.fingerprint(), shadow=True)
    for key, deltas in cells.items():
        t.add(key, deltas)
    return t


def halves(cells: Cells) -> list[Cells]:
    """The same counts split over two partitions (the verdict must come from their sum)."""
    first = {k: [v // 2 for v in vs] for k, vs in cells.items()}
    second = {k: [v - f for v, f in zip(vs, first[k])] for k, vs in cells.items()}
    return [first, second]


def write_counts(state_dir: Path, per_partition: Sequence[Mapping[str, ComparisonTally]],
                 settings: Settings | None = None) -> None:
    """One counts object per partition, as the daemons write them beside their checkpoints."""
    s = settings or settings_for(state_dir)
    store = LocalDirStore(state_dir)
    group = verdicts.prefix(s.group_id, s.captures_topic, s.labels_topic)
    for partition, tallies in enumerate(per_partition):
        store.save(verdicts.object_name(group, partition), verdicts.encode(partition, {"captures": 10}, tallies))


def spec_with(*comparisons: Comparison) -> Any:
    """A `comparisons` loader for main(): any path gives these comparisons."""
    return lambda path: comparisons


def run(argv: list[str], state_dir: Path, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    options.setdefault("settings", settings_for(state_dir))
    options.setdefault("comparisons", spec_with(CMP, OTHER))
    code = gate.main(argv, out=out, err=err, **options)
    return code, out.getvalue(), err.getvalue()


ARGS = ["--spec", "spec.yaml", "--comparison", "v6-vs-v5"]


@pytest.mark.parametrize("cells,code,state", [(FAILING, 1, "FAIL"), (PASSING, 0, "PASS"), (WAITING, 2, "INCONCLUSIVE")])
def test_exit_code_is_the_state_of_the_summed_partitions(tmp_path: Path, cells: Cells, code: int, state: str) -> None:
    write_counts(tmp_path, [{CMP.name: tally(half)} for half in halves(cells)])
    got, out, err = run(ARGS, tmp_path)
    assert got == code
    assert out.splitlines()[0].startswith(f"v6-vs-v5: {state}  fraud-ep, candidate variant v6-shadow vs baseline variant v5")
    assert err == ""


def test_fail_table_names_the_deciding_test(tmp_path: Path) -> None:
    write_counts(tmp_path, [{CMP.name: tally(FAILING), OTHER.name: tally({}, OTHER)}])
    code, out, _ = run(ARGS, tmp_path)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].endswith("decided by recall (pooled)")
    assert lines[2].split()[:5] == ["recall", "pooled", "FAIL", "*", "+5.00"]
    assert lines[3].split()[:3] == ["recall", "merchant_category=5411", "FAIL"]


def test_json(tmp_path: Path) -> None:
    write_counts(tmp_path, [{CMP.name: tally(half)} for half in halves(FAILING)])
    code, out, err = run([*ARGS, "--json"], tmp_path)
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["state"] == "FAIL" and doc["deciding"] == {"metric": "recall", "segment": None}
    assert doc["evidence"] == {"partitions": 2, "stale": {}, "unreadable": []}
    assert doc["problems"] == []
    pooled = next(r for r in doc["rows"] if r["metric"] == "recall" and r["segment"] is None)
    assert pooled["labels"] == 5000  # the two partitions' sum


def test_no_counts_at_all_is_inconclusive_and_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    code, out, err = run(ARGS, missing, settings=settings_for(missing))
    assert code == 2
    assert err.startswith(f"rollguard gate: warning: no comparison counts under {missing} "
                          "(objects rollguard.captures.labels.p<N>.comparisons.json): INCONCLUSIVE, no labels yet")
    assert "not judged (needs 30 more)" in out
    assert not missing.exists()  # looking creates nothing
    code, out, err = run([*ARGS, "--json"], missing, settings=settings_for(missing))
    doc = json.loads(out)
    assert code == 2 and doc["state"] == "INCONCLUSIVE" and doc["evidence"]["partitions"] == 0
    assert doc["problems"][0].startswith("no comparison counts under")


def test_stale_and_unreadable_objects_are_warnings(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    write_counts(tmp_path, [{CMP.name: tally(PASSING)}, {CMP.name: tally(FAILING, fingerprint="0" * 16)}])
    LocalDirStore(tmp_path).save("rollguard.captures.labels.p7.comparisons.json", b"{not json")
    code, out, err = run([*ARGS, "--json"], tmp_path, settings=s)
    assert code == 0  # the stale partition's counts are left out, not added
    doc = json.loads(out)
    assert doc["evidence"]["stale"] == {"v6-vs-v5": 1} and len(doc["evidence"]["unreadable"]) == 1
    warnings = err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("rollguard gate: warning: ") for w in warnings)
    assert "comparison counts rollguard.captures.labels.p7.comparisons.json" in warnings[0]
    assert "counted it under another definition" in warnings[1]
    assert doc["problems"] == [w.removeprefix("rollguard gate: warning: ") for w in warnings]


def test_partitions_without_this_comparison_are_pointed_out(tmp_path: Path) -> None:
    write_counts(tmp_path, [{OTHER.name: tally({}, OTHER)}])
    code, _, err = run(ARGS, tmp_path)
    assert code == 2
    assert "none of the 1 partition(s) counted comparison v6-vs-v5" in err


def test_the_consumer_groups_objects_only(tmp_path: Path) -> None:
    other_group = settings_for(tmp_path, group_id="someone-else")
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}], settings=other_group)
    code, _, err = run(ARGS, tmp_path)
    assert code == 2 and "no comparison counts" in err


def test_unknown_comparison_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = run(["--spec", "spec.yaml", "--comparison", "v9"], tmp_path)
    assert (code, out) == (3, "")
    assert err == "rollguard gate: spec spec.yaml has no comparison 'v9' (comparisons in it: v6-vs-v5, v7-vs-v6)\n"


def test_unreadable_spec_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = run(["--spec", str(tmp_path / "missing.yaml"), "--comparison", "x"], tmp_path,
                         comparisons=gate.load_comparisons)
    assert (code, out) == (3, "")
    assert err.startswith(f"rollguard gate: spec {tmp_path / 'missing.yaml'}: cannot read spec file")
    assert err.count("\n") == 1


def test_a_real_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("""
name: fraud
comparisons:
  - name: v6-vs-v5
    endpoint: fraud-ep
    baseline: {variant: v5}
    candidate: {variant: v6-shadow}
    metrics:
      recall: {tolerance: 0.02}
      error_rate: {tolerance: 0.005}
    segments: [merchant_category]
""")
    loaded = gate.find_comparison(str(spec), "v6-vs-v5")
    assert loaded.fingerprint() == CMP.fingerprint()
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}])
    code, _, _ = run(["--spec", str(spec), "--comparison", "v6-vs-v5"], tmp_path, comparisons=gate.load_comparisons)
    assert code == 1


@pytest.mark.parametrize("argv", [[], ["--spec", "s.yaml"], ["--comparison", "x"], [*ARGS, "--bogus"]])
def test_argument_errors_exit_3_not_2(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(argv, tmp_path)
    assert code == 3
    assert "usage: rollguard gate" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert gate.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 PASS, 1 FAIL, 2 INCONCLUSIVE (including: no counts yet), 3 could not judge" in text


def test_bad_settings_are_one_line_and_exit_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROLLGUARD_TICK_SECONDS", "-1")
    assert gate.main(ARGS, comparisons=spec_with(CMP)) == 3
    err = capsys.readouterr().err
    assert err.startswith("rollguard gate: invalid setting ROLLGUARD_TICK_SECONDS") and err.count("\n") == 1


def test_an_unreadable_state_location_is_exit_3(tmp_path: Path) -> None:
    class Broken:
        def load(self, name: str) -> bytes | None:
            return None

        def save(self, name: str, data: bytes) -> None:
            raise AssertionError("gate never writes")

        def names(self, prefix: str) -> list[str]:
            raise PermissionError(13, "Permission denied")

    code, _, err = run(ARGS, tmp_path, store=lambda settings: Broken())
    assert code == 3
    assert err == (f"rollguard gate: cannot read comparison counts from {tmp_path}: "
                   "PermissionError: [Errno 13] Permission denied\n")

    def no_region(settings: Settings) -> Broken:
        from botocore.exceptions import NoRegionError
        raise NoRegionError()

    s3 = load_settings(_env_file=None, state_dir="s3://bucket/state")
    code, _, err = run(ARGS, tmp_path, settings=s3, store=no_region)
    assert code == 3
    assert err == ("rollguard gate: cannot open ROLLGUARD_STATE_DIR='s3://bucket/state': NoRegionError: "
                   "You must specify a region. (set AWS_REGION)\n")
