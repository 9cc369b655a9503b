"""`rollguard traffic`: synthetic traffic to the configured topics (docker-compose uses it)."""
from __future__ import annotations

import argparse
import threading

from service.commands.base import load_or_exit
from service.devstack.traffic import produce_forever
from service.signals import stop_on_signals


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rollguard traffic", description="produce synthetic captures and labels")
    parser.add_argument("--rate", type=int, default=50, help="inferences per second")
    args = parser.parse_args(argv)
    stop = threading.Event()
    stop_on_signals(stop)
    produce_forever(load_or_exit(), args.rate, stop)
    return 0
