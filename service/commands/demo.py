"""`rollguard demo`: the local stack, a live traffic generator and the daemon, in one command.

Starts a Kafka broker and a moto server (service.devstack), creates the topics, produces
fraud-model traffic (production v5 and shadow v6, labels 5-30 s after each inference), runs the
daemon on it and prints what it consumed and what CloudWatch now holds, until Ctrl-C or
--seconds.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from pipelines import metrics
from service import aws
from service.commands.base import LOG_FORMAT
from service.devstack import start_kafka, start_moto
from service.devstack.traffic import TrafficSpec, produce_forever
from service.settings import Settings, load_settings
from service.signals import stop_on_signals
from service.topics import ensure_topics
from service.wiring import serve

SPEC = TrafficSpec(correction_rate=0.02, duplicate_rate=0.01)
#: the CloudWatch sums the demo prints, per fleet
SUMS = (metrics.INVOCATIONS, metrics.ERRORS, metrics.TRUE_POSITIVES, metrics.FALSE_POSITIVES,
        metrics.FALSE_NEGATIVES, metrics.LABELED)
#: the window gauges it prints
GAUGES = (*(metrics.RATES[r].gauge for r in ("precision", "recall", "error_rate")),
          next(name for name, pct in metrics.LATENCY_GAUGES.items() if pct == 99.0),
          metrics.RATES["shadow_agreement"].gauge)


def _cloudwatch_totals(settings: Settings) -> dict[str, float]:
    cw = aws.client("cloudwatch", settings)
    now = datetime.now(timezone.utc)
    queries: list[dict[str, Any]] = []
    for variant, version in ((SPEC.production, SPEC.production_version), (SPEC.shadow, SPEC.shadow_version)):
        for name in SUMS:
            dims = [{"Name": metrics.ENDPOINT_NAME, "Value": SPEC.endpoint}, {"Name": metrics.VARIANT_NAME, "Value": variant},
                    {"Name": metrics.MODEL_VERSION, "Value": version}]
            queries.append({"Id": f"m{len(queries)}", "Label": f"{variant} {name}", "MetricStat": {
                "Metric": {"Namespace": settings.namespace, "MetricName": name, "Dimensions": dims},
                "Period": 3600, "Stat": "Sum"}})
    totals: dict[str, float] = {}
    pages = cw.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=now - timedelta(hours=2), EndTime=now + timedelta(hours=1))
    for page in pages:
        for r in page["MetricDataResults"]:
            totals[r["Label"]] = totals.get(r["Label"], 0.0) + sum(r["Values"])
    return totals


def _report(daemon: Any, settings: Settings) -> None:
    status = daemon.status()
    print(f"\n[{datetime.now():%H:%M:%S}] consumed {status['records']} records, pending joins "
          f"{status['pending_joins']}, dead letters {status['dead_letters']}, "
          f"published {status['publisher'].get('sent_datums', 0)} datums")
    for s in status["series"]:
        d, g = s["dimensions"], s["gauges"]
        if metrics.MODEL_VERSION in d:
            shown = ", ".join(f"{k}={g[k]:.3f}" for k in GAUGES if k in g)
            print(f"  window {d[metrics.VARIANT_NAME]:>10} ({d[metrics.MODEL_VERSION]}): {shown or 'collecting samples'}")
    try:
        totals = _cloudwatch_totals(settings)
        print("  CloudWatch sums: " + json.dumps({k: int(v) for k, v in totals.items() if v}))
    except Exception as ex:  # the demo keeps going; the daemon retries on its own
        print(f"  CloudWatch read failed: {ex}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rollguard demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    parser.add_argument("--rate", type=int, default=50, help="inferences per second")
    parser.add_argument("--tick", type=float, default=5.0, help="publish interval in seconds")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    stop = threading.Event()
    stop_on_signals(stop)

    print("starting Kafka and the moto server ...", flush=True)
    with start_kafka() as broker, start_moto() as moto, tempfile.TemporaryDirectory(prefix="rollguard-demo-") as state:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            os.environ.setdefault(key, value)
        settings = load_settings(
            kafka_bootstrap_servers=broker.bootstrap_servers, aws_endpoint_url=moto.endpoint_url,
            aws_region="us-east-1", tick_seconds=args.tick, state_dir=state, min_samples=20,
            segment_attributes=("merchant_category",), segment_values={"merchant_category": SPEC.segments},
        )
        ensure_topics(broker.bootstrap_servers, {settings.captures_topic: args.partitions,
                                                 settings.labels_topic: args.partitions,
                                                 settings.dead_letter_topic: 1})
        print(f"kafka {broker.bootstrap_servers}, moto {moto.endpoint_url}, status http://{settings.http_addr}/v1/status")
        holder: list[Any] = []
        runner = threading.Thread(target=serve, args=(settings, stop), kwargs={"started": holder.append}, daemon=True)
        runner.start()
        producer = threading.Thread(target=produce_forever, args=(settings, args.rate, stop, SPEC), daemon=True)
        producer.start()
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while not stop.wait(10):
            if holder:
                _report(holder[0], settings)
            if deadline is not None and time.monotonic() >= deadline:
                stop.set()
        producer.join(timeout=10)
        runner.join(timeout=60)
        if holder:
            _report(holder[0], settings)
    print("demo stopped")
    return 0
