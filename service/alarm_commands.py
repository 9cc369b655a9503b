"""`rollguard alarms` and `rollguard guardrail`: the alarms package's commands, given the Settings.

`alarms/` does not import `service/`, so its commands are handed the settings (namespace, region,
endpoint: environment, .env or ROLLGUARD_CONFIG_FILE, like every other command). They are loaded
only when a subcommand needs them, so `--help` and `alarms simulate` work whatever the settings.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from alarms import cli as alarms_cli
from alarms import guardrail as guardrail_cli
from service.settings import Settings, load_or_exit


def _settings(prog: str) -> Callable[[], Settings]:
    return functools.cache(functools.partial(load_or_exit, prog))


def alarms(argv: Sequence[str] | None = None, **options: Any) -> int:
    """`rollguard alarms ...` (alarms/cli.py); ``options`` go to `alarms.cli.main`."""
    return alarms_cli.main(argv, settings=_settings("rollguard alarms"), **options)


def guardrail(argv: Sequence[str] | None = None, **options: Any) -> int:
    """`rollguard guardrail ...` (alarms/guardrail.py); ``options`` go to `alarms.guardrail.main`."""
    return guardrail_cli.main(argv, settings=_settings("rollguard guardrail"), **options)
