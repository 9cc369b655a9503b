"""The local stack for tests, the demo and CI: a real single-node Kafka broker and moto's AWS server.

Kafka runs from the `apache/kafka` image when a Docker engine answers, else as a local JVM
from jars that Maven resolves (pom.xml at the repo root) into a cache outside git. There is
no stand-in: without Docker and without java >= 17 + mvn, starting Kafka fails and says so.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

# The one place the broker version is pinned; pom.xml's default `kafka.version` matches it.
KAFKA_VERSION = "4.2.1"
JAVA_MIN_MAJOR = 17
POM = Path(__file__).resolve().parent.parent / "pom.xml"
DEFAULT_TOPICS = ("captures", "labels")
DEAD_LETTER_TOPIC = "rollguard.dead-letter"
_MARKER = "COMPLETE"


def cache_dir() -> Path:
    """`$ROLLGUARD_CACHE_DIR`, else `~/.cache/rollguard` (kept outside the git tree)."""
    configured = os.environ.get("ROLLGUARD_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "rollguard"


# ---------------------------------------------------------------- processes and ports


def _free_port() -> int:
    """A loopback port that was free a moment ago (the broker binds it right after)."""
    return _free_ports(1)[0]


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports: all sockets stay open until all are chosen."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int, process: subprocess.Popen[bytes] | None = None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        # A zombie still answers kill(0); an unreaped orphan must count as gone.
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, process: subprocess.Popen[bytes] | None = None, grace_s: float = 20.0) -> None:
    """SIGTERM, wait up to `grace_s`, then SIGKILL; returns once the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if not _alive(pid, process):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _alive(pid, process):
            time.sleep(0.1)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        # Own session: Ctrl-C in our terminal must not reach the server before we stop it in
        # order, and a detached server must survive the terminal that started it.
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


# ---------------------------------------------------------------- Kafka


@dataclass
class KafkaBroker:
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
            _terminate(self.pid, self._process)
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


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


