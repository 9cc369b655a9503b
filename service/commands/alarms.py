"""`rollguard alarms plan|apply|simulate|show`: alarms/cli.py, handed the Settings.

`alarms/` does not import `service/`, so its commands are handed the settings (namespace, region,
endpoint: environment, .env or ROLLGUARD_CONFIG_FILE, like every other command). They are loaded
only when a subcommand needs them, so `--help` and `alarms simulate` work whatever the settings.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alarms import cli
from service.commands.base import settings_when_needed


def main(argv: Sequence[str] | None = None, **options: Any) -> int:
    """``options`` go to `alarms.cli.main` (tests pass their clients and streams)."""
    return cli.main(argv, settings=settings_when_needed("rollguard alarms"), **options)
