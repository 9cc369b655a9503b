"""boto3 clients built one way for every command and the metric publisher: boto3's credential
chain, the settings' region and optional local endpoint. The one boto3 client factory.

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


def cloudwatch(settings: AwsSettings) -> Any:
    """The CloudWatch client of ``settings``, for the commands (alarms, guardrail, dashboard)."""
    return client_for("cloudwatch", settings)


def region_for(settings: AwsSettings) -> str | None:
    """The region the clients of ``settings`` use: its own, else ``AWS_REGION``, else boto3's chain."""
    region = settings.aws_region or os.environ.get("AWS_REGION")
    if region:
        return region
    import boto3

    found = boto3.session.Session().region_name
    return str(found) if found else None


def make_cloudwatch_client(
    endpoint_url: str | None = None,
    *,
    region_name: str | None = None,
    compress_requests: bool | None = None,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 15.0,
) -> Any:
    """The metric publisher's CloudWatch client, pointed at ``endpoint_url`` when given.

    botocore's own retries are off (one attempt): the publisher retries with its own backoff
    and deadline, and nested retry loops would multiply. Gzip request compression defaults to
    on for AWS and off when an ``endpoint_url`` is given, because moto's server (5.2)
    decompresses the body twice and answers every compressed request (> 10 KiB) with a 500.
    """
    if compress_requests is None:
        compress_requests = endpoint_url is None
    return client(
        "cloudwatch", endpoint_url=endpoint_url, region=region_name,
        retries={"total_max_attempts": 1, "mode": "standard"},
        disable_request_compression=not compress_requests,
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
    )
