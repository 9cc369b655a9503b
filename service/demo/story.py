"""The reference story, played on the real local stack: the fraud team's V5 -> V6 rollout.

1. Shadow phase: V5 serves, V6 scores every request as the shadow variant; labels arrive
   hours to days (compressed) later. The gate comparison is judged as they arrive, exactly as
   `rollguard gate` judges it, until it decides (or the shadow week ends).
2. Gate: FAIL stops the story with gate's table; PASS goes on to the deploy.
3. Linear shift: `rollguard guardrail`'s UpdateEndpoint request, played by the SageMaker driver
   (service.demo.driver) step by step while CloudWatch's part (service.demo.cloudwatch)
   evaluates the AutoRollbackConfiguration alarms; ALARM rolls the deploy back.
4. A summary and the charts.

Every wait watches the stop event (Ctrl-C): the story then stops the traffic, the daemon,
moto and Kafka, and says so.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alarms import aws_clients
from alarms.guardrail import build_update_endpoint
from alarms.spec import guardrail_alarms, guardrail_verdicts, load_spec
from pipelines.comparison.config import Comparison
from pipelines.comparison.report import render
from service.commands import gate
from service.demo import charts
from service.demo.charts import Marker, Point, Timeline
from service.demo.cloudwatch import AlarmEvaluator, Evaluated
from service.demo.driver import LinearShift, Outcome, Plan
from service.demo.observe import ComparisonView, comparison_view, explain, variants
from service.demo.scenario import GATE, NEW_CONFIG, SHIFT, Scenario
from service.demo.stack import DemoStack
from service.demo.traffic import Generator, TrafficControl, TrafficThread
from service.demo.view import AlarmLine, Screen, View
from service.settings import Settings
from service.status import fetch_status, status_url


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM): stop everything and say so."""


class DemoError(RuntimeError):
    """A part of the demo stopped working (the daemon died, the traffic thread failed)."""


@dataclass
class Result:
    """What happened, for the summary, summary.json and the tests."""

    story: str
    gate: dict[str, Any] = field(default_factory=dict)  # state, after_s, demo_hours, deciding, line
    deploy: dict[str, Any] = field(default_factory=lambda: {"outcome": "not started"})
    traffic: dict[str, int] = field(default_factory=dict)
    charts: list[str] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None
    elapsed_s: float = 0.0
    phases_s: dict[str, float] = field(default_factory=dict)


class _EvaluatorThread(threading.Thread):
    """Polls CloudWatch's part (`AlarmEvaluator.poll`) in the background: a GetMetricData over a
    busy local AWS API takes seconds, and the view must not wait for it."""

    def __init__(self, evaluator: AlarmEvaluator, say: Callable[[str], None], stop: threading.Event) -> None:
        super().__init__(name="demo-cloudwatch", daemon=True)
        self.evaluator, self.say, self.stop_event = evaluator, say, stop
        self.failures = 0

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            try:
                for e in self.evaluator.poll():
                    if e.changed:
                        hint = " (fail-safe: no rollguard data in the period)" if e.reason.startswith("Missing data") else ""
                        self.say(f"CloudWatch (as evaluated by the demo): {e.name} -> {e.state.value}{hint}: "
                                 f"{_short(e.reason)}")
                self.failures = 0
            except Exception as ex:  # noqa: BLE001 - a slow or failing local API: say it, try again
                self.failures += 1
                if self.failures in (1, 10):
                    self.say(f"CloudWatch evaluation failed ({type(ex).__name__}: {str(ex)[:160]}); retrying")


def _short(reason: str, limit: int = 160) -> str:
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def demo_time(seconds: float, hour_s: float) -> str:
    """``"day 1 03:00"``: seconds of shadow phase on the compressed clock."""
    hours = int(seconds / hour_s)
    return f"day {hours // 24} {hours % 24:02d}:00"


