"""boto3 clients built one way for every command: boto3's credential chain, the settings' region
and optional local endpoint.

The callers pass the settings in (``service.settings.Settings`` satisfies :class:`AwsSettings`);
this package never reads them itself, so ``alarms`` does not depend on ``service``.
"""
from __future__ import annotations

import os
from typing import Any, Protocol

#: botocore's retries for one-off commands; the metric publisher turns them off (it has its own backoff)
DEFAULT_RETRIES: dict[str, Any] = {"mode": "standard", "max_attempts": 3}
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 20.0


class AwsSettings(Protocol):
    """What the commands take from the settings for AWS: the metric namespace, region and endpoint."""

    @property
    def namespace(self) -> str: ...

    @property
    def aws_endpoint_url(self) -> str | None: ...

    @property
    def aws_region(self) -> str | None: ...


def client(service: str, *, endpoint_url: str | None = None, region: str | None = None, **config: Any) -> Any:
    """A boto3 client for ``service``; ``config`` overrides botocore ``Config`` options.

    Region: ``region``, else ``AWS_REGION``, else boto3's chain (``AWS_DEFAULT_REGION``, the
    profile). ``endpoint_url`` points it at a local AWS API (tests, demo).
    """
    import boto3  # here, so commands that never call AWS (`alarms show`, --help) do not load it
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": DEFAULT_RETRIES,
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT_S,
        "read_timeout": DEFAULT_READ_TIMEOUT_S,
        **config,
    }
    return boto3.client(
        service,
        endpoint_url=endpoint_url or None,
        # botocore itself reads only AWS_DEFAULT_REGION; the other SDKs (and SPEC) honour AWS_REGION first
        region_name=region or os.environ.get("AWS_REGION") or None,
        config=Config(**options),
    )


def client_for(service: str, settings: AwsSettings, **config: Any) -> Any:
    """:func:`client` with the endpoint and region of ``settings``."""
    return client(service, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region, **config)
