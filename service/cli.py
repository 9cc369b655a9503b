"""The `rollguard` command: each subcommand lives in its own module and parses its own arguments."""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module:function taking argv and returning an exit code, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("service.daemon:main", "run the daemon: consume captures and labels, publish metrics"),
    "demo": ("service.demo:main", "start the local stack, a traffic generator and the daemon"),
    "traffic": ("service.traffic:main", "produce synthetic captures and labels to the configured topics"),
    "devstack": ("service.devstack:main", "start/stop the local Kafka broker and moto server"),
    "import-s3": ("service.s3_import:main", "produce SageMaker Data Capture files from S3 to the captures topic"),
    "status": ("service.status:main", "live view from the running daemon"),
    "query": ("service.query:main", "metric history from CloudWatch, rates computed from the sums"),
    "dashboard": ("alarms.dashboard:main", "write or put a CloudWatch dashboard for an endpoint"),
    "alarms": ("service.alarm_commands:alarms", "alarms plan|apply|simulate"),
    "guardrail": ("service.alarm_commands:guardrail", "print or send the UpdateEndpoint DeploymentConfig"),
    "backtest": ("service.backtest:main", "replay stored messages and evaluate an alarm spec"),
}


def _usage() -> str:
    lines = ["usage: rollguard COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"rollguard: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
