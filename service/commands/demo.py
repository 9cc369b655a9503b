"""`rollguard demo`: the reference story on the real local stack, in about three minutes.

Starts a Kafka broker and the AWS API (moto over HTTP), applies the demo's alarm spec with
`rollguard alarms apply`, runs the daemon (`rollguard run`) and plays the fraud team's V5 -> V6
rollout on a compressed clock (service/demo/story.py):

- default: V6 has a V4-style regression in one merchant category; the shadow phase's gate
  goes from INCONCLUSIVE to FAIL on that category while the pooled figures look fine, and the
  story stops with gate's table;
- ``--good``: a clean V6 passes the gate and is shifted 10 % a step, each step baked while the
  guardrail alarms are watched, to 100 %;
- ``--regress-after-shift [errors|latency]``: the clean V6 regresses at 30 % and the
  comparison's verdict alarm rolls the deploy back.

Ends with a summary and PNG charts in the directory it names. Ctrl-C stops everything.
Exit codes: 0 the story was played (whatever its outcome), 1 the demo failed, 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import threading
from pathlib import Path

from service.commands.base import LOG_FORMAT
from service.demo.behaviour import REGRESSIONS
from service.demo.scenario import Scenario
from service.demo.story import Story, summary_text
from service.demo.view import make_view
from service.signals import stop_on_signals

PROG = "rollguard demo"
INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--good", action="store_true", help="a clean V6: it passes the gate and is shifted to 100 %%")
    p.add_argument("--regress-after-shift", nargs="?", const="errors", choices=REGRESSIONS, metavar="KIND",
                   help="a clean V6 that regresses at 30 %% of the shift: errors (the default) or latency; "
                        "the verdict alarm rolls it back")
    p.add_argument("--fast", action="store_true",
                   help="test mode: faster labels, 5 s bakes, wider tolerances, alarms evaluated every 10 s")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view (the default without a TTY)")
    p.add_argument("--out", type=Path, help="directory for the charts and the summary (default: a new temporary one)")
    p.add_argument("--rate", type=float, default=None, help="inferences per second (default 400)")
    p.add_argument("--seed", type=int, default=None, help="traffic seed")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    overrides: dict[str, object] = {}
    if args.rate is not None:
        if not 10 <= args.rate <= 5000:
            parser().error("--rate must be 10-5000 inferences per second")
        overrides["rate"] = args.rate
    if args.seed is not None:
        overrides["seed"] = args.seed
    scenario = Scenario.of(good=args.good, regress_after_shift=args.regress_after_shift, fast=args.fast, **overrides)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="rollguard-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    stop_on_signals(stop)
    view = make_view(plain=True if args.plain else None, every_s=5.0 if args.fast else 10.0)
    view.print(f"rollguard demo: {scenario.title}\n"
               f"files: {out_dir}  (Ctrl-C stops everything)\n"
               "starting Kafka, the AWS API (moto) and the daemon ...")
    try:
        result = Story(scenario, out_dir, view, stop).run()
    finally:
        view.close()
    print(summary_text(result, out_dir), end="", flush=True)
    if result.interrupted:
        return INTERRUPTED
    return 1 if result.error else 0
