"""boto3 clients from the Settings, through the one factory (`alarms.aws_clients`)."""
from __future__ import annotations

from typing import Any

from alarms import aws_clients
from service.settings import Settings


def client(service: str, settings: Settings, **config: Any) -> Any:
    """A boto3 client honouring ROLLGUARD_AWS_ENDPOINT_URL and ROLLGUARD_AWS_REGION (else AWS_REGION)."""
    return aws_clients.client_for(service, settings, **config)