def _java() -> str:
    """Path of a java >= 17, or RuntimeError naming what is missing."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else None
    java = candidate if candidate and os.access(candidate, os.X_OK) else shutil.which("java")
    if java is None:
        raise RuntimeError(f"Kafka needs Docker or a local JDK >= {JAVA_MIN_MAJOR}: no Docker engine "
                           "answered and `java` is not on PATH (apt-get install openjdk-17-jdk-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = (int(match.group(2) or 0) if match.group(1) == "1" else int(match.group(1))) if match else 0
    if major < JAVA_MIN_MAJOR:
        raise RuntimeError(f"Kafka {KAFKA_VERSION} needs java >= {JAVA_MIN_MAJOR}; {java} is "
                           f"{out.splitlines()[0] if out else 'unknown'}")
    return java


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _libs_complete(libs: Path) -> bool:
    marker = libs / _MARKER
    return marker.exists() and all((libs / name).exists() for name in marker.read_text().split())


def fetch_kafka(version: str = KAFKA_VERSION) -> Path:
    """Resolve the broker jars into `{cache}/kafka-{version}/libs` (once) and return that dir."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    if _libs_complete(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(f"resolving the Kafka {version} jars needs Maven: `mvn` is not on PATH "
                           "(apt-get install maven), and no Docker engine answered")
    if not POM.exists():
        raise RuntimeError(f"{POM} is missing: the local Kafka needs a rollguard source checkout")
    # Two test sessions may start at once; only one resolves, the other finds the marker.
    with _file_lock(libs.parent / "resolve.lock"):
        if _libs_complete(libs):
            return libs
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=libs.parent))
        cmd = [mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}", "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        jars = sorted(p.name for p in staging.glob("*.jar"))
        if done.returncode != 0 or not jars:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"mvn could not resolve Kafka {version} (exit {done.returncode}):\n"
                               f"{(done.stdout + done.stderr)[-3000:]}")
        (staging / _MARKER).write_text("\n".join(jars) + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


def _cluster_id() -> str:
    # Kafka's Uuid text form: url-safe base64 of 16 random bytes, unpadded, never starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class Listener:
    """A client listener beside PLAINTEXT, which stays the inter-broker one and the devstack's own."""

    name: str  # e.g. "SSL", "MTLS", "SCRAM"
    protocol: str  # SSL, SASL_SSL or SASL_PLAINTEXT
    sasl_mechanisms: tuple[str, ...] = ()  # SCRAM-SHA-256 and/or SCRAM-SHA-512 (SASL protocols)
    client_auth: bool = False  # TLS: require a client certificate signed by the truststore's CA


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM credential written into the metadata when storage is formatted."""

    mechanism: str  # SCRAM-SHA-256 or SCRAM-SHA-512
    name: str
    password: str


_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class BrokerSecurity:
    """Extra listeners for testing TLS and SASL clients; the broker reads its PEM files in place."""

    listeners: tuple[Listener, ...]
    keystore: Path | None = None  # PEM: the server's unencrypted PKCS#8 key and its certificate chain
    truststore: Path | None = None  # PEM: the CA certificates client certificates must chain to
    scram_users: tuple[ScramUser, ...] = ()

    def __post_init__(self) -> None:
        names = [listener.name for listener in self.listeners]
        if len(set(names)) != len(names) or {"PLAINTEXT", "CONTROLLER"} & set(names):
            raise ValueError(f"listener names must be distinct and not PLAINTEXT or CONTROLLER: {names}")
        for listener in self.listeners:
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", listener.name):
                raise ValueError(f"listener name {listener.name!r} must be upper-case letters, digits and _")
            if listener.protocol not in ("SSL", "SASL_SSL", "SASL_PLAINTEXT"):
                raise ValueError(f"listener {listener.name}: protocol must be SSL, SASL_SSL or SASL_PLAINTEXT")
            sasl = listener.protocol.startswith("SASL_")
            if sasl != bool(listener.sasl_mechanisms) or not set(listener.sasl_mechanisms) <= set(_SCRAM):
                raise ValueError(f"listener {listener.name}: SASL protocols need sasl_mechanisms from {_SCRAM}, "
                                 "other protocols none")
            if listener.protocol.endswith("SSL") and self.keystore is None:
                raise ValueError(f"listener {listener.name}: {listener.protocol} needs a keystore")
            if listener.client_auth and (self.truststore is None or not listener.protocol.endswith("SSL")):
                raise ValueError(f"listener {listener.name}: client_auth needs TLS and a truststore")
        for user in self.scram_users:
            if user.mechanism not in _SCRAM or re.search(r'[,=\[\]"\s]', user.name + user.password):
                raise ValueError(f"SCRAM user {user.name!r}: mechanism must be one of {_SCRAM}, and name "
                                 "and password free of , = [ ] \" and spaces (kafka-storage's --add-scram syntax)")

    def format_arguments(self) -> list[str]:
        """kafka-storage `format` arguments that create the SCRAM users."""
        return [arg for u in self.scram_users
                for arg in ("--add-scram", f"{u.mechanism}=[name={u.name},password={u.password}]")]

    def properties(self, ports: Sequence[int]) -> tuple[list[str], list[str], list[str]]:
        """(listener URLs, protocol-map entries, per-listener settings) for `ports`, one per listener."""
        urls, protocols, settings = [], [], []
        for listener, port in zip(self.listeners, ports, strict=True):
            urls.append(f"{listener.name}://127.0.0.1:{port}")
            protocols.append(f"{listener.name}:{listener.protocol}")
            prefix = f"listener.name.{listener.name.lower()}."
            if listener.protocol.endswith("SSL"):
                settings += [f"{prefix}ssl.keystore.type=PEM", f"{prefix}ssl.keystore.location={self.keystore}"]
                if self.truststore is not None:
                    settings += [f"{prefix}ssl.truststore.type=PEM",
                                 f"{prefix}ssl.truststore.location={self.truststore}"]
                if listener.client_auth:
                    settings.append(f"{prefix}ssl.client.auth=required")
            if listener.sasl_mechanisms:
                settings.append(f"{prefix}sasl.enabled.mechanisms={','.join(listener.sasl_mechanisms)}")
                settings += [f"{prefix}{m.lower()}.sasl.jaas.config="
                             "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                             for m in listener.sasl_mechanisms]
        return urls, protocols, settings


def _server_properties(port: int, controller_port: int, data_dir: Path,
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


# The broker logs to stdout, which _spawn sends to kafka.log; nothing reaches our console.
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
    java = _java()
    libs = fetch_kafka(version)
    workdir = Path(tempfile.mkdtemp(prefix="rollguard-kafka-"))
    broker = KafkaBroker(bootstrap_servers="", workdir=workdir)
    try:
        port, controller_port, *secure_ports = _free_ports(2 + (len(security.listeners) if security else 0))
        props, log4j = workdir / "server.properties", workdir / "log4j2.properties"
        props.write_text(_server_properties(port, controller_port, workdir / "data", security, secure_ports))
        log4j.write_text(_LOG4J2)
        jvm = [java, "-Xmx768m", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
        fmt = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "--standalone", "-t", _cluster_id(),
                              "-c", str(props), *(security.format_arguments() if security else [])],
                             capture_output=True, text=True, timeout=120)
        if fmt.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        process = _spawn([*jvm, "kafka.Kafka", str(props)], workdir / "kafka.log")
        broker.pid, broker._process = process.pid, process
        broker.bootstrap_servers = f"127.0.0.1:{port}"
        if security is not None:
            broker.listeners = {listener.name: f"127.0.0.1:{p}" for listener, p in zip(security.listeners, secure_ports)}
        _wait_for_kafka(broker.bootstrap_servers, timeout_s, lambda: process.poll() is None,
                        lambda: _tail(broker.log_path))
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
    port = _free_port()
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


# ---------------------------------------------------------------- moto


@dataclass
class MotoServer:
    """moto's AWS API over real HTTP on loopback; `stop()` is idempotent."""

    endpoint_url: str
    pid: int | None = None
    workdir: Path | None = None  # holds moto.log
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def stop(self) -> None:
        if self.pid is not None:
            _terminate(self.pid, self._process, grace_s=5.0)
            self.pid = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_moto(*, timeout_s: float = 30.0, port: int | None = None) -> MotoServer:
    """Start `python -m moto.server` on loopback `port` (default: a free one); return once it answers HTTP."""
    workdir = Path(tempfile.mkdtemp(prefix="rollguard-moto-"))
    port = _free_port() if port is None else port
    process = _spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                     workdir / "moto.log")
    server = MotoServer(f"http://127.0.0.1:{port}", pid=process.pid, workdir=workdir, _process=process)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited (is moto[server] installed?):\n"
                                   f"{_tail(workdir / 'moto.log')}")
            try:
                urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=2).close()
                return server
            except urllib.error.HTTPError:
                return server  # any HTTP answer means it serves
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server not answering after {timeout_s:.0f} s:\n"
                                   f"{_tail(workdir / 'moto.log')}")
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise


