"""Secured listeners for testing TLS and SASL clients against the local broker."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Listener:
    """A client listener beside PLAINTEXT, which stays the inter-broker one and the devstack's own."""

    name: str  # e.g. "SSL", "MTLS", "SCRAM"
    protocol: str  # SSL, SASL_SSL or SASL_PLAINTEXT
    sasl_mechanisms: tuple[str, ...] = ()  # SCRAM-SHA-256 and/or SCRAM-SHA-512 (SASL protocols)
    client_auth: bool = False  # TLS: require a client certificate signed by the truststore's CA


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM credential written into the metadata when storage is formatted."""

    mechanism: str  # SCRAM-SHA-256 or SCRAM-SHA-512
    name: str
    password: str


_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class BrokerSecurity:
    """Extra listeners for testing TLS and SASL clients; the broker reads its PEM files in place."""

    listeners: tuple[Listener, ...]
    keystore: Path | None = None  # PEM: the server's unencrypted PKCS#8 key and its certificate chain
    truststore: Path | None = None  # PEM: the CA certificates client certificates must chain to
    scram_users: tuple[ScramUser, ...] = ()

    def __post_init__(self) -> None:
        names = [listener.name for listener in self.listeners]
        if len(set(names)) != len(names) or {"PLAINTEXT", "CONTROLLER"} & set(names):
            raise ValueError(f"listener names must be distinct and not PLAINTEXT or CONTROLLER: {names}")
        for listener in self.listeners:
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", listener.name):
                raise ValueError(f"listener name {listener.name!r} must be upper-case letters, digits and _")
            if listener.protocol not in ("SSL", "SASL_SSL", "SASL_PLAINTEXT"):
                raise ValueError(f"listener {listener.name}: protocol must be SSL, SASL_SSL or SASL_PLAINTEXT")
            sasl = listener.protocol.startswith("SASL_")
            if sasl != bool(listener.sasl_mechanisms) or not set(listener.sasl_mechanisms) <= set(_SCRAM):
                raise ValueError(f"listener {listener.name}: SASL protocols need sasl_mechanisms from {_SCRAM}, "
                                 "other protocols none")
            if listener.protocol.endswith("SSL") and self.keystore is None:
                raise ValueError(f"listener {listener.name}: {listener.protocol} needs a keystore")
            if listener.client_auth and (self.truststore is None or not listener.protocol.endswith("SSL")):
                raise ValueError(f"listener {listener.name}: client_auth needs TLS and a truststore")
        for user in self.scram_users:
            if user.mechanism not in _SCRAM or re.search(r'[,=\[\]"\s]', user.name + user.password):
                raise ValueError(f"SCRAM user {user.name!r}: mechanism must be one of {_SCRAM}, and name "
                                 "and password free of , = [ ] \" and spaces (kafka-storage's --add-scram syntax)")

    def format_arguments(self) -> list[str]:
        """kafka-storage `format` arguments that create the SCRAM users."""
        return [arg for u in self.scram_users
                for arg in ("--add-scram", f"{u.mechanism}=[name={u.name},password={u.password}]")]

    def properties(self, ports: Sequence[int]) -> tuple[list[str], list[str], list[str]]:
        """(listener URLs, protocol-map entries, per-listener settings) for `ports`, one per listener."""
        urls, protocols, settings = [], [], []
        for listener, port in zip(self.listeners, ports, strict=True):
            urls.append(f"{listener.name}://127.0.0.1:{port}")
            protocols.append(f"{listener.name}:{listener.protocol}")
            prefix = f"listener.name.{listener.name.lower()}."
            if listener.protocol.endswith("SSL"):
                settings += [f"{prefix}ssl.keystore.type=PEM", f"{prefix}ssl.keystore.location={self.keystore}"]
                if self.truststore is not None:
                    settings += [f"{prefix}ssl.truststore.type=PEM",
                                 f"{prefix}ssl.truststore.location={self.truststore}"]
                if listener.client_auth:
                    settings.append(f"{prefix}ssl.client.auth=required")
            if listener.sasl_mechanisms:
                settings.append(f"{prefix}sasl.enabled.mechanisms={','.join(listener.sasl_mechanisms)}")
                settings += [f"{prefix}{m.lower()}.sasl.jaas.config="
                             "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                             for m in listener.sasl_mechanisms]
        if any(listener.sasl_mechanisms for listener in self.listeners):
            # the broker answers a failed login, then closes the connection after this delay: long
            # enough that a client on a loaded machine reads the answer before the close
            settings.append("connection.failed.authentication.delay.ms=3000")
        return urls, protocols, settings
