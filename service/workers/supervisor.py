"""The parent of `rollguard run --workers N`: starts N worker processes, restarts one that
crashed (with backoff, logged and counted), and on stop asks them all to drain and waits.

Exit code of :meth:`Supervisor.run`: 0 when every worker drained (exited 0), 2 when one
could not write its final checkpoint (exited 2) or a worker could not start at all, else 1
(a worker stopped on an error, died by a signal or did not drain within the timeout).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.workers.link import ParentEnds, read_reports

log = logging.getLogger("rollguard.workers")

#: how long workers have to drain (final tick, bounded flush, final checkpoint) after SIGTERM
DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RestartPolicy:
    """Delay before restarting a crashed worker: ``initial_s`` doubling per consecutive crash up
    to ``max_s``; a worker that ran ``healthy_after_s`` counts as healthy again."""

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    healthy_after_s: float = 60.0

    def delay(self, consecutive: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** max(0, consecutive - 1))


class Process(Protocol):
    """What the supervisor uses of a child (subprocess.Popen satisfies it)."""

    pid: int

    def poll(self) -> int | None: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


Spawn = Callable[[int, ParentEnds], Process]


def worker_command(index: int, ends: ParentEnds, log_level: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", "run", "--worker", str(index), "--link", ends.child.argument(),
            "--log-level", log_level]


def worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A worker's environment: the parent's, its API on an ephemeral loopback port."""
    return {**environ, "ROLLGUARD_HTTP_ADDR": "127.0.0.1:0", "ROLLGUARD_WORKERS": "1"}


def spawn_process(log_level: str = "INFO") -> Spawn:
    """The production spawn: ``python -m service.cli run --worker I`` in a session of its own,
    so a terminal's Ctrl-C reaches the parent only and the parent decides how workers stop."""

    def spawn(index: int, ends: ParentEnds) -> Process:
        return subprocess.Popen(worker_command(index, ends, log_level), env=worker_env(os.environ),
                                pass_fds=(ends.child.report, ends.child.lifeline), start_new_session=True)

    return spawn


