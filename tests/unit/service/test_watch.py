"""`rollguard watch`: judge after the deploy; on FAIL print, or send, the UpdateEndpoint rollback.

The --apply tests send through a real boto3 client (the command's own factory, retries and
all) to tests/integration/sagemaker_stub.py over loopback HTTP; no Kafka, no moto.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.commands import watch
from service.settings import Settings
from tests.integration.sagemaker_stub import SageMakerStub, endpoint_arn
from tests.unit.service.test_gate import CMP, FAILING, PASSING, WAITING, settings_for, spec_with, tally, write_counts

ARGS = ["--spec", "spec.yaml", "--comparison", "v6-vs-v5", "--rollback-config", "fraud-ep-v5"]
ROLLBACK = {"EndpointName": "fraud-ep", "EndpointConfigName": "fraud-ep-v5"}
T0 = 1_794_985_600.0  # 2026-11-18T07:06:40Z


class Clock:
    """Injected time: ``sleep`` advances ``now`` and runs the test's hook (new counts arrive)."""

    def __init__(self, on_sleep: Callable[[int], None] = lambda n: None) -> None:
        self.now, self.on_sleep = T0, on_sleep
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep(len(self.sleeps))


def run(argv: list[str], settings: Settings, clock: Clock | None = None, **options: Any) -> tuple[int, str, str]:
    clock = clock or Clock()
    out, err = io.StringIO(), io.StringIO()
    options.setdefault("comparisons", spec_with(CMP))
    code = watch.main(argv, settings=settings, clock=clock.time, sleep=clock.sleep, out=out, err=err, **options)
    return code, out.getvalue(), err.getvalue()


def no_client(settings: Settings) -> Any:
    raise AssertionError("no SageMaker call without --apply")


@pytest.fixture()
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[SageMakerStub]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with SageMakerStub({"fraud-ep": {"EndpointConfigName": "fraud-ep-v6"}}) as s:
        yield s


def aws_settings(state_dir: Path, stub: SageMakerStub, **overrides: Any) -> Settings:
    return settings_for(state_dir, aws_endpoint_url=stub.url, aws_region="us-east-1", **overrides)


# -- without --apply -------------------------------------------------------------------------


def test_once_on_fail_prints_the_request_and_the_table_and_sends_nothing(tmp_path: Path) -> None:
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}])
    code, out, err = run([*ARGS, "--once"], settings_for(tmp_path), sagemaker=no_client)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == ("2026-11-18T07:06:40Z v6-vs-v5: FAIL  fraud-ep, candidate variant v6-shadow vs baseline "
                        "variant v5, alpha 0.01, decided by recall (pooled)")
    assert lines[1] == lines[0].split(" ", 1)[1]  # the table's own header
    assert lines[3].split()[:4] == ["recall", "pooled", "FAIL", "*"]
    request = json.loads(out[out.index("{"):])
    assert request == ROLLBACK  # exactly: no RetainAllVariantProperties, no DeploymentConfig
    assert err == "rollguard watch: FAIL: the UpdateEndpoint request above was not sent (add --apply to send it)\n"


@pytest.mark.parametrize("cells,code", [(PASSING, 0), (WAITING, 2), (None, 2)])
def test_once_exits_with_gates_codes(tmp_path: Path, cells: Any, code: int) -> None:
    if cells is not None:
        write_counts(tmp_path, [{CMP.name: tally(cells)}])
    got, out, _ = run([*ARGS, "--once"], settings_for(tmp_path), sagemaker=no_client)
    assert got == code
    assert "EndpointConfigName" not in out


def test_keeps_judging_every_interval_until_fail(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, tick_seconds=30)

    def labels_arrive(looks: int) -> None:
        cells = {1: WAITING, 2: WAITING, 3: PASSING, 4: FAILING}.get(looks)
        if cells is not None:
            write_counts(tmp_path, [{CMP.name: tally(cells)}])

    clock = Clock(labels_arrive)
    code, out, err = run(ARGS, settings, clock, sagemaker=no_client)
    assert code == 1
    assert clock.sleeps == [30.0] * 4  # the tick setting by default
    stamps = [line.split(" ", 2)[:2] for line in out.splitlines() if line.startswith("2026-")]
    # one line per change of state: no counts, then labels (still INCONCLUSIVE: no new line), PASS, FAIL
    assert stamps == [["2026-11-18T07:06:40Z", "v6-vs-v5:"], ["2026-11-18T07:08:10Z", "v6-vs-v5:"],
                      ["2026-11-18T07:08:40Z", "v6-vs-v5:"]]
    states = [line.split()[2] for line in out.splitlines() if line.startswith("2026-")]
    assert states == ["INCONCLUSIVE", "PASS", "FAIL"]
    assert json.loads(out[out.index("{"):]) == ROLLBACK
    # the no-counts warning once, not at every look
    assert err.count("no comparison counts") == 1


def test_interval_flag_and_a_transient_read_failure(tmp_path: Path) -> None:
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}])
    real = watch.gate.state_store(settings_for(tmp_path))
    calls = {"n": 0}

    class Flaky:
        def load(self, name: str) -> bytes | None:
            return real.load(name)

        def save(self, name: str, data: bytes) -> None:
            raise AssertionError("watch never writes")

        def names(self, prefix: str) -> list[str]:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ConnectionError("S3 went away")
            return real.names(prefix)

    clock = Clock()
    code, _, err = run([*ARGS, "--interval", "5"], settings_for(tmp_path), clock, store=lambda s: Flaky(),
                       sagemaker=no_client)
    assert code == 1 and clock.sleeps == [5.0]
    assert err.startswith("rollguard watch: warning: cannot read comparison counts from")
    assert "ConnectionError: S3 went away; looking again in 5 s" in err


