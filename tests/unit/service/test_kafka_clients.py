"""Kafka security settings and the kafka-python arguments `client_config` makes of them."""
from __future__ import annotations

import base64
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError
from kafka.net.sasl.oauth import AbstractTokenProvider

from service.kafka_clients import (TOKEN_REFRESH_MARGIN_MS, MskIamTokenProvider, client_config,
                                   explain_bootstrap_failure)
from service.settings import SettingsError, load_settings

SECRET = "s3cr3t-never-shown"


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither a developer's ROLLGUARD_* / AWS settings nor their ~/.aws may leak into a test."""
    import os

    for key in list(os.environ):
        if key.startswith(("ROLLGUARD_", "AWS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(tmp_path)  # no .env


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # only its existence is checked
    return path


def _error(**env: str) -> str:
    with pytest.raises(SettingsError) as err:
        load_settings(**env)
    message = str(err.value)
    assert "\n" not in message
    assert SECRET not in message
    return message


# ---------------------------------------------------------------- settings


def test_defaults_are_plaintext() -> None:
    s = load_settings()
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism, s.kafka_ssl_check_hostname) == ("PLAINTEXT", None, True)
    assert client_config(s) == {"bootstrap_servers": ["localhost:9092"], "security_protocol": "PLAINTEXT"}


def test_environment_names_and_case(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(SECRET + "\n")
    monkeypatch.setenv("ROLLGUARD_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("ROLLGUARD_KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("ROLLGUARD_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("ROLLGUARD_KAFKA_SASL_PASSWORD_FILE", str(password_file))
    monkeypatch.setenv("ROLLGUARD_KAFKA_SSL_CHECK_HOSTNAME", "false")
    monkeypatch.setenv("ROLLGUARD_KAFKA_SSL_CAFILE", "")  # empty is unset
    s = load_settings()
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert s.kafka_sasl_secret() == SECRET  # the file's line break is not part of it
    assert SECRET not in repr(s)


@pytest.mark.parametrize(("settings", "names", "says"), [
    ({"kafka_security_protocol": "TLS"}, "ROLLGUARD_KAFKA_SECURITY_PROTOCOL='TLS'",
     "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"}, "ROLLGUARD_KAFKA_SASL_MECHANISM",
     "must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"),
    ({"kafka_security_protocol": "SASL_SSL"}, "ROLLGUARD_KAFKA_SASL_MECHANISM",
     "is required with ROLLGUARD_KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
    ({"kafka_security_protocol": "SSL", "kafka_sasl_mechanism": "PLAIN"}, "ROLLGUARD_KAFKA_SASL_MECHANISM",
     "needs ROLLGUARD_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT (it is SSL)"),
    ({"kafka_sasl_mechanism": "SCRAM-SHA-256"}, "ROLLGUARD_KAFKA_SASL_MECHANISM", "(it is PLAINTEXT)"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_password": SECRET},
     "ROLLGUARD_KAFKA_SASL_USERNAME", "is required with ROLLGUARD_KAFKA_SASL_MECHANISM=PLAIN"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "a"},
     "ROLLGUARD_KAFKA_SASL_PASSWORD", "is required with ROLLGUARD_KAFKA_SASL_MECHANISM=SCRAM-SHA-512"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "a",
      "kafka_sasl_password_file": "/no/such/password"}, "ROLLGUARD_KAFKA_SASL_PASSWORD_FILE='/no/such/password'",
     "cannot read the file"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER", "kafka_sasl_username": "a",
      "aws_region": "eu-west-1"}, "ROLLGUARD_KAFKA_SASL_USERNAME",
     "is only used with ROLLGUARD_KAFKA_SASL_MECHANISM=PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    ({"kafka_sasl_password": SECRET}, "ROLLGUARD_KAFKA_SASL_PASSWORD:", "is only used with"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/no/such/ca.pem"},
     "ROLLGUARD_KAFKA_SSL_CAFILE='/no/such/ca.pem'", "file does not exist"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/no/such/cert.pem"},
     "ROLLGUARD_KAFKA_SSL_CERTFILE", "file does not exist"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"}, "invalid settings:",
     "OAUTHBEARER (MSK IAM) needs an AWS region: set ROLLGUARD_AWS_REGION, AWS_REGION or AWS_DEFAULT_REGION"),
], ids=["unknown-protocol", "unknown-mechanism", "sasl-without-mechanism", "mechanism-with-ssl",
        "mechanism-with-plaintext", "plain-without-username", "scram-without-password", "missing-password-file",
        "username-with-iam", "password-without-sasl", "missing-cafile", "missing-certfile", "iam-without-region"])
