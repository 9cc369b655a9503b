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
    monkeypatch.setenv("ROLLGUARD_SCORE_THRESHOLDS", "fraud-ep=0.7")
    monkeypatch.setenv("ROLLGUARD_TICK_SECONDS", "5")
    s = load_settings()
    assert s.segment_attributes == ("merchant_category", "country")
    assert s.threshold_for("fraud-ep") == 0.7 and s.threshold_for("other") == 0.5
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
