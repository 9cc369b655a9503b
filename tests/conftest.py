"""Shared fixtures: a real Kafka broker and moto server, started lazily, once per session.

Unit tests never request them, so a unit-only run starts nothing. Set
ROLLGUARD_TEST_KAFKA_BOOTSTRAP_SERVERS / ROLLGUARD_TEST_AWS_ENDPOINT_URL to reuse a running
stack (e.g. `rollguard devstack up --detach`) instead of starting one.
"""
from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.devstack import start_kafka, start_moto

_INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs the local Kafka broker and moto server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/integration is integration, so `-m "not integration"` is a unit run.
    for item in items:
        if _INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real single-node broker shared by the session (topics are not reset)."""
    reuse = os.environ.get("ROLLGUARD_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if reuse:
        yield reuse
        return
    with start_kafka() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Endpoint URL of a moto server; sets fake AWS credentials and us-east-1 for the session."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(key, value)
        # A developer's profile or session token must never reach a test, even a fake endpoint.
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(key, raising=False)
        reuse = os.environ.get("ROLLGUARD_TEST_AWS_ENDPOINT_URL")
        if reuse:
            yield reuse
            return
        with start_moto() as server:
            yield server.endpoint_url


@pytest.fixture
def topic_names() -> Callable[[str], str]:
    """`make(prefix)` -> a topic name no other test (or earlier run on the same broker) uses."""

    def make(prefix: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", prefix):
            raise ValueError(f"topic prefix {prefix!r} must be 1-200 of [A-Za-z0-9._-]")
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make