def test_wrong_security_settings_are_one_line_naming_the_setting(settings: dict[str, str], names: str,
                                                                 says: str) -> None:
    message = _error(**settings)
    assert names in message and says in message, message


def test_ssl_files_are_checked_against_the_protocol(pem: Path) -> None:
    assert "is only used with ROLLGUARD_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL (it is SASL_PLAINTEXT)" in _error(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="a",
        kafka_sasl_password=SECRET, kafka_ssl_cafile=str(pem))
    assert "ROLLGUARD_KAFKA_SSL_KEYFILE" in _error(kafka_security_protocol="SSL", kafka_ssl_keyfile=str(pem))
    message = _error(kafka_security_protocol="SSL", kafka_ssl_password=SECRET)
    assert message.startswith("invalid setting ROLLGUARD_KAFKA_SSL_PASSWORD: is only used with")


def test_one_password_source(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(SECRET)
    sasl = {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "a"}
    message = _error(**sasl, kafka_sasl_password=SECRET, kafka_sasl_password_file=str(password_file))
    assert "set ROLLGUARD_KAFKA_SASL_PASSWORD or ROLLGUARD_KAFKA_SASL_PASSWORD_FILE, not both" in message
    password_file.write_text("\n")
    assert "is empty" in _error(**sasl, kafka_sasl_password_file=str(password_file))


# ---------------------------------------------------------------- client_config


def test_ssl_config(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("pem")
    s = load_settings(kafka_bootstrap_servers="b-1:9094, b-2:9094", kafka_security_protocol="SSL",
                      kafka_ssl_cafile=str(files["ca"]), kafka_ssl_certfile=str(files["cert"]),
                      kafka_ssl_keyfile=str(files["key"]), kafka_ssl_password=SECRET, kafka_ssl_check_hostname=False)
    assert client_config(s) == {
        "bootstrap_servers": ["b-1:9094", "b-2:9094"], "security_protocol": "SSL", "ssl_check_hostname": False,
        "ssl_cafile": str(files["ca"]), "ssl_certfile": str(files["cert"]), "ssl_keyfile": str(files["key"]),
        "ssl_password": SECRET,
    }
    # no CA file: kafka-python then trusts the system's CAs (as for MSK's Amazon-issued certificates)
    assert client_config(load_settings(kafka_security_protocol="SSL")) == {
        "bootstrap_servers": ["localhost:9092"], "security_protocol": "SSL", "ssl_check_hostname": True}


def test_scram_config(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("first\n")
    s = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                      kafka_sasl_username="alice", kafka_sasl_password_file=str(password_file))
    assert client_config(s) == {
        "bootstrap_servers": ["localhost:9092"], "security_protocol": "SASL_SSL", "ssl_check_hostname": True,
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "alice", "sasl_plain_password": "first",
    }
    password_file.write_text("rotated\n")  # read again for each new client
    assert client_config(s)["sasl_plain_password"] == "rotated"
    plain = load_settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                          kafka_sasl_username="bob", kafka_sasl_password=SECRET)
    assert client_config(plain) == {
        "bootstrap_servers": ["localhost:9092"], "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN", "sasl_plain_username": "bob", "sasl_plain_password": SECRET,
    }


def test_msk_iam_config_signs_a_token_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER", aws_region="eu-west-1")
    config = client_config(s)
    provider = config.pop("sasl_oauth_token_provider")
    assert config == {"bootstrap_servers": ["localhost:9092"], "security_protocol": "SASL_SSL",
                      "ssl_check_hostname": True, "sasl_mechanism": "OAUTHBEARER"}
    assert isinstance(provider, AbstractTokenProvider) and provider.region == "eu-west-1"
    token = provider.token()
    assert isinstance(token, str) and provider.token() == token  # reused, not signed per connection
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("testing/")


def test_msk_iam_region_as_for_the_boto3_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    def region() -> str:
        s = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER")
        return str(client_config(s)["sasl_oauth_token_provider"].region)

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")  # boto3's own chain
    assert region() == "eu-central-1"
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")  # first, as in the other AWS SDKs
    assert region() == "ap-southeast-2"
    monkeypatch.setenv("ROLLGUARD_AWS_REGION", "us-west-2")
    assert region() == "us-west-2"


def test_msk_iam_token_is_renewed_before_it_expires() -> None:
    now = [0.0]
    signed: list[str] = []

    def sign(region: str) -> tuple[str, int]:
        signed.append(region)
        return f"token-{len(signed)}", 900_000

    provider = MskIamTokenProvider("us-east-1", sign=sign, now_ms=lambda: now[0])
    assert provider.token() == "token-1"
    now[0] = 900_000 - TOKEN_REFRESH_MARGIN_MS - 1
    assert provider.token() == "token-1"
    now[0] += 1
    assert provider.token() == "token-2"
    assert signed == ["us-east-1", "us-east-1"]


@pytest.mark.parametrize("client", [KafkaConsumer, KafkaProducer, KafkaAdminClient])
def test_every_key_is_a_kafka_python_parameter(client: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    pem = tmp_path / "x.pem"
    pem.write_text("pem")
    configs = [
        load_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pem), kafka_ssl_certfile=str(pem),
                      kafka_ssl_keyfile=str(pem), kafka_ssl_password=SECRET),
        load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                      kafka_sasl_username="a", kafka_sasl_password=SECRET),
        load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER"),
    ]
    for settings in configs:
        assert set(client_config(settings)) <= set(client.DEFAULT_CONFIG)  # type: ignore[attr-defined]


