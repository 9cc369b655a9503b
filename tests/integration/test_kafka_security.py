"""Every Kafka client through `service.kafka_clients.client_config` against a broker with TLS and SASL.

The module's broker has, beside the devstack's PLAINTEXT listener, four secured ones: TLS with
server authentication, TLS requiring a client certificate (mTLS), SASL_SSL with SCRAM-SHA-512
and SASL_PLAINTEXT with SCRAM-SHA-256. The certificates are made here, for 127.0.0.1 and localhost.
"""
from __future__ import annotations

import datetime
import ipaddress
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kafka.errors import KafkaTimeoutError

from service.daemon import Daemon
from service.dead_letter import REASON, SOURCE_TOPIC
from service.devstack import BrokerSecurity, KafkaBroker, Listener, ScramUser, start_kafka
from service.kafka_clients import client_config, make_admin, make_consumer, make_producer
from service.settings import Settings, load_settings
from service.topics import MissingTopicError, ensure_topics, partition_counts
from service.wiring import check_topics, serve
from service.devstack.traffic import BAD_RECORDS
from tests.integration.harness import wait_for

ALICE = ScramUser("SCRAM-SHA-512", "alice", "alice-secret")
BOB = ScramUser("SCRAM-SHA-256", "bob", "bob-secret")
CLIENT_KEY_PASSWORD = "client-key-secret"


