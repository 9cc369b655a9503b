"""The `rollguard` command: each subcommand lives in its own module and parses its own arguments."""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module under service.commands whose main(argv) returns an exit code, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the daemon: consume captures and labels, publish metrics"),
    "demo": ("demo", "the reference story on the local stack: shadow phase, gate, linear shift, rollback"),
    "traffic": ("traffic", "produce synthetic captures and labels to the configured topics"),
    "devstack": ("devstack", "start/stop the local Kafka broker and moto server"),
    "import-s3": ("import_s3", "produce SageMaker Data Capture files from S3 to the captures topic"),
    "status": ("status", "live view from the running daemon"),
    "query": ("query", "metric history from CloudWatch, rates computed from the sums; a comparison's verdicts"),
    "gate": ("gate", "judge a comparison once: exit 0 PASS, 1 FAIL, 2 INCONCLUSIVE, 3 could not judge"),
    "watch": ("watch", "judge a comparison after the deploy; roll back with UpdateEndpoint on FAIL"),
    "dashboard": ("dashboard", "write or put a CloudWatch dashboard for an endpoint"),
    "alarms": ("alarms", "alarms plan|apply|simulate"),
    "guardrail": ("guardrail", "print or send the UpdateEndpoint DeploymentConfig"),
    "backtest": ("backtest", "replay stored messages and evaluate an alarm spec"),
    "cost": ("cost", "CloudWatch metric count and monthly estimate of the settings and spec"),
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
    module, _ = COMMANDS[name]
    command = importlib.import_module(f"service.commands.{module}")
    return int(command.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
