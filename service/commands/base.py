"""What every `rollguard` command shares: the settings, loaded with a one-line error; one-line
failures and the SystemExit-with-a-line convention; --log-level; VARIANT=VERSION arguments.

Exit codes: 0 done, 1 the command ran and failed, 2 it could not run as asked (usage,
settings, unreachable inputs), each failure one line on stderr starting with the command's name.
"""
from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from service.settings import Settings, SettingsError, load_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def fail(prog: str, message: str, code: int = 2, *, err: TextIO | None = None) -> int:
    """Print ``prog: message`` on stderr (or ``err``) and return ``code``, for ``return fail(...)``."""
    print(f"{prog}: {message}", file=err or sys.stderr, flush=True)
    return code


def load_or_exit(prog: str = "rollguard", *, load: Callable[..., Settings] = load_settings,
                 **overrides: Any) -> Settings:
    """The settings, or ``prog: <the one-line error>`` on stderr and SystemExit(2) on a wrong setting."""
    try:
        return load(**overrides)
    except SettingsError as err:
        fail(prog, str(err))
        raise SystemExit(2) from None


def settings_when_needed(prog: str) -> Callable[[], Settings]:
    """Settings loaded on the first call only (then the same object), for commands where only some
    subcommands need them, so ``--help`` works whatever the settings."""
    return functools.cache(functools.partial(load_or_exit, prog))


def exit_code(ex: SystemExit, *, err: TextIO | None = None) -> int:
    """The exit code a SystemExit stands for: one carrying a line (a ``str``) prints it and means 2."""
    if isinstance(ex.code, str):
        print(ex.code, file=err or sys.stderr, flush=True)
        return 2
    return 0 if ex.code is None else int(ex.code)


def add_log_level(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    parser.add_argument("--log-level", default=default)


def configure_logging(level: str, quiet: Iterable[str] = ()) -> None:
    """Log to stderr at ``level``; the loggers in ``quiet`` (chatty libraries) at WARNING."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


def variant_version(text: str) -> tuple[str, str]:
    """An argparse type: ``VARIANT=MODEL_VERSION`` -> (variant, model version)."""
    variant, sep, version = text.partition("=")
    if not sep or not variant or not version:
        raise argparse.ArgumentTypeError(f"{text!r} is not VARIANT=MODEL_VERSION")
    return variant, version
