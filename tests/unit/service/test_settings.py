import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import SettingsError, load_settings


def test_defaults_match_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.kafka_bootstrap_servers == "localhost:9092"
    assert (s.captures_topic, s.labels_topic, s.dead_letter_topic) == ("captures", "labels", "rollguard.dead-letter")
    assert (s.group_id, s.namespace, s.aws_endpoint_url) == ("rollguard", "Rollguard", None)
    assert (s.tick_seconds, s.window_seconds, s.min_samples) == (60, 900, 30)
    assert (s.label_ttl_seconds, s.label_wait_seconds, s.score_threshold) == (1_209_600, 86_400, 0.5)
    assert (s.segment_attributes, s.state_dir, s.http_addr) == ((), "./state", "127.0.0.1:8787")


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_SEGMENT_ATTRIBUTES", "merchant_category, country")
    monkeypatch.setenv("ROLLGUARD_SEGMENT_VALUES", "merchant_category=5411|5812 | 7995; country=de|fr")
    monkeypatch.setenv("ROLLGUARD_SCORE_THRESHOLDS", "fraud-ep=0.7")
    monkeypatch.setenv("ROLLGUARD_TICK_SECONDS", "5")
    s = load_settings()
    assert s.segment_attributes == ("merchant_category", "country")
    assert s.segment_values == {"merchant_category": ("5411", "5812", "7995"), "country": ("de", "fr")}
    assert not s.segment_first_come and not s.segment_gauges
    assert s.score_thresholds == {"fraud-ep": 0.7} and s.score_threshold == 0.5
    assert s.tick_seconds == 5


@pytest.mark.parametrize(
    ("var", "value", "names"),
    [
        ("ROLLGUARD_TICK_SECONDS", "abc", "ROLLGUARD_TICK_SECONDS"),
        ("ROLLGUARD_TICK_SECONDS", "0", "ROLLGUARD_TICK_SECONDS"),
        ("ROLLGUARD_MIN_SAMPLES", "-3", "ROLLGUARD_MIN_SAMPLES"),
        ("ROLLGUARD_KAFKA_BOOTSTRAP_SERVERS", "no-port", "ROLLGUARD_KAFKA_BOOTSTRAP_SERVERS"),
        ("ROLLGUARD_SCORE_THRESHOLD", "1.5", "ROLLGUARD_SCORE_THRESHOLD"),
        ("ROLLGUARD_SCORE_THRESHOLDS", "ep=x", "ROLLGUARD_SCORE_THRESHOLDS"),
        ("ROLLGUARD_AWS_ENDPOINT_URL", "localhost:5000", "ROLLGUARD_AWS_ENDPOINT_URL"),
        ("ROLLGUARD_HTTP_ADDR", "8787", "ROLLGUARD_HTTP_ADDR"),
        ("ROLLGUARD_LABELS_TOPIC", "captures", "ROLLGUARD_LABELS_TOPIC"),
    ],
)
def test_wrong_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, var: str, value: str, names: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert names in message
    assert "\n" not in message


def test_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rollguard.toml"
    path.write_text('namespace = "Fraud"\ntick_seconds = 10\n')
    monkeypatch.setenv("ROLLGUARD_CONFIG_FILE", str(path))
    monkeypatch.setenv("ROLLGUARD_TICK_SECONDS", "20")  # the environment wins over the file
    s = load_settings()
    assert (s.namespace, s.tick_seconds) == ("Fraud", 20)
    path.write_text('nmespace = "typo"\n')
    with pytest.raises(SettingsError, match="nmespace"):
        load_settings()


def test_http_token_from_the_environment_or_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = "0123456789abcdef0123"
    assert load_settings().http_bearer_token() is None
    monkeypatch.setenv("ROLLGUARD_HTTP_TOKEN", token)
    s = load_settings()
    assert s.http_bearer_token() == token and token not in repr(s)  # settings may be logged
    monkeypatch.setenv("ROLLGUARD_HTTP_TOKEN", "")  # empty is unset
    assert load_settings().http_bearer_token() is None
    monkeypatch.delenv("ROLLGUARD_HTTP_TOKEN")
    path = tmp_path / "token"
    path.write_text(token + "\n")
    monkeypatch.setenv("ROLLGUARD_HTTP_TOKEN_FILE", str(path))
    assert load_settings().http_bearer_token() == token
    monkeypatch.setenv("ROLLGUARD_HTTP_TOKEN", token)
    with pytest.raises(SettingsError, match="ROLLGUARD_HTTP_TOKEN or ROLLGUARD_HTTP_TOKEN_FILE, not both"):
        load_settings()


