"""`rollguard devstack fetch|up|down|env`: the local Kafka broker and moto server (service.devstack)."""
from __future__ import annotations

import argparse
import sys

from service import devstack
from service.devstack import KAFKA_VERSION, fetch_kafka, stack


def main(argv: list[str]) -> int:
    """Returns the exit code."""
    parser = argparse.ArgumentParser(prog="rollguard devstack", description=devstack.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help=f"resolve the Kafka {KAFKA_VERSION} jars into the cache")
    up = sub.add_parser("up", help="start Kafka + moto, create the topics, print export lines")
    up.add_argument("--partitions", type=int, default=4, help="partitions of each topic (default 4)")
    up.add_argument("--detach", action="store_true", help="leave the stack running; stop it with `down`")
    sub.add_parser("down", help="stop a detached stack")
    sub.add_parser("env", help="print the export lines of a detached stack")
    args = parser.parse_args(argv)

    if args.command == "fetch":
        print(fetch_kafka())
        return 0
    if args.command == "up":
        if args.partitions < 1:
            parser.error("--partitions must be >= 1")
        return stack.up(args.partitions, args.detach)
    state = stack.load_state()
    if state is None or not stack.state_alive(state):
        print("rollguard devstack: no detached stack is running", file=sys.stderr)
        if state is not None and args.command == "down":
            stack.stop_recorded(state)  # clean whatever half is left, and the temp dirs
            stack.state_path().unlink(missing_ok=True)
        return 1
    if args.command == "env":
        stack.print_exports(state["env"])
        return 0
    stack.stop_recorded(state)
    stack.state_path().unlink(missing_ok=True)
    print("stopped", file=sys.stderr)
    return 0