# ---------------------------------------------------------------- the `rollguard devstack` command


def _state_path() -> Path:
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


def _print_exports(env: dict[str, str]) -> None:
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    sys.stdout.flush()


def _load_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(_state_path().read_text())
        return state
    except (OSError, ValueError):
        return None


def _state_alive(state: dict[str, Any]) -> bool:
    """Whether the recorded processes still run (and are still ours: pids get reused)."""
    checks = [(state["kafka"].get("pid"), "kafka.Kafka"), (state["moto"].get("pid"), "moto.server")]
    if any(pid and _alive(pid) and marker in _cmdline(pid) for pid, marker in checks):
        return True
    container_id = state["kafka"].get("container_id")
    if container_id and docker_available():
        import docker

        try:
            return bool(docker.from_env().containers.get(container_id).status == "running")
        except Exception:  # removed already
            return False
    return False


def _stop_recorded(state: dict[str, Any]) -> None:
    kafka, moto = state["kafka"], state["moto"]
    kafka_pid = kafka.get("pid") if kafka.get("pid") and "kafka.Kafka" in _cmdline(kafka["pid"]) else None
    moto_pid = moto.get("pid") if moto.get("pid") and "moto.server" in _cmdline(moto["pid"]) else None
    KafkaBroker(kafka["bootstrap_servers"], pid=kafka_pid, container_id=kafka.get("container_id"),
                workdir=Path(kafka["workdir"]) if kafka.get("workdir") else None).stop()
    MotoServer(moto["endpoint_url"], pid=moto_pid,
               workdir=Path(moto["workdir"]) if moto.get("workdir") else None).stop()


