"""The demo's processes: a Kafka broker and a moto server (service.devstack), the alarms applied
by `rollguard alarms apply`, and the daemon as `rollguard run`, each a child process in its own
session, so Ctrl-C reaches only the demo, which stops them in order. `stop()` leaves nothing
running, whatever was started.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from service.demo.scenario import Scenario, segment_values, spec_yaml
from service.devstack import KafkaBroker, MotoServer, start_kafka, start_moto
from service.devstack.processes import alive, free_port, tail, terminate
from service.devstack.stack import stack_env
from service.settings import Settings, load_settings
from service.topics import ensure_topics

PARTITIONS = 4
DAEMON_STOP_S = 30.0  # its final checkpoint, then SIGKILL


class StackError(RuntimeError):
    """A part of the stack did not start; the message says which and why (with a log tail)."""


class DemoStack:
    """Everything the demo runs besides itself. Start with `start()`, always `stop()`."""

    def __init__(self, scenario: Scenario, out_dir: Path, say: Callable[[str], None]) -> None:
        self.scenario, self.out_dir, self.say = scenario, out_dir, say
        self.spec_path = out_dir / "spec.yaml"
        self.daemon_log = out_dir / "daemon.log"
        self.state_dir = Path(tempfile.mkdtemp(prefix="rollguard-demo-state-"))
        self.broker: KafkaBroker | None = None
        self.moto: MotoServer | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.http_addr = f"127.0.0.1:{free_port()}"
        self.env: dict[str, str] = {}
        self.settings: Settings | None = None
        self.pids: list[int] = []  # every process started, for the summary and for tests

    def start(self, stopping: Callable[[], bool]) -> Settings:
        """Start the stack; returns the settings the demo's own clients use. ``stopping()`` is
        checked between the steps (Ctrl-C while Kafka starts)."""
        started = time.monotonic()
        self.broker = start_kafka()
        if self.broker.pid:
            self.pids.append(self.broker.pid)
        self.moto = start_moto()
        if self.moto.pid:
            self.pids.append(self.moto.pid)
        self.say(f"Kafka at {self.broker.bootstrap_servers} and the AWS API (moto) at {self.moto.endpoint_url} "
                 f"ready in {time.monotonic() - started:.0f} s")
        if stopping():
            raise KeyboardInterrupt
        t = self.scenario.timing
        self.env = {
            **os.environ,
            **stack_env(self.broker.bootstrap_servers, self.moto.endpoint_url),
            "ROLLGUARD_AWS_REGION": "us-east-1",
            "ROLLGUARD_STATE_DIR": str(self.state_dir),
            "ROLLGUARD_LOCAL_STATE_DIR": str(self.state_dir / "local"),  # removed with it
            "ROLLGUARD_SPEC": str(self.spec_path),
            "ROLLGUARD_TICK_SECONDS": f"{t.tick_s:g}",
            "ROLLGUARD_WINDOW_SECONDS": f"{t.window_s:g}",
            "ROLLGUARD_SEGMENT_ATTRIBUTES": "merchant_category",
            "ROLLGUARD_SEGMENT_VALUES": segment_values(),
            "ROLLGUARD_HTTP_ADDR": self.http_addr,
            "ROLLGUARD_WORKERS": "1",  # one process is plenty at the demo's rate
            "ROLLGUARD_KAFKA_SESSION_TIMEOUT_MS": "10000",
            "PYTHONUNBUFFERED": "1",
        }
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            self.env.pop(key, None)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # the demo's own clients, talking to moto
            os.environ.setdefault(key, "testing")
        settings = load_settings(
            kafka_bootstrap_servers=self.broker.bootstrap_servers, aws_endpoint_url=self.moto.endpoint_url,
            aws_region="us-east-1", state_dir=str(self.state_dir), spec=str(self.spec_path),
            tick_seconds=t.tick_s, segment_attributes=("merchant_category",),
            segment_values={"merchant_category": tuple(segment_values().split("=", 1)[1].split("|"))},
            http_addr=self.http_addr)
        self.settings = settings
        ensure_topics(self.broker.bootstrap_servers, {settings.captures_topic: PARTITIONS,
                                                      settings.labels_topic: PARTITIONS,
                                                      settings.dead_letter_topic: 1})
        self.spec_path.write_text(spec_yaml(self.scenario))
        self._apply_alarms()
        if stopping():
            raise KeyboardInterrupt
        self._start_daemon(stopping)
        return settings

    def _cli(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        process = subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=self.env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.pids.append(process.pid)
        try:
            out, err = process.communicate(timeout=timeout_s)
        except BaseException:
            process.kill()
            process.wait()
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def _apply_alarms(self) -> None:
        applied = self._cli("alarms", "apply", "--spec", str(self.spec_path))
        if applied.returncode != 0:
            raise StackError(f"`rollguard alarms apply` failed (exit {applied.returncode}): "
                             f"{(applied.stderr or applied.stdout).strip()[-800:]}")
        summary = applied.stdout.strip().splitlines()[-1] if applied.stdout.strip() else "applied"
        self.say(f"$ rollguard alarms apply --spec {self.spec_path.name}: {summary}")

    def _start_daemon(self, stopping: Callable[[], bool]) -> None:
        with self.daemon_log.open("ab") as log:
            self.daemon = subprocess.Popen([sys.executable, "-m", "service.cli", "run"], env=self.env,
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        self.pids.append(self.daemon.pid)
        deadline = time.monotonic() + 90
        url = f"http://{self.http_addr}/readyz"
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise StackError(f"`rollguard run` exited with {self.daemon.returncode}:\n{tail(self.daemon_log)}")
            if stopping():
                raise KeyboardInterrupt
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        self.say(f"$ rollguard run: the daemon is ready (pid {self.daemon.pid}, "
                                 f"status http://{self.http_addr}/v1/status)")
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise StackError(f"`rollguard run` not ready after 90 s:\n{tail(self.daemon_log)}")

    def daemon_running(self) -> bool:
        return self.daemon is not None and self.daemon.poll() is None

    def stop(self) -> None:
        """Stop the daemon (SIGTERM: its final checkpoint), then moto and Kafka; idempotent."""
        if self.daemon is not None:
            terminate(self.daemon.pid, self.daemon, grace_s=DAEMON_STOP_S)  # type: ignore[arg-type]
            try:  # anything the daemon started in its session (worker processes) goes with it
                os.killpg(self.daemon.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.daemon = None
        # the AWS API and Kafka have nothing left to serve: stop both at once
        servers = [s for s in (self.moto, self.broker) if s is not None]
        threads = [threading.Thread(target=server.stop, name="demo-stop") for server in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.moto = self.broker = None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def survivors(self) -> list[int]:
        """Processes this stack started that still run (none after `stop()`)."""
        return [pid for pid in self.pids if alive(pid)]