@pytest.mark.parametrize(("var", "value"), [("ROLLGUARD_HTTP_TOKEN", "short-secret"),
                                            ("ROLLGUARD_HTTP_TOKEN", "has spaces in the token value"),
                                            ("ROLLGUARD_HTTP_TOKEN_FILE", "/nonexistent/token")])
def test_a_bad_http_token_is_one_line_without_the_token(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith(f"invalid setting {var}") and "\n" not in message
    if var == "ROLLGUARD_HTTP_TOKEN":
        assert value not in message


REPO = Path(__file__).resolve().parents[3]  # the repository root: tests/unit/service/ is three levels down


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("ROLLGUARD_AWS_REGION", "not_a_region!", "invalid setting ROLLGUARD_AWS_REGION='not_a_region!': must be an AWS region"),
    ("AWS_REGION", "not_a_region!", "AWS_REGION='not_a_region!': must be an AWS region"),
    ("AWS_DEFAULT_REGION", "-eu-west-1", "AWS_DEFAULT_REGION='-eu-west-1': must be an AWS region"),
    ("ROLLGUARD_STATE_DIR", "s3://", "ROLLGUARD_STATE_DIR='s3://': must be s3://bucket/prefix: the bucket name is missing"),
    ("ROLLGUARD_STATE_DIR", "s3://my bucket/x", "ROLLGUARD_STATE_DIR='s3://my bucket/x': bucket name 'my bucket'"),
    ("ROLLGUARD_STATE_DIR", "gs://bucket/x", "must be a local directory or s3://bucket/prefix"),
    ("ROLLGUARD_TICK_SECONDS", "nan", "ROLLGUARD_TICK_SECONDS='nan': must be a finite number of seconds > 0 and <= 3600"),
    ("ROLLGUARD_WINDOW_SECONDS", "inf", "ROLLGUARD_WINDOW_SECONDS='inf': must be a finite number of seconds > 0 and <= 86400"),
    ("ROLLGUARD_LABEL_TTL_SECONDS", "1.5", "must be a whole number of seconds > 0"),
    ("ROLLGUARD_SCORE_THRESHOLD", "nan", "ROLLGUARD_SCORE_THRESHOLD='nan': must be a finite number >= 0 and <= 1"),
])
def test_regions_state_dirs_and_numbers_are_checked(monkeypatch: pytest.MonkeyPatch, var: str, value: str,
                                                    expected: str) -> None:
    for name in ("ROLLGUARD_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_region_and_state_dir_values_botocore_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    for region in ("eu-west-1", "us-gov-west-1", "cn-north-1", "local"):
        monkeypatch.setenv("AWS_REGION", region)
        assert load_settings(aws_region=region).aws_region == region
        assert load_settings().aws_region is None  # the clients read AWS_REGION themselves
    monkeypatch.setenv("AWS_REGION", "not_a_region!")  # not the one in effect: ROLLGUARD_AWS_REGION wins
    assert load_settings(aws_region="eu-west-1").aws_region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "")  # empty is unset, like boto3
    monkeypatch.setenv("ROLLGUARD_AWS_REGION", "")
    assert load_settings().aws_region is None
    for location in ("s3://my-bucket", "s3://my.bucket/rollguard/", "/var/lib/rollguard", "state"):
        assert load_settings(state_dir=location).state_dir == location


