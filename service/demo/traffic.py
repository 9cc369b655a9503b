"""The demo's traffic, driven by time: every moment's inferences (served by V5, by V6 for the
share the deploy has shifted, and scored by the V6 shadow during the shadow phase), and each
label delivered when its delay has passed.

`Generator` is pure (a seeded ``random.Random``, the time passed in); `TrafficThread` is the
I/O: it produces the generator's records to Kafka in real time. Delays are compressed (one
demo hour is ``hour_s`` real seconds); timestamps are the real wall clock, so everything stays
within what CloudWatch accepts.
"""
from __future__ import annotations

import heapq
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.demo.behaviour import (
    V5,
    V6_REGRESSED,
    Agreement,
    Behaviour,
    LabelDelays,
    Population,
    flags,
    score,
)


@dataclass(frozen=True)
class Fleet:
    """The endpoint's names: blue/green keeps the production variant's name, the model version
    tells the fleets apart; the shadow variant carries the candidate during the shadow phase."""

    endpoint: str = "fraud-ep"
    variant: str = "AllTraffic"
    shadow_variant: str = "v6-shadow"


@dataclass(frozen=True)
class Knobs:
    """What the traffic looks like now: a shadow phase (the candidate scores every request,
    never served), the candidate's share of served traffic (a traffic shift), an injected
    regression in the candidate."""

    shadow: bool = True
    candidate_share: float = 0.0
    regression: str | None = None


