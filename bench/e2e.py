"""End to end: `rollguard run` itself on the local stack (a real Kafka broker, the AWS API over
HTTP from a moto server), with its real CloudWatch publisher, dead-letter producer and
checkpoints, every figure beside a baseline measured in the same run. Prints three tables:

1. throughput of `rollguard run --workers 1` and `--workers N` over a pre-produced backlog
   (captures, labels, duplicates, corrections, bad records; 12 partitions), over a bare
   kafka-python consumer's rate on the same topics, and whether the totals CloudWatch then
   holds equal a pandas batch join of the same messages (tests/reference.py);
2. freshness while traffic flows at each load: from a marked label being produced to its
   effect being readable with GetMetricData, against the target tick + 5 s;
3. scale-out: 1, 2, 4 `rollguard run --workers 1` instances in one group, aggregate rate and
   exact totals.

Usage: python3 bench/e2e.py [--tiny] [--inferences N] [--workers N] [--tick S]
       [--rates 800,20000] [--scale 1,2,4] [--kafka HOST:PORT] [--aws URL] (reuse a running broker, moto)
Never asserted anywhere: the figures are only as steady as the shared machine.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.reference, the batch join

from kafka import KafkaProducer  # noqa: E402

from bench.daemon_runner import CloudWatch, Daemon, Topics, consumption, daemon_env, wait_for  # noqa: E402
from bench.throughput import bare  # noqa: E402
from service.devstack.traffic import BAD_RECORDS, TrafficSpec, generate  # noqa: E402
from service.topics import ensure_topics  # noqa: E402
from tests.reference import as_dict, batch_counts  # noqa: E402

PARTITIONS = 12
SPEC = TrafficSpec(duplicate_rate=0.01, correction_rate=0.02)
VERSIONS = {SPEC.production: SPEC.production_version, SPEC.shadow or "": SPEC.shadow_version}
MARKER_ENDPOINT, MARKER_VARIANT = "fresh-ep", "marker"
MARKER_TIMEOUT_S = 60.0  # a marker not readable by then is reported as not seen, and the load's run ends


@contextlib.contextmanager
def local_stack(kafka: str | None, aws: str | None) -> Iterator[tuple[str, str]]:
    """The broker and AWS API given, else started here (a moto server of its own keeps reads fast)."""
    from service.devstack import start_kafka, start_moto

    with contextlib.ExitStack() as stack:
        if kafka is None:
            kafka = stack.enter_context(start_kafka()).bootstrap_servers
        if aws is None:
            aws = stack.enter_context(start_moto()).endpoint_url
        yield kafka, aws


def new_topics(kafka: str, name: str) -> Topics:
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(f"{name}-captures-{suffix}", f"{name}-labels-{suffix}", f"{name}-dead-{suffix}")
    ensure_topics(kafka, {topics.captures: PARTITIONS, topics.labels: PARTITIONS, topics.dead_letters: PARTITIONS})
    return topics


def producer(kafka: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=kafka, linger_ms=10, batch_size=256 * 1024, acks=1)


class Bench:
    def __init__(self, args: argparse.Namespace, kafka: str, aws: str, workdir: Path) -> None:
        self.args, self.kafka, self.aws, self.workdir = args, kafka, aws, workdir
        self.cloudwatch = CloudWatch(aws)
        self.runs = 0

    def env(self, topics: Topics, name: str, aws: str | None = None) -> tuple[dict[str, str], str]:
        self.runs += 1
        namespace = f"E2E{uuid.uuid4().hex[:8]}"
        state = self.workdir / f"state-{self.runs}"
        return daemon_env(self.kafka, aws or self.aws, topics, f"{name}-{uuid.uuid4().hex[:8]}", namespace, state,
                          self.args.tick), namespace

    def daemons(self, env: dict[str, str], workers: list[int]) -> list[Daemon]:
        return [Daemon(env, n, self.workdir / f"run-{self.runs}-{i}.log") for i, n in enumerate(workers)]

    # -- 1 and 3: a backlog ------------------------------------------------------------------
    def backlog(self) -> None:
        start_ms = int(time.time() * 1000) - 3_600_000
        self.since = datetime.fromtimestamp(start_ms / 1000 - 600, timezone.utc)
        # at the reference story's 800 inferences/s, so the tick buckets published are as many as live
        traffic = generate(self.args.inferences, start_ms, SPEC, seed=14, span_ms=self.args.inferences * 1000 // 800)
        self.topics = new_topics(self.kafka, "e2e")
        out = producer(self.kafka)
        for key, value in traffic.capture_records():
            out.send(self.topics.captures, key=key, value=value)
        for key, value in traffic.label_records():
            out.send(self.topics.labels, key=key, value=value)
        bad = [raw for _, raw in BAD_RECORDS]
        for raw in bad:
            out.send(self.topics.captures, value=raw)
        out.send(self.topics.labels, value=b'{"inference_id": "x", "label": "maybe", "timestamp": 1}')
        out.flush()
        out.close()
        self.bad = len(bad) + 1
        self.total = len(traffic.captures) + len(traffic.labels) + self.bad
        self.expected = as_dict(batch_counts(traffic.captures, traffic.labels))
        print(f"{self.total:,} events ({len(traffic.captures):,} captures, {len(traffic.labels):,} labels, "
              f"{self.bad} bad) on {PARTITIONS} partitions; tick {self.args.tick:g} s; {os.cpu_count()} cores",
              flush=True)

    def consume(self, workers: list[int]) -> dict[str, Any]:
        """`rollguard run` instances (one per entry, each with that many workers) over the backlog."""
        env, namespace = self.env(self.topics, "e2e")
        daemons = self.daemons(env, workers)
        try:
            # tiny: well inside the test's 240 s, so a stuck run fails here, with the daemons' logs,
            # and stops its daemons (a killed benchmark would leave them running)
            start, end, counted = consumption(daemons, self.total, timeout_s=90 if self.args.tiny else 600)
            exact_at = None
            with contextlib.suppress(RuntimeError):
                exact_at = wait_for(lambda: self.cloudwatch.published(namespace, self.expected, VERSIONS, self.since)
                                    == self.expected, 3 * self.args.tick + 60, "exact totals", 0.5)
            dead = sum(sum((d.status().get("dead_letters") or {}).values()) for d in daemons)
        finally:
            stopping = time.monotonic()
            codes = [d.stop() for d in daemons]
        exact = "-" if exact_at is None else f"{exact_at - end:.1f}"
        print(f"    consumed {self.total - counted:,} records in {end - start:.1f} s (after {counted:,}), "
              f"exact {exact} s later, "
              f"stopped in {time.monotonic() - stopping:.1f} s", file=sys.stderr, flush=True)
        return {"rate": (self.total - counted) / max(end - start, 1e-9), "seconds": end - start, "dead": dead,
                "exact": None if exact_at is None else exact_at - end, "codes": codes}

    # -- 2: freshness --------------------------------------------------------------------------
    def freshness(self, rate: int, workers: int) -> dict[str, Any]:
        """A moto server of its own when the bench started moto, and one whose reads scan only the
        series they ask for (bench/moto_indexed.py): stock moto scans every datum it holds, once
        per period, on each read, in Python on the cores the daemon uses. At 20,000 events/s the
        marker polls alone then took most of a core and delayed the PutMetricData calls being
        timed (bench/RESULTS.md, section 7). PutMetricData and the HTTP API are moto's own."""
        if self.args.aws is not None:
            return self._freshness(rate, workers, self.aws, self.cloudwatch)
        from bench.moto_indexed import start_indexed_moto

        with start_indexed_moto() as moto:
            return self._freshness(rate, workers, moto.endpoint_url, CloudWatch(moto.endpoint_url))

    def _freshness(self, rate: int, workers: int, aws: str, cloudwatch: CloudWatch) -> dict[str, Any]:
        topics = new_topics(self.kafka, f"fresh{rate}")
        env, namespace = self.env(topics, "fresh", aws)
        [daemon] = self.daemons(env, [workers])
        load = Load(self.kafka, topics, rate)
        try:
            wait_for(lambda: daemon.proc.poll() is not None or daemon.ready(), 90, "the daemon to be ready", 0.2)
            daemon.check_alive()
            load.start()
            time.sleep(self.args.tick)  # steady state first
            out, latencies = producer(self.kafka), []
            variant = f"{MARKER_VARIANT}-{uuid.uuid4().hex[:8]}"  # moto matches dimensions across namespaces
            since = datetime.now(timezone.utc) - timedelta(minutes=2)
            for k in range(1, self.args.markers + 1):
                iid = f"marker-{uuid.uuid4().hex}"
                now = int(time.time() * 1000)
                capture = {"inference_id": iid, "endpoint": MARKER_ENDPOINT, "variant": variant,
                           "timestamp": now, "prediction": 1}
                out.send(topics.captures, key=iid.encode(), value=json.dumps(capture).encode())
                out.flush()
                time.sleep(0.5)
                label = {"inference_id": iid, "endpoint": MARKER_ENDPOINT, "label": 1, "timestamp": int(time.time() * 1000)}
                produced = time.monotonic()
                out.send(topics.labels, key=iid.encode(), value=json.dumps(label).encode())
                out.flush()
                try:
                    seen = wait_for(lambda: cloudwatch.recent(namespace, "Labeled", {
                        "EndpointName": MARKER_ENDPOINT, "VariantName": variant}, since) >= k,
                        MARKER_TIMEOUT_S, f"marker {k} in CloudWatch", 0.2)
                except RuntimeError:  # the daemon fell behind the load: later markers would wait longer
                    latencies.append(None)
                    break
                latencies.append(seen - produced)
                daemon.check_alive()
                time.sleep((k % 3) * self.args.tick / 3)  # markers at different phases of the tick
            out.close()
            lag = sum((daemon.status().get("consumer_lag") or {}).values())
        finally:
            achieved = load.stop()
            code = daemon.stop()
        seen = [t for t in latencies if t is not None]
        return {"rate": rate, "achieved": achieved, "client": load.client, "p50": statistics.median(seen) if seen else None,
                "max": None if None in latencies else max(seen), "seen": len(seen), "lag": lag, "code": code}


