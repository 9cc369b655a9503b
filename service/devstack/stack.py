"""The stack `rollguard devstack up|down|env` manages: Kafka, moto and the topics, in the
foreground or detached (its processes recorded in the cache directory for `down` and `env`)."""
from __future__ import annotations

import json
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

from service.devstack.broker import KafkaBroker, docker_available, start_kafka
from service.devstack.jars import KAFKA_VERSION, cache_dir
from service.devstack.moto_server import MotoServer, start_moto
from service.devstack.processes import alive, cmdline, tail
from service.signals import stop_on_signals

DEFAULT_TOPICS = ("captures", "labels")
DEAD_LETTER_TOPIC = "rollguard.dead-letter"


def state_path() -> Path:
    return cache_dir() / "devstack.json"


def stack_env(kafka_bootstrap: str, aws_endpoint: str) -> dict[str, str]:
    """The environment a daemon or demo needs to use this stack."""
    return {
        "ROLLGUARD_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ROLLGUARD_AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def print_exports(env: dict[str, str]) -> None:
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    sys.stdout.flush()


def load_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(state_path().read_text())
        return state
    except (OSError, ValueError):
        return None


def state_alive(state: dict[str, Any]) -> bool:
    """Whether the recorded processes still run (and are still ours: pids get reused)."""
    checks = [(state["kafka"].get("pid"), "kafka.Kafka"), (state["moto"].get("pid"), "moto.server")]
    if any(pid and alive(pid) and marker in cmdline(pid) for pid, marker in checks):
        return True
    container_id = state["kafka"].get("container_id")
    if container_id and docker_available():
        import docker

        try:
            return bool(docker.from_env().containers.get(container_id).status == "running")
        except Exception:  # removed already
            return False
    return False


def stop_recorded(state: dict[str, Any]) -> None:
    kafka, moto = state["kafka"], state["moto"]
    kafka_pid = kafka.get("pid") if kafka.get("pid") and "kafka.Kafka" in cmdline(kafka["pid"]) else None
    moto_pid = moto.get("pid") if moto.get("pid") and "moto.server" in cmdline(moto["pid"]) else None
    KafkaBroker(kafka["bootstrap_servers"], pid=kafka_pid, container_id=kafka.get("container_id"),
                workdir=Path(kafka["workdir"]) if kafka.get("workdir") else None).stop()
    MotoServer(moto["endpoint_url"], pid=moto_pid,
               workdir=Path(moto["workdir"]) if moto.get("workdir") else None).stop()


def up(partitions: int, detach: bool) -> int:
    """Start Kafka + moto, create the topics, print the export lines; detached, record them and return."""
    from service.topics import ensure_topics

    state = load_state()
    if detach and state is not None and state_alive(state):
        print("rollguard devstack: a detached stack is already running; `rollguard devstack down` first",
              file=sys.stderr)
        return 1
    started = time.monotonic()
    broker = start_kafka(detached=detach)
    try:
        print(f"kafka {KAFKA_VERSION} ready at {broker.bootstrap_servers} "
              f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
        moto = start_moto()
    except BaseException:
        broker.stop()
        raise
    try:
        topics = {name: partitions for name in DEFAULT_TOPICS} | {DEAD_LETTER_TOPIC: partitions}
        ensure_topics(broker.bootstrap_servers, topics)
        env = stack_env(broker.bootstrap_servers, moto.endpoint_url)
        print_exports(env)
        if detach:
            state = {
                "kafka": {"bootstrap_servers": broker.bootstrap_servers, "pid": broker.pid,
                          "container_id": broker.container_id,
                          "workdir": str(broker.workdir) if broker.workdir else None},
                "moto": {"endpoint_url": moto.endpoint_url, "pid": moto.pid, "workdir": str(moto.workdir)},
                "env": env,
            }
            state_path().parent.mkdir(parents=True, exist_ok=True)
            state_path().write_text(json.dumps(state, indent=2) + "\n")
            print(f"detached; stop with `rollguard devstack down` (state in {state_path()})", file=sys.stderr)
            return 0
        return serve_until_signalled(broker, moto)
    except BaseException:
        moto.stop()
        broker.stop()
        raise


def serve_until_signalled(broker: KafkaBroker, moto: MotoServer) -> int:
    """Keep the stack up until SIGTERM/SIGINT (or one of its processes dies: exit code 1)."""
    stop = threading.Event()
    stop_on_signals(stop)
    print("running; Ctrl-C stops both", file=sys.stderr)
    code = 0
    while not stop.wait(1.0):
        # A stack whose broker died must not look healthy to whoever relies on it.
        if (broker.pid is not None and not alive(broker.pid, broker._process)) or \
                (moto.pid is not None and not alive(moto.pid, moto._process)):
            print(f"a devstack process exited unexpectedly; kafka log tail:\n{tail(broker.log_path)}",
                  file=sys.stderr)
            code = 1
            break
    print("stopping", file=sys.stderr)
    moto.stop()
    broker.stop()
    return code
