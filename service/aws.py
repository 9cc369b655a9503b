"""boto3 clients built one way everywhere: standard credential chain, optional local endpoint."""
from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from service.settings import Settings


def client(service: str, settings: Settings, **config: Any) -> Any:
    """A boto3 client honouring ROLLGUARD_AWS_ENDPOINT_URL and ROLLGUARD_AWS_REGION."""
    retries = config.pop("retries", {"mode": "standard", "max_attempts": 3})
    return boto3.client(
        service,
        endpoint_url=settings.aws_endpoint_url,
        region_name=settings.aws_region,
        config=Config(retries=retries, connect_timeout=5, read_timeout=20, **config),
    )
