"""`rollguard run`: the daemon (service.daemon, wired by service.wiring) until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable
from typing import Any

from service import checkpoint, verdicts
from service.commands.base import LOG_FORMAT, add_log_level, configure_logging, exit_code, fail, load_or_exit
from service.daemon import Daemon, RestoreRefused
from service.settings import MAX_WORKERS, Settings
from service.signals import dump_stacks_on_signal, stop_on_signals
from service.wiring import serve
from service.workers.link import LinkFds, WorkerLink
from service.workers.serve import serve_workers

log = logging.getLogger("rollguard")
PROG = "rollguard"


def worker_count(arg: str | None, settings: Settings) -> int | str:
    """The number of worker processes to run, or the one-line reason it cannot be run so."""
    if arg is not None:
        if not arg.isdigit() or not 1 <= int(arg) <= MAX_WORKERS:
            return f"invalid --workers {arg!r}: must be a whole number >= 1 and <= {MAX_WORKERS}"
        count, explicit = int(arg), True
    else:
        count, explicit = settings.workers, "workers" in settings.model_fields_set
    if count > 1 and settings.segment_first_come:
        # first-come segment values are admitted per process, so workers could map them differently
        if explicit:
            return (f"{count} workers need the segment values listed (ROLLGUARD_SEGMENT_VALUES): "
                    "ROLLGUARD_SEGMENT_FIRST_COME=true admits them per process; set ROLLGUARD_WORKERS=1")
        log.info("ROLLGUARD_SEGMENT_FIRST_COME=true: one worker (set ROLLGUARD_SEGMENT_VALUES to use every core)")
        return 1
    return count


def main(argv: list[str], *, serve_daemon: Callable[..., Daemon] = serve,
         serve_pool: Callable[..., int] = serve_workers) -> int:
    """0 after a stop signal; 2 (one line) if it cannot start; 1 if it stopped on an error.

    With more than one worker (``--workers``, ROLLGUARD_WORKERS) this process supervises that
    many worker processes (service.workers) and its exit code sums up how they drained."""
    parser = argparse.ArgumentParser(prog="rollguard run", description="Consume captures and labels, publish metrics.")
    add_log_level(parser)
    parser.add_argument("--workers", metavar="N",
                        help="consumer processes in the group on this host (default: ROLLGUARD_WORKERS, one per core)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor: this is worker I
    parser.add_argument("--link", help=argparse.SUPPRESS)  # ... with these pipes to it (service.workers.link)
    args = parser.parse_args(argv)
    if args.worker is not None:  # its lines are told apart from its siblings' in the shared log
        logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT.replace(
            "%(name)s:", f"%(name)s[worker {args.worker}]:"))
    configure_logging(args.log_level, quiet=("kafka", "apscheduler"))
    settings = load_or_exit()
    count = 1 if args.worker is not None else worker_count(args.workers, settings)
    if isinstance(count, str):
        return fail(PROG, count)
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
    dump_stacks_on_signal()
    running = threading.Event()  # set once topics are checked and the clients and store are built
    worker: dict[str, Any] = {}
    if args.worker is not None and args.link is not None:
        link = WorkerLink(LinkFds.parse(args.link))
        link.watch_parent(stop)  # a worker never outlives its supervisor
        worker = {"listening": lambda addr: link.report(http=f"{addr[0]}:{addr[1]}"),
                  "http_label": f"worker {args.worker} api"}
    try:
        if count > 1:
            return serve_pool(settings, stop, count=count, log_level=args.log_level,
                              started=lambda _view: running.set())
        serve_daemon(settings, stop, started=lambda _daemon: running.set(), **worker)
    except SystemExit as ex:  # one line: a refused start or a failed final checkpoint
        return exit_code(ex)
    except Exception as ex:
        if isinstance(ex, RestoreRefused):  # a partition's checkpoint the daemon will not load
            return fail(PROG, f"stopped: {ex}")
        if isinstance(ex.__cause__, ValueError) and type(ex).__module__.startswith("kafka"):
            # kafka-python wraps what our rebalance listener raised (say, a checkpoint it cannot write)
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