@dataclass
class Worker:
    """One worker slot and its current process (a restart is a new process in the same slot)."""

    index: int
    process: Process | None = None
    ends: ParentEnds | None = None
    generation: int = 0
    address: str | None = None  # its API's HOST:PORT, once it reported it
    started_at: float = 0.0
    restarts: int = 0
    consecutive_crashes: int = 0
    last_exit: int | None = None
    restart_at: float | None = None
    reported: bool = False  # this process got past start-up (its API listens)
    exit_codes: list[int] = field(default_factory=list)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Starts ``count`` workers through ``spawn`` and keeps them running until :meth:`run`'s stop."""

    def __init__(self, count: int, *, spawn: Spawn, policy: RestartPolicy = RestartPolicy(),
                 monotonic: Callable[[], float] = time.monotonic, drain_timeout_s: float = DRAIN_TIMEOUT_S,
                 on_restart: Callable[[Worker], None] | None = None) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.workers = [Worker(i) for i in range(1, count + 1)]
        self.spawn, self.policy, self.monotonic = spawn, policy, monotonic
        self.drain_timeout_s = drain_timeout_s
        self.on_restart = on_restart
        self.stopping = False
        self.lock = threading.Lock()
        self.failure: tuple[int, str] | None = None  # (exit code, line) that ended the run

    # -- starting ---------------------------------------------------------------------------
    def start(self) -> None:
        for worker in self.workers:
            self._start(worker)

    def _start(self, worker: Worker) -> None:
        ends = ParentEnds.open()
        try:
            process = self.spawn(worker.index, ends)
        except BaseException:
            ends.close()
            raise
        ends.close_child_ends()
        with self.lock:
            worker.generation += 1
            worker.process, worker.ends, worker.address, worker.reported = process, ends, None, False
            worker.started_at, worker.restart_at = self.monotonic(), None
        generation = worker.generation
        threading.Thread(target=read_reports, args=(ends.report_read, lambda m: self._on_report(worker, generation, m)),
                         name=f"rollguard-worker-{worker.index}-reports", daemon=True).start()
        log.info("worker %d started (pid %d)", worker.index, process.pid)

    def _on_report(self, worker: Worker, generation: int, message: Mapping[str, Any]) -> None:
        with self.lock:
            if worker.generation != generation:
                return
            if isinstance(message.get("http"), str):
                worker.address, worker.reported = message["http"], True

    # -- watching ---------------------------------------------------------------------------
    def check(self) -> None:
        """One pass: note workers that exited, restart those whose backoff is over."""
        now = self.monotonic()
        for worker in self.workers:
            process = worker.process
            if process is not None:
                code = process.poll()
                if code is None:
                    continue
                self._exited(worker, code, now)
                if self.failure is not None:
                    return
            if worker.restart_at is not None and now >= worker.restart_at and not self.stopping:
                worker.restarts += 1
                self._start(worker)
                if self.on_restart is not None:
                    self.on_restart(worker)

    def _exited(self, worker: Worker, code: int, now: float) -> None:
        with self.lock:
            reported, ran = worker.reported, now - worker.started_at
            worker.process, worker.address, worker.last_exit = None, None, code
            worker.exit_codes.append(code)
            if worker.ends is not None:
                worker.ends.close_lifeline()
                worker.ends = None
        if self.stopping:
            return
        if not reported and worker.restarts == 0 and not any(w.reported for w in self.workers):
            # it never got past start-up, nor has any other: a setting or the environment, not a crash
            self.failure = (2 if code == 2 else 1, f"rollguard: worker {worker.index} could not start (exit code {code})")
            return
        worker.consecutive_crashes = 1 if ran >= self.policy.healthy_after_s else worker.consecutive_crashes + 1
        delay = self.policy.delay(worker.consecutive_crashes)
        worker.restart_at = now + delay
        log.error("worker %d (exit code %d after %.0f s) restarts in %.0f s (restart %d)",
                  worker.index, code, ran, delay, worker.restarts + 1)

    # -- stopping ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, interval_s: float = 0.2) -> int:
        """Start the workers, keep them running until ``stop`` is set, then drain them."""
        self.start()
        while not stop.wait(interval_s):
            self.check()
            if self.failure is not None:
                break
        return self.drain()

    def drain(self) -> int:
        """SIGTERM to every worker, wait up to the drain timeout (then SIGKILL); the exit code."""
        self.stopping = True
        for worker in self.workers:
            worker.restart_at = None
            if worker.process is not None:
                try:
                    worker.process.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        deadline = self.monotonic() + self.drain_timeout_s
        killed: list[int] = []
        finals: list[int] = []  # the exit codes of the workers that were running: how they drained
        while any(w.process is not None for w in self.workers):
            now = self.monotonic()
            for worker in self.workers:
                if worker.process is not None and (code := worker.process.poll()) is not None:
                    self._exited(worker, code, now)
                    finals.append(code)
                    if code != 0:
                        log.error("worker %d exited with code %d while draining", worker.index, code)
            if now >= deadline:
                for worker in self.workers:
                    if worker.process is not None:
                        log.error("worker %d did not drain within %.0f s: killed", worker.index, self.drain_timeout_s)
                        worker.process.kill()
                        killed.append(worker.index)
                deadline = float("inf")
            time.sleep(0.05)
        log.info("workers stopped, exit codes %s", finals or "-")
        if self.failure is not None:
            return self.failure[0]
        if killed or any(code not in (0, 2) for code in finals):
            return 2 if 2 in finals else 1
        return 2 if 2 in finals else 0

    def snapshot(self) -> list[dict[str, Any]]:
        """Each worker's slot as the status API shows it."""
        with self.lock:
            return [{"worker": w.index, "pid": w.process.pid if w.process is not None else None,
                     "running": w.process is not None, "restarts": w.restarts, "last_exit": w.last_exit,
                     "address": w.address} for w in self.workers]