def test_spec_comes_from_the_settings_or_is_required(tmp_path: Path) -> None:
    write_counts(tmp_path, [{CMP.name: tally(PASSING)}])
    args = ["--comparison", "v6-vs-v5", "--rollback-config", "fraud-ep-v5", "--once"]
    seen: list[str] = []

    def loader(path: str) -> Any:
        seen.append(path)
        return (CMP,)

    code, _, _ = run(args, settings_for(tmp_path, spec="from-settings.yaml"), comparisons=loader)
    assert code == 0 and seen == ["from-settings.yaml"]
    code, _, err = run(args, settings_for(tmp_path))
    assert code == 3 and err == "rollguard watch: name the spec with the comparison: --spec S or ROLLGUARD_SPEC\n"


@pytest.mark.parametrize("argv,message", [
    (["--comparison", "v6-vs-v5"], "--rollback-config"),
    ([*ARGS[:-1], "not_a_config!"], "--rollback-config must be an endpoint config name"),
    ([*ARGS, "--interval", "0"], "--interval must be seconds in (0, 86400]"),
    ([*ARGS, "--interval", "soon"], "--interval must be seconds"),
])
def test_argument_errors_exit_3(tmp_path: Path, argv: list[str], message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(argv, settings_for(tmp_path))
    assert code == 3
    assert message in capsys.readouterr().err


def test_unknown_comparison_exit_3(tmp_path: Path) -> None:
    code, _, err = run(["--spec", "s.yaml", "--comparison", "nope", "--rollback-config", "x"], settings_for(tmp_path))
    assert code == 3 and "has no comparison 'nope' (comparisons in it: v6-vs-v5)" in err


def test_interrupted(tmp_path: Path) -> None:
    def interrupt(looks: int) -> None:
        raise KeyboardInterrupt

    code, _, err = run(ARGS, settings_for(tmp_path), Clock(interrupt), sagemaker=no_client)
    assert code == 130 and err.endswith("rollguard watch: interrupted (last state INCONCLUSIVE)\n")


# -- with --apply, against the SageMaker stub over HTTP ------------------------------------------


def test_apply_sends_the_rollback(tmp_path: Path, stub: SageMakerStub) -> None:
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}])
    code, out, err = run([*ARGS, "--apply"], aws_settings(tmp_path, stub))
    assert code == 1
    assert stub.updates == [ROLLBACK]
    assert [op for op, _ in stub.requests] == ["DescribeEndpoint", "UpdateEndpoint"]
    assert json.loads(out[out.index("{"):]) == ROLLBACK
    assert err == f"rollguard watch: rolling fraud-ep back to endpoint config fraud-ep-v5 ({endpoint_arn('fraud-ep')})\n"


def test_apply_retries_throttling_and_5xx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}])
    failures = {"UpdateEndpoint": [(400, "ThrottlingException"), (503, "ServiceUnavailable")]}
    with SageMakerStub({"fraud-ep": {"EndpointConfigName": "fraud-ep-v6"}}, failures) as s:
        code, _, err = run([*ARGS, "--apply", "--once"], aws_settings(tmp_path, s))
        assert code == 1 and "rolling fraud-ep back" in err
        assert s.updates == [ROLLBACK] * 3  # two refused, the third sent
        assert s.endpoints["fraud-ep"]["EndpointConfigName"] == "fraud-ep-v5"


def test_apply_refused_is_exit_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}])
    with SageMakerStub({"fraud-ep": {"EndpointConfigName": "fraud-ep-v6"}},
                       {"UpdateEndpoint": [(400, "ValidationException")]}) as s:
        code, _, err = run([*ARGS, "--apply"], aws_settings(tmp_path, s))
        assert code == 4 and len(s.updates) == 1  # a refusal is not retried
        assert err.startswith("rollguard watch: NOT rolled back: UpdateEndpoint failed: ClientError: "
                              "An error occurred (ValidationException)")


def test_apply_leaves_an_endpoint_already_on_the_old_config(tmp_path: Path, stub: SageMakerStub) -> None:
    stub.endpoints["fraud-ep"]["EndpointConfigName"] = "fraud-ep-v5"
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}])
    code, _, err = run([*ARGS, "--apply", "--once"], aws_settings(tmp_path, stub))
    assert code == 1 and stub.updates == []
    assert err == "rollguard watch: fraud-ep already serves endpoint config fraud-ep-v5; nothing sent\n"


def test_apply_waits_for_an_endpoint_that_is_updating(tmp_path: Path, stub: SageMakerStub) -> None:
    stub.endpoints["fraud-ep"]["EndpointStatus"] = "Updating"
    write_counts(tmp_path, [{CMP.name: tally(FAILING)}])
    code, _, err = run([*ARGS, "--apply", "--once"], aws_settings(tmp_path, stub))
    assert code == 4 and stub.updates == []
    assert "NOT rolled back: fraud-ep is Updating" in err

    def deploy_ends(looks: int) -> None:
        if looks == 2:
            stub.endpoints["fraud-ep"]["EndpointStatus"] = "InService"

    clock = Clock(deploy_ends)
    code, _, err = run([*ARGS, "--apply", "--interval", "20"], aws_settings(tmp_path, stub), clock)
    assert code == 1 and stub.updates == [ROLLBACK]
    assert clock.sleeps == [20.0, 20.0]
    assert err.count("waiting: fraud-ep is Updating") == 2