def test_bootstrap_failure_names_the_logged_cause() -> None:
    log = logging.getLogger("kafka.net.manager")
    with pytest.raises(KafkaTimeoutError, match=r"^KafkaTimeoutError: Unable to bootstrap from \['b:1'\]; connection "
                                                r"error: \[Error 58\] SaslAuthenticationFailedError: bad password$"):
        with explain_bootstrap_failure():
            log.warning("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: socket disconnected "
                        "(backoff 0.10 secs)")
            log.warning("Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: "
                        "bad password (backoff 0.70 secs)")
            # the attempt cut short by the deadline must not hide why the others failed
            log.warning("Bootstrap connection to bootstrap-0 failed: [Error 7] RequestTimedOutError: Request "
                        "timed out after 31 ms (backoff 30.64 secs)")
            raise KafkaTimeoutError("Unable to bootstrap from ['b:1']")
    with pytest.raises(KafkaTimeoutError, match=r"; connection error: KafkaConnectionError: Connection refused$"):
        with explain_bootstrap_failure():
            logging.getLogger("kafka.net.manager").error("Connection failed: KafkaConnectionError: Connection refused")
            raise KafkaTimeoutError("Unable to bootstrap from ['b:1']")
    with pytest.raises(KafkaTimeoutError, match=r"^KafkaTimeoutError: Unable to bootstrap from \['b:1'\]$"):
        with explain_bootstrap_failure():  # nothing logged: the error as kafka-python raised it
            raise KafkaTimeoutError("Unable to bootstrap from ['b:1']")
    assert not any(type(h).__name__ == "_ConnectionErrors" for h in logging.getLogger("kafka").handlers)
