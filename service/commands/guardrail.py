"""`rollguard guardrail`: alarms/guardrail.py, handed the Settings (loaded only for --apply)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alarms import guardrail
from service.commands.base import settings_when_needed


def main(argv: Sequence[str] | None = None, **options: Any) -> int:
    """``options`` go to `alarms.guardrail.main` (tests pass their clients and streams)."""
    return guardrail.main(argv, settings=settings_when_needed("rollguard guardrail"), **options)