def run_daemon(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`rollguard run` with only ``env`` set (and a broker address nothing listens on)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLGUARD_", "AWS_"))}
    clean |= {"PYTHONPATH": str(REPO), "ROLLGUARD_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
              "ROLLGUARD_HTTP_ADDR": "127.0.0.1:0", "ROLLGUARD_STATE_DIR": str(tmp_path / "state"), **env}
    # a check that waited for Kafka would take 20 s or more (bootstrap retries) and log on stderr
    return subprocess.run([sys.executable, "-m", "service.cli", "run"], cwd=tmp_path, env=clean,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("var", "value"), [
    ("AWS_REGION", "not_a_region!"),
    ("ROLLGUARD_AWS_REGION", "bad_region!"),
    ("ROLLGUARD_STATE_DIR", "s3://"),
    ("ROLLGUARD_STATE_DIR", "{file}/state"),  # unwritable even for root: a path under a regular file
    ("ROLLGUARD_TICK_SECONDS", "nan"),
])
def test_rollguard_run_refuses_a_wrong_setting_in_one_line_before_contacting_kafka(
        tmp_path: Path, var: str, value: str) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    value = value.format(file=file)
    result = run_daemon(tmp_path, **{var: value})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("rollguard: invalid setting") and f"{var}={value!r}" in lines[0]
    assert result.stdout == ""


def test_rollguard_run_names_a_wrong_region_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "rollguard.toml"
    config.write_text('aws_region = "eu west 1"\n')
    result = run_daemon(tmp_path, ROLLGUARD_CONFIG_FILE=str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "rollguard: invalid setting ROLLGUARD_AWS_REGION='eu west 1': "
        "must be an AWS region name such as eu-west-1 (letters, digits and hyphens)"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROLLGUARD_SEGMENT_ATTRIBUTES": "merchant_category"},
         "invalid settings: segment attribute 'merchant_category' (ROLLGUARD_SEGMENT_ATTRIBUTES) needs its values in "
         "ROLLGUARD_SEGMENT_VALUES (e.g. merchant_category=a|b|c), or ROLLGUARD_SEGMENT_FIRST_COME=true to admit the "
         "first values seen (one instance only)"),
        ({"ROLLGUARD_SEGMENT_ATTRIBUTES": "a,b", "ROLLGUARD_SEGMENT_VALUES": "a=1|2"},
         "invalid settings: segment attribute 'b' (ROLLGUARD_SEGMENT_ATTRIBUTES) needs its values"),
        ({"ROLLGUARD_SEGMENT_VALUES": "country=de"},
         "invalid settings: ROLLGUARD_SEGMENT_VALUES lists values of 'country', which is not in ROLLGUARD_SEGMENT_ATTRIBUTES"),
        ({"ROLLGUARD_SEGMENT_ATTRIBUTES": "a", "ROLLGUARD_SEGMENT_VALUES": "a=1|2|3", "ROLLGUARD_SEGMENT_CARDINALITY_CAP": "2"},
         "invalid settings: ROLLGUARD_SEGMENT_VALUES lists 3 values of 'a', more than ROLLGUARD_SEGMENT_CARDINALITY_CAP=2"),
        ({"ROLLGUARD_SEGMENT_ATTRIBUTES": "a", "ROLLGUARD_SEGMENT_VALUES": "a"},
         "invalid setting ROLLGUARD_SEGMENT_VALUES='a': must be attribute=value|value|...;attribute=value|..."),
    ],
)
def test_segment_mapping_must_be_the_same_on_every_instance(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                            message: str) -> None:
    """Issue 10, item 3: an allow-list per attribute, or first come as an explicit single-instance mode."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_first_come_segments_are_an_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_SEGMENT_ATTRIBUTES", "merchant_category,country")
    monkeypatch.setenv("ROLLGUARD_SEGMENT_VALUES", "country=de|fr")
    monkeypatch.setenv("ROLLGUARD_SEGMENT_FIRST_COME", "true")
    s = load_settings()
    assert s.segment_first_come and s.segment_values == {"country": ("de", "fr")}


def test_the_future_limit_cannot_pass_what_the_publisher_sends() -> None:
    from pipelines.cloudwatch_rules import MAX_FUTURE_MS

    assert load_settings().max_future_seconds * 1000 == MAX_FUTURE_MS
    with pytest.raises(SettingsError, match="ROLLGUARD_MAX_FUTURE_SECONDS=7200: must be a whole number of seconds "
                                            ">= 0 and <= 6900"):
        load_settings(max_future_seconds=7200)
