"""`rollguard import-s3`: SageMaker Data Capture files from S3 to the captures topic, each once
(service.s3_import)."""
from __future__ import annotations

import argparse
import threading
from collections.abc import Callable

from service.commands.base import fail, load_or_exit, variant_version
from service.s3_import.edges import ConfigError, Edges, SourceError, production_edges
from service.s3_import.importer import Importer, PassResult
from service.s3_import.layout import LAYOUT, S3Prefix, parse_prefix
from service.s3_import.ledger import load_ledger
from service.s3_import.records import VariantTags
from service.settings import Settings, load_settings
from service.signals import stop_on_signals

PROG = "rollguard import-s3"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 86400 * 365:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0 seconds and less than a year")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Produce SageMaker Data Capture files from S3 to the captures topic, each once.",
    )
    parser.add_argument("--prefix", required=True, metavar="s3://BUCKET/PREFIX/",
                        help=f"Data Capture destination (or a parent of it); keys end in {LAYOUT}")
    parser.add_argument("--once", action="store_true", help="import what is there now, print a summary, exit")
    parser.add_argument("--interval", type=_positive, default=60.0, metavar="S",
                        help="seconds between passes when polling (default 60)")
    parser.add_argument("--shadow-variant", action="append", default=[], metavar="VARIANT",
                        help="mark captures of this variant as shadow (header shadow=true); repeatable")
    parser.add_argument("--model-version", action="append", default=[], type=variant_version,
                        metavar="VARIANT=VERSION", help="header model_version for this variant's captures; repeatable")
    return parser


def main(
    argv: list[str], *, load: Callable[[], Settings] = load_settings,
    edges: Callable[[Settings], Edges] = production_edges, stop: threading.Event | None = None,
) -> int:
    """Exit codes: 0 done (or stopped by SIGTERM/SIGINT while polling); 1 a --once pass that did not
    import everything; 2 a usage or configuration error (bad prefix, missing bucket, unreachable Kafka)."""
    try:
        args = _parser().parse_args(argv)
        settings = load_or_exit(PROG, load=load)
    except SystemExit as ex:  # argparse has printed usage and the error, or load_or_exit the setting
        return int(ex.code or 0)
    try:
        prefix = parse_prefix(args.prefix)
    except ValueError as ex:
        return fail(PROG, str(ex))
    tags = VariantTags(frozenset(args.shadow_variant), dict(args.model_version))
    try:
        io = edges(settings)
        io.objects.check(prefix)
        ledger = load_ledger(io.store, prefix)  # a bad ledger is reported before Kafka is touched
        io.check_topic()
        sink = io.open_sink()
    except (ConfigError, ValueError, OSError) as ex:
        return fail(PROG, str(ex).splitlines()[0] if str(ex) else type(ex).__name__)
    stop = stop if stop is not None else threading.Event()
    restore = stop_on_signals(stop)  # the current file is finished first
    try:
        importer = Importer(prefix, objects=io.objects, sink=sink, store=io.store, tags=tags, ledger=ledger)
        return _loop(importer, prefix, once=args.once, interval=args.interval, stop=stop)
    finally:
        restore()
        sink.close()


def _loop(importer: Importer, prefix: S3Prefix, *, once: bool, interval: float, stop: threading.Event) -> int:
    reported: set[str] = set()
    while True:
        result: PassResult | None = None
        try:
            result = importer.run_once(stop)
        except SourceError as err:
            if once:
                fail(PROG, str(err))
                return 2
            fail(PROG, f"{err}; trying again in {interval:g} s")
        except Exception as err:  # e.g. the ledger could not be saved: a daemon keeps going
            if once:
                raise
            fail(PROG, f"pass failed: {type(err).__name__}: {err}".splitlines()[0] + f"; trying again in {interval:g} s")
        if result is not None:
            new_skips = [s for s in result.skipped if s.key not in reported]
            for skip in new_skips:
                # Once per key per process: a stray key must not repeat every poll.
                fail(PROG, f"skipped {prefix.object_uri(skip.key)}: {skip.reason}")
                reported.add(skip.key)
            for key, number, reason in result.refused:
                fail(PROG, f"{prefix.object_uri(key)} line {number} not produced: {reason}")
            if result.error:
                fail(PROG, result.error)
            if once or result.files or new_skips or not result.ok:
                print(result.summary(prefix), flush=True)
            if once:
                return 0 if result.ok else 1
        if stop.wait(interval):
            return 0