class Load:
    """Captures and labels at ``rate`` events/s from a background thread: a pre-built pool whose
    inference ids are renewed on every pass, so each event is new to the join.

    The load is produced with librdkafka (confluent-kafka, a C client) when it is installed: the
    generator shares the cores it measures, and kafka-python's producer spends 30-50 µs of Python
    a record (20-36 k records/s on a whole core, measured: bench/RESULTS.md).
    A key's capture and label go to the same partition either way, which is all the join needs."""

    def __init__(self, kafka: str, topics: Topics, rate: int) -> None:
        traffic = generate(2000, int(time.time() * 1000) - 60_000, TrafficSpec(), seed=3, span_ms=1000)
        self.pool = [(topics.captures, k, v) for k, v in traffic.capture_records()]
        self.pool += [(topics.labels, k, v) for k, v in traffic.label_records()]
        self.pool.sort(key=lambda r: r[0] == topics.labels)  # a pass's captures before its labels
        self.kafka, self.rate, self.sent = kafka, rate, 0
        self.client = "kafka-python"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def _sender(self) -> tuple[Any, Any]:
        """(send(topic, key, value), close()) of the fastest producer this machine has."""
        try:
            import confluent_kafka
        except ImportError:
            out = producer(self.kafka)
            return (lambda topic, key, value: out.send(topic, key=key, value=value)), out.close
        self.client = "librdkafka"
        fast = confluent_kafka.Producer({"bootstrap.servers": self.kafka, "linger.ms": 10, "acks": 1,
                                         "batch.size": 256 * 1024, "queue.buffering.max.messages": 1_000_000})

        def send(topic: str, key: bytes, value: bytes) -> None:
            while True:
                try:
                    fast.produce(topic, value, key)
                    return
                except BufferError:  # its queue is full: let it drain
                    fast.poll(0.01)

        def close() -> None:
            fast.flush(30)

        return send, close

    def _run(self) -> None:
        send, close = self._sender()
        size = len(self.pool)
        while not self._stop.is_set():
            due = int((time.monotonic() - self._started) * self.rate)
            while self.sent < due:
                topic, key, value = self.pool[self.sent % size]
                prefix = b"%08x" % (self.sent // size)
                send(topic, prefix + key[8:], value.replace(key, prefix + key[8:], 1))
                self.sent += 1
            time.sleep(0.02)
        close()

    def stop(self) -> float:
        """Events/s it produced; 0 when it never started (the daemon was not ready), so the error
        that stopped the run is the one reported."""
        if not self._started:
            return 0.0
        elapsed = time.monotonic() - self._started
        self._stop.set()
        self._thread.join(30)
        return self.sent / max(elapsed, 1e-9)


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def exact_text(run: dict[str, Any], bad: int) -> str:
    exact = "no" if run["exact"] is None else f"yes, {run['exact']:.1f} s after the last record"
    return f"{exact}; dead letters {run['dead']}/{bad}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/e2e.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a small run (under a minute on a running stack)")
    parser.add_argument("--inferences", type=int, help="inferences in the backlog (default 100,000; tiny 2,000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="N of the N-worker run")
    parser.add_argument("--tick", type=float, help="ROLLGUARD_TICK_SECONDS of every run (default 5; tiny 2)")
    parser.add_argument("--rates", help="freshness loads in events/s (default 800,20000; tiny 1000)")
    parser.add_argument("--markers", type=int, help="marked labels per load (default 8; tiny 1)")
    parser.add_argument("--scale", help="instances in the scale-out runs (default 1,2,4; tiny 1,2)")
    parser.add_argument("--kafka", help="bootstrap servers of a running broker, instead of starting one")
    parser.add_argument("--aws", help="endpoint URL of a running moto server, instead of starting one")
    args = parser.parse_args(argv)
    args.inferences = args.inferences or (2000 if args.tiny else 100_000)
    args.tick = args.tick or (2.0 if args.tiny else 5.0)
    args.markers = args.markers or (1 if args.tiny else 8)
    rates = parse_ints(args.rates or ("1000" if args.tiny else "800,20000"))
    scale = parse_ints(args.scale or ("1,2" if args.tiny else "1,2,4"))
    with tempfile.TemporaryDirectory(prefix="rollguard-e2e-") as tmp, local_stack(args.kafka, args.aws) as (kafka, aws):
        bench = Bench(args, kafka, aws, Path(tmp))
        began = time.monotonic()

        def step(what: str, result: Any) -> Any:
            print(f"  {what}: done at {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
            return result

        step("backlog", bench.backlog())
        topics = [bench.topics.captures, bench.topics.labels]
        base = step("bare consumer", bare(kafka, topics, bench.total))
        runs = {n: step(f"run --workers {n}", bench.consume([n])) for n in dict.fromkeys([1, args.workers])}
        base2 = step("bare consumer again", bare(kafka, topics, bench.total))
        slow = step("bare consumer, pure-Python CRC", bare(kafka, topics, bench.total, pure_python_crc=True))
        fresh = [step(f"freshness at {rate}/s", bench.freshness(rate, args.workers)) for rate in rates]
        scaled = {k: step(f"{k} instances", bench.consume([1] * k)) for k in scale}
    bare_rate = (base + base2) / 2
    rows = [["bare kafka-python consumer, same topics", f"{bare_rate:,.0f} ({base:,.0f}, {base2:,.0f})", "1.00", "",
             "", ""]]
    rows.append(["bare consumer, pure-Python CRC (issue 14's baseline)", f"{slow:,.0f}", f"{slow / bare_rate:.2f}", "",
                 "", ""])
    for n, run in runs.items():
        rows.append([f"rollguard run --workers {n}", f"{run['rate']:,.0f}", f"{run['rate'] / bare_rate:.2f}",
                     f"{run['rate'] / n / bare_rate:.2f} ({run['rate'] / n / slow:.2f} of pure-Python CRC)",
                     exact_text(run, bench.bad), ",".join(map(str, run["codes"]))])
    print(f"\n1. end to end over the backlog (events/s; real publisher, dead letters, checkpoints every tick)\n"
          + table(["run", "events/s", "vs bare", "per worker vs bare", "CloudWatch totals = batch join", "exit"], rows))
    target = args.tick + 5
    def secs(value: float | None) -> str:
        return f"> {MARKER_TIMEOUT_S:.0f} (not seen)" if value is None else f"{value:.1f}"

    rows = [[f"{f['rate']:,}", f"{f['achieved']:,.0f}", f"{f['seen']}/{args.markers}", secs(f["p50"]), secs(f["max"]),
             f"{target:g}", "met" if f["max"] is not None and f["max"] < target else "NOT met", f"{f['lag']:,}",
             str(f["code"])] for f in fresh]
    clients = ", ".join(sorted({f["client"] for f in fresh}))
    print(f"\n2. freshness with --workers {args.workers}: label produced -> its effect readable by GetMetricData (s);"
          f" load produced with {clients}\n"
          + table(["load events/s", "achieved", "markers", "p50", "max", "target tick+5", "", "lag at end", "exit"],
                  rows))
    rows = [[str(k), f"{run['rate']:,.0f}", f"{run['rate'] / bare_rate:.2f}", f"{run['rate'] / k / bare_rate:.2f}",
             exact_text(run, bench.bad), ",".join(map(str, run["codes"]))] for k, run in scaled.items()]
    print(f"\n3. scale-out: k `rollguard run --workers 1` instances in one group, {PARTITIONS} partitions\n"
          + table(["instances", "events/s", "vs one bare consumer", "per instance vs bare",
                   "CloudWatch totals = batch join", "exit"], rows))
    n_run = runs[args.workers]
    print(f"\ntargets: >= 20,000 events/s with {args.workers} workers: {n_run['rate']:,.0f} "
          f"({'met' if n_run['rate'] >= 20_000 else 'NOT met'}); >= 0.9 x bare per worker: "
          f"{n_run['rate'] / args.workers / bare_rate:.2f} ({'met' if n_run['rate'] / args.workers >= 0.9 * bare_rate else 'NOT met'}; "
          f"{n_run['rate'] / args.workers / slow:.2f} of the pure-Python-CRC consumer the issue measured, "
          f"{'met' if n_run['rate'] / args.workers >= 0.9 * slow else 'NOT met'})")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the daemons it started on the way out
    main()
