"""`rollguard dashboard`: alarms/dashboard.py, handed the Settings (loaded only when needed)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alarms import dashboard
from service.commands.base import settings_when_needed


def main(argv: Sequence[str] | None = None, **options: Any) -> int:
    """``options`` go to `alarms.dashboard.main` (tests pass their clients and streams)."""
    return dashboard.main(argv, settings=settings_when_needed("rollguard dashboard"), **options)