# ---------------------------------------------------------------- certificates


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(subject: str, key: rsa.RSAPrivateKey, issuer: x509.Certificate | None, issuer_key: rsa.RSAPrivateKey,
          *, ca: bool = False, usage: x509.ObjectIdentifier | None = None,
          names: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder()
               .subject_name(name).issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate: the clients' ssl_cafile and the broker's truststore
    keystore: Path  # the broker's key (unencrypted PKCS#8) and certificate chain
    client_cert: Path
    client_key: Path  # encrypted with CLIENT_KEY_PASSWORD
    other_ca: Path  # a CA that signed nothing here


def make_pki(directory: Path) -> Pki:
    ca_key = _key()
    ca = _cert("rollguard test CA", ca_key, None, ca_key, ca=True)
    server_key = _key()
    server = _cert("localhost", server_key, ca, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                   names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_key = _key()
    client = _cert("rollguard-client", client_key, ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other_key = _key()
    pki = Pki(directory / "ca.pem", directory / "broker.pem", directory / "client.pem",
              directory / "client.key", directory / "other-ca.pem")
    pki.ca.write_bytes(_pem(ca))
    pki.keystore.write_bytes(
        server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()) + _pem(server) + _pem(ca))
    pki.client_cert.write_bytes(_pem(client))
    pki.client_key.write_bytes(client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(CLIENT_KEY_PASSWORD.encode())))
    pki.other_ca.write_bytes(_pem(_cert("someone else's CA", other_key, None, other_key, ca=True)))
    return pki


# ---------------------------------------------------------------- the broker


@dataclass(frozen=True)
class SecureKafka:
    broker: KafkaBroker
    pki: Pki
    directory: Path

    def address(self, listener: str) -> str:
        return self.broker.listeners[listener]


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    directory = tmp_path_factory.mktemp("kafka-security")
    pki = make_pki(directory)
    security = BrokerSecurity(
        listeners=(
            Listener("SSL", "SSL"),
            Listener("MTLS", "SSL", client_auth=True),
            Listener("SCRAM", "SASL_SSL", sasl_mechanisms=("SCRAM-SHA-512",)),
            Listener("SCRAMPLAIN", "SASL_PLAINTEXT", sasl_mechanisms=("SCRAM-SHA-256",)),
        ),
        keystore=pki.keystore, truststore=pki.ca, scram_users=(ALICE, BOB),
    )
    with start_kafka(security=security) as broker:
        yield SecureKafka(broker, pki, directory)


def ssl_settings(kafka: SecureKafka, **overrides: Any) -> Settings:
    return load_settings(**{"kafka_bootstrap_servers": kafka.address("SSL"), "kafka_security_protocol": "SSL",
                            "kafka_ssl_cafile": str(kafka.pki.ca), **overrides})


def mtls_settings(kafka: SecureKafka, **overrides: Any) -> Settings:
    return load_settings(**{
        "kafka_bootstrap_servers": kafka.address("MTLS"), "kafka_security_protocol": "SSL",
        "kafka_ssl_cafile": str(kafka.pki.ca), "kafka_ssl_certfile": str(kafka.pki.client_cert),
        "kafka_ssl_keyfile": str(kafka.pki.client_key), "kafka_ssl_password": CLIENT_KEY_PASSWORD,
        **overrides,
    })


def scram_settings(kafka: SecureKafka, password: str = ALICE.password, **overrides: Any) -> Settings:
    password_file = kafka.directory / f"scram-password-{uuid.uuid4().hex[:8]}"
    password_file.write_text(password + "\n")
    return load_settings(**{
        "kafka_bootstrap_servers": kafka.address("SCRAM"), "kafka_security_protocol": "SASL_SSL",
        "kafka_ssl_cafile": str(kafka.pki.ca), "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": ALICE.name, "kafka_sasl_password_file": str(password_file), **overrides,
    })


def scram_plaintext_settings(kafka: SecureKafka, **overrides: Any) -> Settings:
    return load_settings(**{
        "kafka_bootstrap_servers": kafka.address("SCRAMPLAIN"), "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-256", "kafka_sasl_username": BOB.name,
        "kafka_sasl_password": BOB.password, **overrides,
    })


def round_trip(settings: Settings, topic: str) -> list[bytes]:
    """Create `topic` with the admin client, produce three records, read them back; all via `settings`."""
    ensure_topics(settings, {topic: 1})
    producer = make_producer(settings, acks="all")
    for i in range(3):
        producer.send(topic, key=b"k", value=f"record-{i}".encode())
    producer.flush(timeout=30)
    producer.close()
    return [r.value for r in consume(settings, topic, 3)]


def consume(settings: Settings, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    consumer = make_consumer(settings, topic, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=1000)
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(consumer)
    finally:
        consumer.close()
    return out


EXPECTED = [b"record-0", b"record-1", b"record-2"]


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("settings_for", [ssl_settings, mtls_settings, scram_settings, scram_plaintext_settings],
                         ids=["ssl", "mtls", "sasl-ssl-scram-sha-512", "sasl-plaintext-scram-sha-256"])
def test_produce_and_consume_through_client_config(
        secure_kafka: SecureKafka, topic_names: Callable[[str], str],
        settings_for: Callable[[SecureKafka], Settings]) -> None:
    settings = settings_for(secure_kafka)
    assert round_trip(settings, topic_names("secure")) == EXPECTED


def test_ssl_by_host_name_checks_the_certificate_name(secure_kafka: SecureKafka,
                                                      topic_names: Callable[[str], str]) -> None:
    # the bootstrap connection is made to "localhost", a name the broker's certificate holds
    port = secure_kafka.address("SSL").rsplit(":", 1)[1]
    settings = ssl_settings(secure_kafka, kafka_bootstrap_servers=f"localhost:{port}")
    assert client_config(settings)["ssl_check_hostname"] is True
    assert round_trip(settings, topic_names("by-name")) == EXPECTED


@pytest.mark.parametrize(("settings_for", "cause"), [
    (lambda k: mtls_settings(k, kafka_ssl_certfile=None, kafka_ssl_keyfile=None, kafka_ssl_password=None),
     "BAD_CERTIFICATE"),
    (lambda k: ssl_settings(k, kafka_ssl_cafile=str(k.pki.other_ca)), "CERTIFICATE_VERIFY_FAILED"),
], ids=["mtls-without-client-certificate", "untrusted-broker-certificate"])
def test_refused_tls_clients_fail_naming_the_cause(
        secure_kafka: SecureKafka, settings_for: Callable[[SecureKafka], Settings], cause: str) -> None:
    with pytest.raises(KafkaTimeoutError, match=f"Unable to bootstrap .*; connection error: .*{cause}"):
        make_admin(settings_for(secure_kafka), bootstrap_timeout_ms=5000)


def test_wrong_scram_password_fails_the_topic_check_naming_the_cause(secure_kafka: SecureKafka) -> None:
    settings = scram_settings(secure_kafka, password="not-alice-secret")
    with pytest.raises(KafkaTimeoutError) as err:
        check_topics(settings)  # the daemon's first step; `rollguard run` prints this one line
    message = str(err.value)
    assert "SaslAuthenticationFailedError" in message and "invalid credentials" in message, message
    assert "not-alice-secret" not in message and "\n" not in message


def test_topic_admin_over_scram(secure_kafka: SecureKafka, topic_names: Callable[[str], str]) -> None:
    settings = scram_settings(secure_kafka)
    a, b, missing = topic_names("admin-a"), topic_names("admin-b"), topic_names("missing")
    ensure_topics(settings, {a: 3, b: 2})
    assert partition_counts(settings, [a, b]) == {a: 3, b: 2}
    with pytest.raises(MissingTopicError, match=missing):
        partition_counts(settings, [a, missing])


def test_daemon_consumes_and_dead_letters_over_sasl_ssl(
        secure_kafka: SecureKafka, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path) -> None:
    """`serve` as `rollguard run` does it: topic check, consumer, dead-letter producer, all over SCRAM/TLS."""
    captures, labels, dead = topic_names("captures"), topic_names("labels"), topic_names("dlq")
    settings = scram_settings(
        secure_kafka, captures_topic=captures, labels_topic=labels, dead_letter_topic=dead,
        group_id=topic_names("group"), namespace="RollguardSecurityTest", aws_endpoint_url=moto_endpoint,
        aws_region="us-east-1", tick_seconds=1, state_dir=str(tmp_path / "state"), http_addr="127.0.0.1:0",
    )
    ensure_topics(settings, {captures: 2, labels: 2, dead: 1})
    reason, bad = BAD_RECORDS[0]
    producer = make_producer(settings, acks="all")
    producer.send(captures, key=b"bad-1", value=bad)
    producer.flush(timeout=30)
    producer.close()

    stop = threading.Event()
    started: list[Daemon] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            serve(settings, stop, started=started.append)
        except BaseException as ex:  # surfaced by the assertions below
            failed.append(ex)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: bool(failed) or bool(started and started[0].stats.records), 60,
                 "the daemon to consume the bad record", interval_s=0.5)
        assert not failed, failed
        letters = consume(settings, dead, 1)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not failed, failed
    assert [r.value for r in letters] == [bad]
    headers = dict(letters[0].headers)
    assert headers[SOURCE_TOPIC] == captures.encode()
    assert headers[REASON] == reason.encode()
