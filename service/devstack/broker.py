"""The local Kafka broker: a single-node KRaft broker from the `apache/kafka` image when a Docker
engine answers, else a local JVM running the jars Maven resolved (service.devstack.jars)."""
from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.devstack.jars import KAFKA_VERSION, fetch_kafka, find_java
from service.devstack.listeners import BrokerSecurity
from service.devstack.processes import StopsOnExit, free_port, free_ports, spawn, tail, terminate


@dataclass
class KafkaBroker(StopsOnExit):
    """A running single-node Kafka (KRaft); `stop()` is idempotent and removes its data."""

    bootstrap_servers: str
    pid: int | None = None  # local JVM
    container_id: str | None = None  # Docker
    workdir: Path | None = None  # local JVM: config, data and kafka.log
    listeners: dict[str, str] = field(default_factory=dict)  # BrokerSecurity listener name -> host:port
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _container: Any = field(default=None, repr=False, compare=False)

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "kafka.log" if self.workdir else None

    def stop(self) -> None:
        if self.pid is not None:
            terminate(self.pid, self._process)
            self.pid = None
        if self._container is not None:
            self._container.stop()
            self._container = None
        elif self.container_id is not None:  # detached: the container outlived its starter
            import docker
            import docker.errors

            try:
                docker.from_env().containers.get(self.container_id).remove(force=True)
            except docker.errors.NotFound:
                pass
        self.container_id = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def docker_available(timeout_s: float = 3.0) -> bool:
    """True when a Docker engine answers a ping within `timeout_s`."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(1, timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon: all mean "no Docker"
        return False


def _cluster_id() -> str:
    # Kafka's Uuid text form: url-safe base64 of 16 random bytes, unpadded, never starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def server_properties(port: int, controller_port: int, data_dir: Path,
                      security: BrokerSecurity | None = None, secure_ports: Sequence[int] = ()) -> str:
    urls, protocols, extra = security.properties(secure_ports) if security else ([], [], [])
    client_listeners = ",".join([f"PLAINTEXT://127.0.0.1:{port}", *urls])
    protocol_map = ",".join(["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT", *protocols])
    return f"""\
process.roles=broker,controller
node.id=1
listeners={client_listeners},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners={client_listeners}
listener.security.protocol.map={protocol_map}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
# Kafka 4 dynamic quorum (KIP-853); storage is formatted with --standalone.
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
log.dirs={data_dir}
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
# 50 offset partitions cost seconds on the first group join of every fresh broker.
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
""" + "".join(f"{line}\n" for line in extra)


# The broker logs to stdout, which `spawn` sends to kafka.log; nothing reaches our console.
_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
"""


def _wait_for_kafka(bootstrap: str, timeout_s: float, is_alive: Callable[[], bool], log_tail: Callable[[], str]) -> None:
    """Return once kafka-python gets metadata naming a broker; raise with the log tail if not."""
    from kafka import KafkaAdminClient

    host, port = bootstrap.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError(f"Kafka exited during start-up. Log tail:\n{log_tail()}")
        try:
            # A plain connect first: kafka-python logs every refused connection as an error.
            socket.create_connection((host, int(port)), timeout=1).close()
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rollguard-devstack",
                                     request_timeout_ms=10_000)
            try:
                if admin.describe_cluster()["brokers"]:
                    return
            finally:
                admin.close()
        except Exception as exc:  # not up yet: refused, no metadata, timeouts
            last_error = exc
        time.sleep(0.25)
    raise RuntimeError(f"Kafka at {bootstrap} not ready after {timeout_s:.0f} s (last error: {last_error!r}). "
                       f"Log tail:\n{log_tail()}")


def _start_local(version: str, timeout_s: float, security: BrokerSecurity | None = None) -> KafkaBroker:
    java = find_java()
    libs = fetch_kafka(version)
    workdir = Path(tempfile.mkdtemp(prefix="rollguard-kafka-"))
    broker = KafkaBroker(bootstrap_servers="", workdir=workdir)
    try:
        port, controller_port, *secure_ports = free_ports(2 + (len(security.listeners) if security else 0))
        props, log4j = workdir / "server.properties", workdir / "log4j2.properties"
        props.write_text(server_properties(port, controller_port, workdir / "data", security, secure_ports))
        log4j.write_text(_LOG4J2)
        jvm = [java, "-Xmx768m", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
        fmt = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "--standalone", "-t", _cluster_id(),
                              "-c", str(props), *(security.format_arguments() if security else [])],
                             capture_output=True, text=True, timeout=120)
        if fmt.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        process = spawn([*jvm, "kafka.Kafka", str(props)], workdir / "kafka.log")
        broker.pid, broker._process = process.pid, process
        broker.bootstrap_servers = f"127.0.0.1:{port}"
        if security is not None:
            broker.listeners = {listener.name: f"127.0.0.1:{p}" for listener, p in zip(security.listeners, secure_ports)}
        _wait_for_kafka(broker.bootstrap_servers, timeout_s, lambda: process.poll() is None,
                        lambda: tail(broker.log_path))
        return broker
    except BaseException:
        broker.stop()
        raise


def _start_docker(version: str, timeout_s: float, detached: bool) -> KafkaBroker:
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    if detached:
        # Ryuk removes our containers when this process exits; a detached stack must outlive it.
        testcontainers_config.ryuk_disabled = True
    port = free_port()
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        # Same port inside and out, so the advertised address works from the host.
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://localhost:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "5",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }
    container = DockerContainer(f"apache/kafka:{version}", env=env).with_bind_ports(port, port)
    container.start()
    broker = KafkaBroker(bootstrap_servers=f"localhost:{port}",
                         container_id=container.get_wrapped_container().id, _container=container)

    def logs() -> str:
        out, err = container.get_logs()
        return "\n".join((out + err).decode(errors="replace").splitlines()[-40:])

    try:
        _wait_for_kafka(broker.bootstrap_servers, timeout_s, lambda: True, logs)
    except BaseException:
        broker.stop()
        raise
    if detached:
        broker._container = None  # stop() then removes it by id, as `down` does
    return broker


def start_kafka(version: str = KAFKA_VERSION, *, timeout_s: float = 120.0, detached: bool = False,
                security: BrokerSecurity | None = None) -> KafkaBroker:
    """Start a fresh empty single-node broker and return once clients can use it.

    Docker (`apache/kafka:{version}`) when an engine answers, else a local JVM; raises
    RuntimeError naming what is missing when neither works. `detached` lets the broker
    outlive this process (it must then be stopped with `stop()`, e.g. via `devstack down`).
    `security` adds its listeners (`broker.listeners`); it always runs the local JVM, which
    reads the PEM files where they are.
    """
    if security is not None:
        return _start_local(version, timeout_s, security)
    if docker_available():
        return _start_docker(version, timeout_s, detached)
    return _start_local(version, timeout_s)