def _up(partitions: int, detach: bool) -> int:
    from service.topics import ensure_topics

    state = _load_state()
    if detach and state is not None and _state_alive(state):
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
        _print_exports(env)
        if detach:
            state = {
                "kafka": {"bootstrap_servers": broker.bootstrap_servers, "pid": broker.pid,
                          "container_id": broker.container_id,
                          "workdir": str(broker.workdir) if broker.workdir else None},
                "moto": {"endpoint_url": moto.endpoint_url, "pid": moto.pid, "workdir": str(moto.workdir)},
                "env": env,
            }
            _state_path().parent.mkdir(parents=True, exist_ok=True)
            _state_path().write_text(json.dumps(state, indent=2) + "\n")
            print(f"detached; stop with `rollguard devstack down` (state in {_state_path()})", file=sys.stderr)
            return 0
        return _serve_until_signalled(broker, moto)
    except BaseException:
        moto.stop()
        broker.stop()
        raise


def _serve_until_signalled(broker: KafkaBroker, moto: MotoServer) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("running; Ctrl-C stops both", file=sys.stderr)
    code = 0
    while not stop.wait(1.0):
        # A stack whose broker died must not look healthy to whoever relies on it.
        if (broker.pid is not None and not _alive(broker.pid, broker._process)) or \
                (moto.pid is not None and not _alive(moto.pid, moto._process)):
            print(f"a devstack process exited unexpectedly; kafka log tail:\n{_tail(broker.log_path)}",
                  file=sys.stderr)
            code = 1
            break
    print("stopping", file=sys.stderr)
    moto.stop()
    broker.stop()
    return code


def main(argv: list[str]) -> int:
    """`rollguard devstack fetch|up|down|env`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="rollguard devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help=f"resolve the Kafka {KAFKA_VERSION} jars into the cache")
    up = sub.add_parser("up", help="start Kafka + moto, create the topics, print export lines")
    up.add_argument("--partitions", type=int, default=4, help="partitions of each topic (default 4)")
    up.add_argument("--detach", action="store_true", help="leave the stack running; stop it with `down`")
    sub.add_parser("down", help="stop a detached stack")
    sub.add_parser("env", help="print the export lines of a detached stack")
    args = parser.parse_args(argv)

    if args.command == "fetch":
        print(fetch_kafka())
        return 0
    if args.command == "up":
        if args.partitions < 1:
            parser.error("--partitions must be >= 1")
        return _up(args.partitions, args.detach)
    state = _load_state()
    if state is None or not _state_alive(state):
        print("rollguard devstack: no detached stack is running", file=sys.stderr)
        if state is not None and args.command == "down":
            _stop_recorded(state)  # clean whatever half is left, and the temp dirs
            _state_path().unlink(missing_ok=True)
        return 1
    if args.command == "env":
        _print_exports(state["env"])
        return 0
    _stop_recorded(state)
    _state_path().unlink(missing_ok=True)
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
