"""The devstack broker's optional TLS/SASL listeners (started for real in tests/integration/test_kafka_security.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from service.devstack.broker import server_properties
from service.devstack.listeners import BrokerSecurity, Listener, ScramUser


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_default_broker_has_only_plaintext() -> None:
    props = _props(server_properties(9092, 9093, Path("/data")))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert not [k for k in props if k.startswith("listener.name.")]


def test_secured_listeners() -> None:
    security = BrokerSecurity(
        listeners=(Listener("MTLS", "SSL", client_auth=True),
                   Listener("SCRAM", "SASL_SSL", sasl_mechanisms=("SCRAM-SHA-512",))),
        keystore=Path("/pki/broker.pem"), truststore=Path("/pki/ca.pem"),
        scram_users=(ScramUser("SCRAM-SHA-512", "alice", "alice-secret"),),
    )
    props = _props(server_properties(9092, 9093, Path("/data"), security, [9094, 9095]))
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:9092,MTLS://127.0.0.1:9094,SCRAM://127.0.0.1:9095,"
                                  "CONTROLLER://127.0.0.1:9093")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.security.protocol.map"].endswith(",MTLS:SSL,SCRAM:SASL_SSL")
    assert props["listener.name.mtls.ssl.client.auth"] == "required"
    assert props["listener.name.scram.ssl.keystore.location"] == "/pki/broker.pem"
    assert props["listener.name.scram.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "listener.name.scram.ssl.client.auth" not in props
    assert security.format_arguments() == ["--add-scram", "SCRAM-SHA-512=[name=alice,password=alice-secret]"]


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"listeners": (Listener("PLAINTEXT", "SSL"),), "keystore": Path("k")}, "distinct and not PLAINTEXT"),
    ({"listeners": (Listener("SSL", "SSL"),)}, "needs a keystore"),
    ({"listeners": (Listener("S", "SASL_PLAINTEXT"),)}, "SASL protocols need sasl_mechanisms"),
    ({"listeners": (Listener("S", "SASL_PLAINTEXT", sasl_mechanisms=("PLAIN",)),)}, "sasl_mechanisms"),
    ({"listeners": (Listener("M", "SSL", client_auth=True),), "keystore": Path("k")}, "needs TLS and a truststore"),
    ({"listeners": (), "scram_users": (ScramUser("SCRAM-SHA-512", "a", "p,q"),)}, "--add-scram"),
])
def test_security_that_cannot_work_is_refused(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        BrokerSecurity(**kwargs)  # type: ignore[arg-type]