class Story:
    def __init__(self, scenario: Scenario, out_dir: Path, view: View, stop: threading.Event,
                 clock: Callable[[], float] = time.time) -> None:
        self.scenario, self.out_dir, self.view, self.stop, self.clock = scenario, out_dir, view, stop, clock
        self.result = Result(scenario.title)
        self.timeline = Timeline()
        self.screen = Screen(title=f"rollguard demo: {scenario.title}")
        self.control = TrafficControl()
        self.background_stop = threading.Event()
        self.stack = DemoStack(scenario, out_dir, self.say)
        self.traffic: TrafficThread | None = None
        self.evaluator: AlarmEvaluator | None = None
        self._evaluator_thread: _EvaluatorThread | None = None
        self.settings: Settings | None = None
        self.comparisons: dict[str, Comparison] = {}
        self.t0: float | None = None  # the traffic started
        self.phase_started = self.clock()
        self.judging: list[str] = [GATE]
        self.views: dict[str, ComparisonView] = {}
        self.looks: dict[str, gate.Look] = {}  # the latest look at each comparison's evidence
        self._last_progress = -1

    # -- output -----------------------------------------------------------------------------

    def say(self, line: str) -> None:
        self.view.event(line)

    def _mark(self, text: str, good: bool | None = None) -> None:
        if self.t0 is not None:
            self.timeline.markers.append(Marker(self.clock() - self.t0, text, good))

    # -- the loop every wait runs -----------------------------------------------------------

    def _check(self) -> None:
        if self.stop.is_set():
            raise Interrupted
        if self.traffic is not None and self.traffic.error is not None:
            raise DemoError(f"the traffic generator failed: {self.traffic.error!r}")
        if not self.stack.daemon_running():
            raise DemoError(f"`rollguard run` exited; see {self.stack.daemon_log}")

    def _observe(self) -> None:
        assert self.settings is not None
        try:
            doc = fetch_status(status_url(self.settings.http_addr), 3.0)
            self.screen.variants = variants(doc, [self.scenario.fleet.shadow_variant])
        except (OSError, ValueError):
            pass  # a busy daemon: keep the last figures
        store = gate.state_store(self.settings)
        for name in self.judging:
            try:
                look = gate.look(store, self.settings, self.comparisons[name])
            except gate.CannotJudge:
                continue  # an object replaced while read: the next look reads it
            previous = self.views.get(name)
            view = comparison_view(self.comparisons[name], look.verdict)
            self.views[name], self.looks[name] = view, look
            if previous is not None and previous.state != view.state:
                self.say(explain(view))
        self.screen.comparisons = [self.views[n] for n in self.judging if n in self.views]
        self.screen.alarms = self._alarm_lines()
        self._record()
        self.view.refresh(self.screen)

    def _alarm_lines(self) -> list[AlarmLine]:
        if self.evaluator is None:
            return []
        states: Mapping[str, Evaluated] = dict(self.evaluator.states)
        return [AlarmLine(n, states[n].state.value, states[n].value, states[n].at) if n in states
                else AlarmLine(n, "not evaluated yet") for n in self.evaluator.names]

    def _record(self) -> None:
        if self.t0 is None:
            return
        knobs = self.control.get()
        current = self.judging[-1]
        view = self.views.get(current)
        self.timeline.points.append(Point(
            self.clock() - self.t0, 0.0 if knobs.shadow else knobs.candidate_share, knobs.shadow,
            recall={v.label: v.recall for v in self.screen.variants},
            precision={v.label: v.precision for v in self.screen.variants},
            comparison=current, worst=view.worst if view else None))

    def wait(self, seconds: float) -> bool:
        """Observe every second for ``seconds``, then False (the driver's "not stopping"); Ctrl-C
        raises Interrupted instead, which ends the story wherever it is."""
        deadline = self.clock() + seconds
        while True:
            self._check()
            started = self.clock()
            self._observe()
            left = deadline - self.clock()
            if left <= 0:
                return False
            self.stop.wait(min(left, max(0.0, 1.0 - (self.clock() - started))))

    # -- the story --------------------------------------------------------------------------

    def run(self) -> Result:
        started = self.clock()
        try:
            self.settings = self.stack.start(self.stop.is_set)
            self.result.phases_s["start"] = round(self.clock() - started, 1)
            self._play()
        except (Interrupted, KeyboardInterrupt):
            self.result.interrupted = True
            self.say("interrupted: stopping the traffic, the daemon, the AWS API and Kafka")
        except Exception as ex:  # noqa: BLE001 - one line for the user; the files keep the details
            text = str(ex)
            self.result.error = f"{type(ex).__name__}: {text.splitlines()[0] if text else ''}"
            self.say(f"the demo stopped: {type(ex).__name__}: {text}")
        finally:
            stopping = self.clock()
            self._stop_background()
            self.stack.stop()
            self.result.phases_s["stop"] = round(self.clock() - stopping, 1)
        self.result.elapsed_s = round(self.clock() - started, 1)
        self._finish()
        return self.result

    def _stop_background(self) -> None:
        self.background_stop.set()
        for thread in (self.traffic, self._evaluator_thread):
            if thread is not None:
                thread.join(timeout=15)
        if self.traffic is not None:
            self.result.traffic = {**self.traffic.generator.counts, **{f"sent {k}": v for k, v in self.traffic.sent.items()},
                                   "labels still due": self.traffic.pending_labels()}

    def _play(self) -> None:
        assert self.settings is not None
        s, t = self.scenario, self.scenario.timing
        spec = load_spec(str(self.stack.spec_path))
        self.comparisons = {c.name: c for c in gate.load_comparisons(str(self.stack.spec_path))}
        names = [*guardrail_alarms(spec, s.fleet.endpoint), *guardrail_verdicts(spec, s.fleet.endpoint)]
        cloudwatch = aws_clients.client_for("cloudwatch", self.settings)
        generator = Generator(baseline=s.baseline, candidate=s.candidate, population=s.population,
                              fleet=s.fleet, hour_s=t.hour_s, seed=s.seed)
        self.traffic = TrafficThread(self.settings, generator, self.control, s.rate, self.background_stop)
        decided = self._shadow_phase()
        if decided is None or decided.state != "PASS":
            return
        outcome = self._deploy(names, cloudwatch)
        self.result.deploy = {"outcome": "stopped" if outcome.stopped else "promoted" if outcome.promoted else "rolled back",
                              "pct": outcome.pct, "alarms": list(outcome.alarms), "reasons": list(outcome.reasons),
                              "after_s": round(outcome.at - self.phase_started, 1)}
        self.result.phases_s["shift"] = round(self.clock() - self.phase_started, 1)
        self.screen.phase = "promoted" if outcome.promoted else "rolled back"
        self.wait(2.0)  # the traffic after the decision, for the charts

    def _shadow_phase(self) -> ComparisonView | None:
        s, t = self.scenario, self.scenario.timing
        fraud = s.population.fraud_rate
        self.screen.phase, self.screen.traffic = "shadow", (
            f"{s.baseline.version} serves 100 %; {s.candidate.version} shadows every request as "
            f"{s.fleet.shadow_variant} (answers logged, never served)")
        self.screen.note = (f"{s.rate:g} inferences/s, fraud rate {fraud:.0%} (a demo rate: the reference story's is "
                            f"0.1 %); labels hours to days later on a compressed clock, 1 s = {1 / t.hour_s:g} demo hour(s)")
        self.say(f"shadow phase: {s.candidate.version} scores every request beside {s.baseline.version}; "
                 f"the gate comparison {GATE} is judged as the labels arrive")
        assert self.traffic is not None
        self.traffic.start()
        self.t0 = self.phase_started = self.clock()
        while True:  # one look a second; the first that decides ends the phase
            started = self.clock()
            elapsed = started - self.t0
            self.screen.clock = f"shadow {demo_time(elapsed, t.hour_s)} (of {t.shadow_days:g} days)"
            self._check()
            self._observe()
            view = self.views.get(GATE)
            self._progress(view, elapsed)
            if (view is not None and view.state != "INCONCLUSIVE") or elapsed >= t.shadow_s:
                break
            self.stop.wait(max(0.0, 1.0 - (self.clock() - started)))
        elapsed = self.clock() - self.t0
        self.result.phases_s["shadow"] = round(elapsed, 1)
        return self._gate(view, elapsed)

    def _progress(self, view: ComparisonView | None, elapsed: float) -> None:
        """A line every 3 demo hours while the gate is undecided: the move toward a decision."""
        step = int(elapsed / (3 * self.scenario.timing.hour_s))
        if view is None or view.state != "INCONCLUSIVE" or view.worst is None or step == self._last_progress:
            return
        self._last_progress = step
        self.say(f"{demo_time(elapsed, self.scenario.timing.hour_s)}: {explain(view)}")

    def _gate(self, view: ComparisonView | None, elapsed: float) -> ComparisonView | None:
        """Print gate's table, as `rollguard gate` prints it, for the look that decided: the
        verdict is not latched, and a look a moment later judges other counts."""
        assert self.settings is not None
        comparison = self.comparisons[GATE]
        look = self.looks.get(GATE) or gate.look(gate.state_store(self.settings), self.settings, comparison)
        view = comparison_view(comparison, look.verdict)
        self.views[GATE] = view
        state = view.state
        code = gate.EXIT_CODES[look.verdict.state]
        when = demo_time(elapsed, self.scenario.timing.hour_s)
        self._mark(f"gate {state}", {"PASS": True, "FAIL": False}.get(state))
        self.say(f"gate {state} on shadow {when}, {elapsed:.0f} s after the traffic started: {explain(view)}")
        lines = [f"$ rollguard gate --spec {self.stack.spec_path} --comparison {GATE}    (exit {code}: {state})"]
        lines += [f"{gate.PROG}: warning: {p}" for p in look.problems]
        self.view.print("\n".join(lines) + "\n" + render(comparison, look.verdict))
        worst = view.worst
        self.result.gate = {"state": state, "exit_code": code, "after_s": round(elapsed, 1),
                            "demo_hours": round(elapsed / self.scenario.timing.hour_s, 1), "line": explain(view),
                            "deciding": None if view.deciding is None else
                            {"metric": view.deciding.metric, "segment": view.deciding.segment},
                            "worst": None if worst is None else asdict(worst)}
        self.screen.phase = f"gate {state}"
        self.view.refresh(self.screen)
        deciding = view.deciding
        if state == "FAIL" and deciding is not None:
            pooled = view.pooled(deciding.metric)
            hidden = "" if deciding.segment is None or pooled is None or pooled.state == "FAIL" else (
                f"; pooled, {deciding.metric} is {pooled.describe(where=False)}, no FAIL: a pooled-only alarm "
                "would have let it through (the V4 story, caught before any customer saw it)")
            self.say(f"the gate says do not deploy {self.scenario.candidate.version}: {deciding.where} FAILs{hidden}")
        elif state == "INCONCLUSIVE":
            self.say("the shadow week ended undecided: the gate says wait for more labels (exit 2)")
        return view

    def _deploy(self, names: Sequence[str], cloudwatch: Any) -> Outcome:
        s, t = self.scenario, self.scenario.timing
        request = build_update_endpoint(s.fleet.endpoint, NEW_CONFIG, names, linear_pct=t.step_pct,
                                        wait_s=int(round(t.bake_s)))
        plan = Plan.from_request(request, bake_s=t.bake_s)
        wait = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["WaitIntervalInSeconds"]
        self.say(f"$ rollguard guardrail --endpoint {s.fleet.endpoint} --endpoint-config {NEW_CONFIG} "
                 f"--spec {self.stack.spec_path.name} --linear {t.step_pct}% --wait {wait}: the UpdateEndpoint request "
                 f"SageMaker plays, AutoRollbackConfiguration {', '.join(plan.alarms)}")
        self.judging = [GATE, SHIFT]
        self.screen.phase = "deploy"
        self.screen.traffic = f"{s.baseline.version} serves 100 % (the shadow phase is over)"
        every = t.evaluation_every_s
        self.screen.note = ("alarms evaluated every " + (f"{every} s (--fast; CloudWatch evaluates 60 s alarms once a "
                            "minute)" if every else "minute, as CloudWatch does") +
                            f"; bake {t.bake_s:g} s per step (the reference story: 300 s)")
        self.control.shift(0.0)
        self.phase_started = self.clock()
        # CloudWatch's part from now on: the guardrail alarms matter from the deploy on
        self.evaluator = AlarmEvaluator(cloudwatch, names, every_s=t.evaluation_every_s, clock=self.clock)
        self._evaluator_thread = _EvaluatorThread(self.evaluator, self.say, self.background_stop)
        self._evaluator_thread.start()
        self._alarms_ok(plan)
        self.phase_started = self.clock()
        self.screen.phase = "shift"

        def shift(pct: int) -> None:
            self.control.shift(pct / 100)
            self._record()
            self.screen.traffic = f"{s.candidate.version} serves {pct} %, {s.baseline.version} {100 - pct} %"
            self.screen.clock = f"linear shift, {pct} % on {NEW_CONFIG}"
            self._mark(f"{pct} %")
            if s.regress_after_shift and pct == s.regress_at_pct:
                self.control.inject(s.regress_after_shift)
                what = "4 % of its requests fail" if s.regress_after_shift == "errors" else \
                    "a quarter of its requests take 45-120 ms"
                self.say(f"injected a regression into {s.candidate.version} at {pct} %: {what}")
                self._mark(f"regression ({s.regress_after_shift})", False)

        def states(alarms: Sequence[str]) -> dict[str, tuple[str, str]]:
            found = cloudwatch.describe_alarms(AlarmNames=list(alarms)).get("MetricAlarms", [])
            return {a["AlarmName"]: (a.get("StateValue", "OK"), a.get("StateReason", "")) for a in found}

        driver = LinearShift(plan, shift=shift, states=states, say=self.say, clock=self.clock, wait=self.wait)
        outcome = driver.run()
        if outcome.stopped:
            raise Interrupted
        if outcome.promoted:
            self._mark("promoted", True)
        else:
            self._mark(f"rolled back at {outcome.pct} %", False)
            for name, reason in zip(outcome.alarms, outcome.reasons):
                self.say(f"{name}: {_short(reason, 240)}")
            view = self.views.get(SHIFT)
            if view is not None and view.state == "FAIL":
                self.say(explain(view))
        self.screen.traffic = (f"{s.candidate.version} serves 100 %" if outcome.promoted
                               else f"{s.baseline.version} serves 100 % again (rolled back)")
        return outcome

    def _alarms_ok(self, plan: Plan) -> None:
        """Before the first shift, every guardrail alarm evaluated and OK: a deploy started on an
        alarm in ALARM rolls back at once, and fail-safe alarms read ALARM until a whole
        period of rollguard's data exists."""
        assert self.evaluator is not None
        said = False
        while True:
            lines = self._alarm_lines()
            if self.evaluator.evaluated_all() and all(a.state == "OK" for a in lines):
                return
            if not said:
                self.say("waiting for CloudWatch's next evaluation: SageMaker starts the deploy once every "
                         "guardrail alarm reads OK")
                said = True
            self.screen.clock = "deploy: waiting for the guardrail alarms to read OK"
            self.wait(1.0)

    # -- the end ----------------------------------------------------------------------------

    def _finish(self) -> None:
        r = self.result
        if self.timeline.points:
            try:
                r.charts = [str(p) for p in charts.write_charts(self.timeline, self.out_dir,
                                                                  hour_s=self.scenario.timing.hour_s)]
            except ImportError:
                self.say("charts skipped: matplotlib is not installed (pip install 'rollguard[plot]')")
        (self.out_dir / "summary.json").write_text(json.dumps(asdict(r), indent=2, default=str) + "\n")


