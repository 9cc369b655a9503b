"""kafka-python arguments shared by every consumer, producer and admin client: brokers, TLS, SASL.

`client_config(settings)` holds only the keys that apply to the configured security protocol,
so a PLAINTEXT cluster gets exactly what it got before. SASL/OAUTHBEARER is MSK IAM: each
connection presents a token signed with the AWS credentials chain for the cluster's region.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka.errors import KafkaTimeoutError
from kafka.net.sasl.oauth import AbstractTokenProvider

from service import kafka_eof_fix
from service.settings import KAFKA_PASSWORD_MECHANISMS, Settings

kafka_eof_fix.install()

#: a token is replaced this long before it expires, so a connection never presents a stale one
TOKEN_REFRESH_MARGIN_MS = 60_000


def _sign_msk_token(region: str) -> tuple[str, int]:
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return str(token), int(expiry_ms)


class MskIamTokenProvider(AbstractTokenProvider):
    """MSK IAM tokens for SASL/OAUTHBEARER; one is reused until shortly before it expires.

    kafka-python calls `token()` from whichever thread opens a connection, hence the lock.
    """

    def __init__(self, region: str, *, sign: Callable[[str], tuple[str, int]] = _sign_msk_token,
                 now_ms: Callable[[], float] = lambda: time.time() * 1000) -> None:
        super().__init__()
        self.region, self._sign, self._now_ms = region, sign, now_ms
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expiry_ms = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._now_ms() >= self._expiry_ms - TOKEN_REFRESH_MARGIN_MS:
                self._token, self._expiry_ms = self._sign(self.region)
            return self._token


def client_config(settings: Settings) -> dict[str, Any]:
    """The kafka-python keyword arguments every client of this cluster needs (Consumer, Producer, Admin)."""
    s = settings
    config: dict[str, Any] = {
        "bootstrap_servers": [h.strip() for h in s.kafka_bootstrap_servers.split(",") if h.strip()],
        "security_protocol": s.kafka_security_protocol,
    }
    if s.kafka_security_protocol in ("SSL", "SASL_SSL"):
        config["ssl_check_hostname"] = s.kafka_ssl_check_hostname
        optional = {
            "ssl_cafile": s.kafka_ssl_cafile,
            "ssl_certfile": s.kafka_ssl_certfile,
            "ssl_keyfile": s.kafka_ssl_keyfile,
            "ssl_password": s.kafka_ssl_password.get_secret_value() if s.kafka_ssl_password else None,
        }
        config.update({k: v for k, v in optional.items() if v is not None})
    mechanism = s.kafka_sasl_mechanism
    if mechanism is not None:
        config["sasl_mechanism"] = mechanism
        if mechanism in KAFKA_PASSWORD_MECHANISMS:
            config["sasl_plain_username"] = s.kafka_sasl_username
            config["sasl_plain_password"] = s.kafka_sasl_secret()
        elif mechanism == "OAUTHBEARER":
            region = s.kafka_aws_region()
            if region is None:  # settings validation checked; the chain may have changed since
                raise ValueError("MSK IAM (ROLLGUARD_KAFKA_SASL_MECHANISM=OAUTHBEARER) needs an AWS region: "
                                 "set ROLLGUARD_AWS_REGION, AWS_REGION or AWS_DEFAULT_REGION")
            config["sasl_oauth_token_provider"] = MskIamTokenProvider(region)
    return config


#: causes that say what to fix; a later timeout or disconnect must not hide one of them
_DECISIVE_CAUSES = ("Authentication", "Authorization", "SSL", "CERTIFICATE")


class _ConnectionErrors(logging.Handler):
    """Keeps the telling cause among the connection failures kafka-python logs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.cause: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Connection failed: "):
            cause = message.removeprefix("Connection failed: ")
        elif message.startswith("Bootstrap connection to ") and " failed: " in message:
            cause = message.split(" failed: ", 1)[1].rsplit(" (backoff ", 1)[0]
        else:
            return
        if self.cause is None or any(w in cause for w in _DECISIVE_CAUSES) or \
                not any(w in self.cause for w in _DECISIVE_CAUSES):
            self.cause = cause


@contextmanager
def explain_bootstrap_failure() -> Iterator[None]:
    """Around a client's construction: kafka-python reports a wrong password, a refused
    certificate or an unreachable broker all as "Unable to bootstrap" and only logs which it
    was; the KafkaTimeoutError raised here names it (still a kafka.errors error)."""
    seen = _ConnectionErrors()
    logger = logging.getLogger("kafka")
    logger.addHandler(seen)
    try:
        yield
    except KafkaTimeoutError as ex:
        if seen.cause is None:
            raise
        # Exception.__str__: kafka-python's own prefixes the class name, which the new error adds again
        detail = f"{Exception.__str__(ex)}; connection error: {seen.cause}"
        raise KafkaTimeoutError(detail.splitlines()[0]) from ex
    finally:
        logger.removeHandler(seen)


def make_consumer(settings: Settings, *topics: str, **kwargs: Any) -> Any:
    """A KafkaConsumer for this cluster; `kwargs` add to (or override) `client_config`."""
    from kafka import KafkaConsumer

    with explain_bootstrap_failure():
        return KafkaConsumer(*topics, **{**client_config(settings), **kwargs})


def make_producer(settings: Settings, **kwargs: Any) -> Any:
    """A KafkaProducer for this cluster; `kwargs` add to (or override) `client_config`."""
    from kafka import KafkaProducer

    with explain_bootstrap_failure():
        return KafkaProducer(**{**client_config(settings), **kwargs})


def make_admin(settings: Settings, **kwargs: Any) -> Any:
    """A KafkaAdminClient for this cluster; `kwargs` add to (or override) `client_config`."""
    from kafka import KafkaAdminClient

    with explain_bootstrap_failure():
        return KafkaAdminClient(**{**client_config(settings), **kwargs})
