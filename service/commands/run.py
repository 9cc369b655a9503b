"""`rollguard run`: the daemon (service.daemon, wired by service.wiring) until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable

from service import checkpoint, verdicts
from service.commands.base import add_log_level, configure_logging, exit_code, fail, load_or_exit
from service.daemon import Daemon
from service.signals import stop_on_signals
from service.wiring import serve

log = logging.getLogger("rollguard")
PROG = "rollguard"


def main(argv: list[str], *, serve_daemon: Callable[..., Daemon] = serve) -> int:
    """0 after a stop signal; 2 (one line) if it cannot start; 1 if it stopped on an error."""
    parser = argparse.ArgumentParser(prog="rollguard run", description="Consume captures and labels, publish metrics.")
    add_log_level(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level, quiet=("kafka", "apscheduler"))
    settings = load_or_exit()
    try:  # before Kafka is contacted, so a wrong path is the one line printed
        checkpoint.check_writable(settings.state_dir)
    except OSError as ex:
        where = f" ({ex.filename})" if ex.filename and str(ex.filename) != settings.state_dir else ""
        return fail(PROG, f"invalid setting ROLLGUARD_STATE_DIR={settings.state_dir!r}: cannot write checkpoints "
                          f"there: {ex.strerror or ex}{where}")
    try:  # the spec's comparisons: a wrong spec is one line, before Kafka is contacted
        verdicts.load_comparisons(settings)
    except ValueError as ex:
        return fail(PROG, str(ex))
    stop = threading.Event()
    stop_on_signals(stop)
    running = threading.Event()  # set once topics are checked and the clients and store are built
    try:
        serve_daemon(settings, stop, started=lambda _daemon: running.set())
    except SystemExit as ex:  # one line: a refused start or a failed final checkpoint
        return exit_code(ex)
    except Exception as ex:
        if isinstance(ex.__cause__, ValueError) and type(ex).__module__.startswith("kafka"):
            # kafka-python wraps what our rebalance listener raised (say, a refused checkpoint)
            return fail(PROG, f"stopped: {ex.__cause__}")
        module, name = type(ex).__module__, type(ex).__name__
        environmental = isinstance(ex, OSError) or module.startswith(("kafka", "service.topics", "botocore"))
        text = " ".join(str(ex).split())  # botocore and HTML error bodies can span lines
        detail = text if text.startswith(name) or module.startswith("service.") else f"{name}: {text}"
        if not running.is_set():  # one clear line for start-up failures (unreachable Kafka, missing topic)
            if environmental:
                return fail(PROG, f"cannot start: {detail}")
            raise
        if not environmental:  # a bug: keep the traceback for the report
            log.error("the daemon loop failed", exc_info=ex)
        return fail(PROG, f"stopped: {detail}", 1)
    return 0