def summary_text(r: Result, out_dir: Path) -> str:
    lines = ["", "summary", f"  story: {r.story}"]
    t = r.traffic
    if t:
        lines.append(f"  traffic: {t.get('inferences', 0):,} inferences ({t.get('frauds', 0):,} frauds), "
                     f"{t.get('sent captures', 0):,} captures and {t.get('sent labels', 0):,} labels produced, "
                     f"{t.get('labels still due', 0):,} labels still due")
    g = r.gate
    if g:
        lines.append(f"  gate: {g['state']} after {g['after_s']:g} s (shadow {g['demo_hours']:g} demo hours): {g['line']}")
    d = r.deploy
    if d.get("outcome") == "promoted":
        lines.append(f"  deploy: promoted to 100 % after {d['after_s']:g} s of linear shift")
    elif d.get("outcome") == "rolled back":
        lines.append(f"  deploy: rolled back at {d['pct']} % by {', '.join(d['alarms'])}")
    else:
        lines.append(f"  deploy: {d.get('outcome')}")
    if r.interrupted:
        lines.append("  interrupted: the daemon, the AWS API and Kafka were stopped")
    if r.error:
        lines.append(f"  error: {r.error}")
    lines.append(f"  took {r.elapsed_s:g} s ({', '.join(f'{k} {v:g} s' for k, v in r.phases_s.items())})")
    lines.append(f"  files in {out_dir}: " + ", ".join(
        [Path(p).name for p in r.charts] + ["summary.json", "spec.yaml", "daemon.log"]))
    return "\n".join(lines) + "\n"
