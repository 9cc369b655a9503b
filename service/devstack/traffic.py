"""Synthetic traffic for `rollguard traffic` (docker-compose), tests and benchmarks: captures
(production + shadow) and delayed labels with known outcomes, plus duplicates, corrections and
bad records on request. The demo's story traffic is service/demo/traffic.py."""
from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrafficSpec:
    endpoint: str = "fraud-ep"
    production: str = "v5"
    production_version: str = "fraud-v5"
    shadow: str | None = "v6-shadow"
    shadow_version: str = "fraud-v6"
    positive_rate: float = 0.1  # share of true frauds
    accuracy: float = 0.9  # production's chance of being right
    shadow_accuracy: float = 0.93
    error_rate: float = 0.01
    label_fraction: float = 0.8
    duplicate_rate: float = 0.0
    correction_rate: float = 0.0
    segments: tuple[str, ...] = ("5411", "5812", "7995")


@dataclass
class Traffic:
    captures: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    bad: list[bytes]

    def capture_records(self) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs for the captures topic, keyed by inference id."""
        return [(c["inference_id"].encode(), json.dumps(c).encode()) for c in self.captures]

    def label_records(self) -> list[tuple[bytes, bytes]]:
        return [(lab["inference_id"].encode(), json.dumps(lab).encode()) for lab in self.labels]


BAD_RECORDS: list[tuple[str, bytes]] = [
    ("not_json", b"{this is not json"),
    ("not_utf8", b'{"inference_id": "\xff\xfe"}'),
    ("missing_field", b'{"endpoint": "fraud-ep", "variant": "v5", "timestamp": 1, "prediction": 1}'),
    ("wrong_type", b'{"inference_id": 17, "endpoint": "fraud-ep", "variant": "v5", "timestamp": 1, "prediction": 1}'),
    ("invalid_inference_id", b'{"inference_id": "", "endpoint": "fraud-ep", "variant": "v5", "timestamp": 1, "prediction": 1}'),
    ("non_finite_number", b'{"inference_id": "x", "endpoint": "fraud-ep", "variant": "v5", "timestamp": 1, "score": NaN}'),
    ("invalid_value", b'{"inference_id": "x", "endpoint": "fraud-ep", "variant": "v5", "timestamp": 1, "prediction": 1, "latency_ms": -4}'),
]


def generate(n: int, start_ms: int, spec: TrafficSpec = TrafficSpec(), seed: int = 0, span_ms: int = 600_000) -> Traffic:
    """n inferences spread over span_ms from start_ms; labels come 1..60 s after the capture."""
    rng = random.Random(seed)
    captures: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(n):
        iid = str(uuid.UUID(int=rng.getrandbits(128)))
        ts = start_ms + (i * span_ms) // max(n, 1)
        truth = int(rng.random() < spec.positive_rate)
        segment = rng.choice(spec.segments)
        base = {"inference_id": iid, "endpoint": spec.endpoint, "timestamp": ts, "attributes": {"merchant_category": segment}}
        prod: dict[str, Any] = dict(base, variant=spec.production, model_version=spec.production_version,
                                    latency_ms=round(rng.lognormvariate(2.5, 0.5), 3), status=200)
        if rng.random() < spec.error_rate:
            prod.update(status=503, error="model timeout")
        else:
            right = rng.random() < spec.accuracy
            p = truth if right else 1 - truth
            prod["score"] = round(rng.uniform(0.5, 1.0) if p else rng.uniform(0.0, 0.499), 4)
        captures.append(prod)
        if rng.random() < spec.duplicate_rate:
            captures.append(dict(prod))
        if spec.shadow is not None:
            right = rng.random() < spec.shadow_accuracy
            captures.append(dict(base, variant=spec.shadow, model_version=spec.shadow_version, shadow=True,
                                 prediction=truth if right else 1 - truth, latency_ms=round(rng.lognormvariate(2.6, 0.5), 3)))
        if rng.random() < spec.label_fraction:
            label_ts = ts + rng.randint(1000, 60_000)
            if rng.random() < spec.correction_rate:
                labels.append({"inference_id": iid, "endpoint": spec.endpoint, "label": 1 - truth, "timestamp": label_ts, "source": "rules"})
                label_ts += rng.randint(1, 30_000)
            labels.append({"inference_id": iid, "endpoint": spec.endpoint, "label": truth, "timestamp": label_ts, "source": "disputes"})
    return Traffic(captures, labels, [raw for _, raw in BAD_RECORDS])


def produce_forever(settings: Any, rate: int, stop: threading.Event, spec: TrafficSpec = TrafficSpec()) -> None:
    """`rate` inferences a second to the captures topic; each label is held back 5-30 s, like a
    late dispute; now and then a bad record, to show the dead-letter path. Until `stop`."""
    from service.kafka_clients import make_producer

    producer = make_producer(settings, linger_ms=20)
    delayed: list[tuple[float, bytes, bytes]] = []
    rng = random.Random(1)
    second = 0
    while not stop.is_set():
        started = time.monotonic()
        traffic = generate(rate, int(time.time() * 1000) - 1000, spec, seed=second, span_ms=1000)
        for key, value in traffic.capture_records():
            producer.send(settings.captures_topic, key=key, value=value)
        for key, value in traffic.label_records():
            delayed.append((time.monotonic() + rng.uniform(5, 30), key, value))
        if second % 20 == 7:
            producer.send(settings.captures_topic, value=rng.choice(BAD_RECORDS)[1])
        now = time.monotonic()
        for _, key, value in (d for d in delayed if d[0] <= now):
            producer.send(settings.labels_topic, key=key, value=value)
        delayed = [d for d in delayed if d[0] > now]
        producer.flush()
        second += 1
        stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))
    producer.close()