class TrafficControl:
    """The knobs the story turns while the traffic thread reads them (thread-safe)."""

    def __init__(self, knobs: Knobs = Knobs()) -> None:
        self._lock = threading.Lock()
        self._knobs = knobs

    def get(self) -> Knobs:
        with self._lock:
            return self._knobs

    def shift(self, share: float) -> None:
        """Serve ``share`` of the traffic by the candidate; the shadow phase is over."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a traffic share is in [0, 1], got {share!r}")
        with self._lock:
            self._knobs = Knobs(shadow=False, candidate_share=share, regression=self._knobs.regression)

    def inject(self, regression: str | None) -> None:
        with self._lock:
            k = self._knobs
            self._knobs = Knobs(k.shadow, k.candidate_share, regression)


@dataclass
class Batch:
    captures: list[dict[str, Any]] = field(default_factory=list)
    labels: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (due epoch ms, label)


class Generator:
    """Inferences and their labels, a batch at a time (pure: seeded, time passed in)."""

    def __init__(self, *, baseline: Behaviour = V5, candidate: Behaviour = V6_REGRESSED,
                 population: Population = Population(), agreement: Agreement = Agreement(),
                 delays: LabelDelays = LabelDelays(), fleet: Fleet = Fleet(), hour_s: float = 1.0,
                 seed: int = 20261122) -> None:
        if hour_s <= 0:
            raise ValueError(f"hour_s (real seconds per demo hour) must be > 0, got {hour_s!r}")
        self.baseline, self.candidate, self.population = baseline, candidate, population
        self.agreement, self.delays, self.fleet, self.hour_s = agreement, delays, fleet, hour_s
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()

    def _capture(self, iid: str, ts: int, category: str, model: Behaviour, flagged: bool,
                 variant: str, shadow: bool) -> dict[str, Any]:
        rng = self.rng
        capture: dict[str, Any] = {
            "inference_id": iid, "endpoint": self.fleet.endpoint, "variant": variant,
            "model_version": model.version, "timestamp": ts, "latency_ms": model.latency_ms(rng),
            "attributes": {"merchant_category": category},
        }
        if shadow:
            capture["shadow"] = True
        if model.fails(rng):
            capture.update(status=503, error="model timeout")
            self.counts[f"errors {model.version}"] += 1
        else:
            capture.update(status=200, score=score(flagged, rng))
        self.counts[f"captures {model.version}{' shadow' if shadow else ''}"] += 1
        return capture

    def batch(self, n: int, now_ms: int, knobs: Knobs) -> Batch:
        """``n`` inferences at ``now_ms`` and their labels (each due at now + its delay)."""
        rng, fleet, out = self.rng, self.fleet, Batch()
        candidate = self.candidate.regressed(knobs.regression) if knobs.regression else self.candidate
        for _ in range(n):
            iid = str(uuid.UUID(int=rng.getrandbits(128)))
            category, truth = self.population.draw(rng)
            base_flag, cand_flag = flags(truth, category, self.baseline, candidate, self.agreement, rng)
            if knobs.shadow:
                out.captures.append(self._capture(iid, now_ms, category, self.baseline, base_flag, fleet.variant, False))
                out.captures.append(self._capture(iid, now_ms, category, candidate, cand_flag, fleet.shadow_variant, True))
            elif rng.random() < knobs.candidate_share:
                out.captures.append(self._capture(iid, now_ms, category, candidate, cand_flag, fleet.variant, False))
            else:
                out.captures.append(self._capture(iid, now_ms, category, self.baseline, base_flag, fleet.variant, False))
            self.counts["inferences"] += 1
            self.counts["frauds"] += truth
            hours = self.delays.draw_hours(rng)
            if hours is None:
                self.counts["never labelled"] += 1
                continue
            due = now_ms + int(hours * self.hour_s * 1000)
            out.labels.append((due, {"inference_id": iid, "endpoint": fleet.endpoint, "label": truth,
                                     "source": "chargeback" if hours >= 24 else "review"}))
        return out


def _record(message: dict[str, Any]) -> tuple[bytes, bytes]:
    return message["inference_id"].encode(), json.dumps(message, separators=(",", ":")).encode()


class TrafficThread(threading.Thread):
    """Produces ``rate`` inferences a second from ``generator`` as ``control`` says, and each
    label when it is due (stamped with its delivery time), until ``stop``."""

    def __init__(self, settings: Any, generator: Generator, control: TrafficControl, rate: float,
                 stop: threading.Event, *, step_s: float = 0.1, clock: Callable[[], float] = time.time,
                 producer_factory: Callable[..., Any] | None = None) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.settings, self.generator, self.control, self.rate = settings, generator, control, rate
        self.stop_event, self.step_s, self.clock = stop, step_s, clock
        self._factory = producer_factory
        self._due: list[tuple[int, int, dict[str, Any]]] = []  # heap of (due ms, seq, label)
        self._seq = 0
        self.sent: Counter[str] = Counter()
        self.error: BaseException | None = None

    def pending_labels(self) -> int:
        return len(self._due)

    def _producer(self) -> Any:
        if self._factory is not None:
            return self._factory()
        from service.kafka_clients import make_producer

        return make_producer(self.settings, linger_ms=20)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as ex:  # noqa: BLE001 - reported by the story, which stops the demo
            self.error = ex

    def _run(self) -> None:
        producer = self._producer()
        owed = 0.0
        try:
            while not self.stop_event.is_set():
                started = self.clock()
                now_ms = int(started * 1000)
                owed += self.rate * self.step_s
                n, owed = int(owed), owed - int(owed)
                batch = self.generator.batch(n, now_ms, self.control.get())
                for capture in batch.captures:
                    key, value = _record(capture)
                    producer.send(self.settings.captures_topic, key=key, value=value)
                self.sent["captures"] += len(batch.captures)
                for due, label in batch.labels:
                    self._seq += 1
                    heapq.heappush(self._due, (due, self._seq, label))
                while self._due and self._due[0][0] <= now_ms:
                    due, _, label = heapq.heappop(self._due)
                    key, value = _record({**label, "timestamp": due})
                    producer.send(self.settings.labels_topic, key=key, value=value)
                    self.sent["labels"] += 1
                self.stop_event.wait(max(0.0, self.step_s - (self.clock() - started)))
        finally:
            producer.flush(timeout=10)
            producer.close(timeout=10)
