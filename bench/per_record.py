"""A/B of the per-record path: `pipelines/` as it is against another copy of it (say, the last
commit's: `git archive HEAD pipelines | tar -x -C /tmp/base`), interleaved in one run on the
same broker and the same bytes, so the two see the same machine load.

Each round runs, for each tree in turn and in a fresh process, bench/throughput.py's rollguard
consume + join + count (4 + 4 partitions, windows on, as `rollguard run`) and its core alone
(`PartitionPipeline.submit` on the same bytes, no Kafka), plus one bare kafka-python consumer.
Prints records/s per round; never asserted anywhere (shared, noisy machines).
Usage: python3 bench/per_record.py BASELINE_DIR [INFERENCES] [ROUNDS]
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(root: str, bootstrap: str, topics: str, total: int, traffic: str) -> None:
    sys.path[:0] = [root, str(HERE.parent), str(HERE)]  # `root`'s pipelines, this checkout's service
    import pipelines
    from service.settings import load_settings
    import throughput  # type: ignore[import-not-found]

    captures_topic, labels_topic = topics.split(",")
    settings = load_settings(kafka_bootstrap_servers=bootstrap, captures_topic=captures_topic, labels_topic=labels_topic,
                             group_id=f"rollguard-ab-{uuid.uuid4().hex[:6]}")
    with open(traffic, "rb") as f:
        captures, labels = pickle.load(f)
    ours = throughput.rollguard(settings, total)
    core = throughput.core(settings, captures, labels)
    print(json.dumps({"pipelines": str(Path(pipelines.__file__).parent), "rollguard": ours, "core": core}))


def main() -> None:
    baseline = str(Path(sys.argv[1]).resolve())
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if not (Path(baseline) / "pipelines" / "processor.py").exists():
        sys.exit(f"{baseline} holds no pipelines/ package")
    from kafka import KafkaProducer

    from service.devstack import start_kafka
    from service.devstack.traffic import TrafficSpec, generate
    from service.topics import ensure_topics
    import throughput  # type: ignore[import-not-found]

    traffic = generate(n, int(time.time() * 1000) - 3_600_000, TrafficSpec(duplicate_rate=0.01, correction_rate=0.02))
    captures, labels = traffic.capture_records(), traffic.label_records()
    total = len(captures) + len(labels)
    with start_kafka() as broker, tempfile.NamedTemporaryFile(suffix=".pkl") as tmp:
        pickle.dump((captures, labels), tmp)
        tmp.flush()
        suffix = uuid.uuid4().hex[:6]
        topics = [f"captures-{suffix}", f"labels-{suffix}"]
        ensure_topics(broker.bootstrap_servers, {topics[0]: 4, topics[1]: 4})
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20, batch_size=256 * 1024)
        for key, value in captures:
            producer.send(topics[0], key=key, value=value)
        for key, value in labels:
            producer.send(topics[1], key=key, value=value)
        producer.flush()
        print(f"{total:,} records ({len(captures):,} captures, {len(labels):,} labels), 4 partitions each; "
              f"baseline {baseline}")
        print("| round | tree | rollguard consume+join+count | core alone | bare kafka-python |")
        print("| ---: | --- | ---: | ---: | ---: |")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        for r in range(1, rounds + 1):
            bare = throughput.bare(broker.bootstrap_servers, topics, total)
            for name, root in (("baseline", baseline), ("current", str(HERE.parent))):
                out = subprocess.run([sys.executable, __file__, "--child", root, broker.bootstrap_servers, ",".join(topics),
                                      str(total), tmp.name], capture_output=True, text=True, env=env, check=True)
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                if not figures["pipelines"].startswith(root):
                    sys.exit(f"the {name} run imported {figures['pipelines']}, not {root}/pipelines")
                print(f"| {r} | {name} | {figures['rollguard']:,.0f} | {figures['core']:,.0f} | {bare:,.0f} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        main()
