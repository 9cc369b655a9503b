"""The two pipes between the supervisor and one worker process.

- *report* (worker -> parent): one JSON line per event, ``{"http": "127.0.0.1:PORT"}`` once the
  worker's API listens;
- *lifeline* (parent -> worker): never written; the worker reads it in a thread and, at EOF
  (the parent exited, even by SIGKILL), drains and stops like on SIGTERM, so no worker outlives
  its supervisor.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LinkFds:
    """The worker's ends: ``report`` to write to, ``lifeline`` to read from."""

    report: int
    lifeline: int

    def argument(self) -> str:
        return f"{self.report},{self.lifeline}"

    @classmethod
    def parse(cls, text: str) -> LinkFds:
        """``"W,R"`` from ``--link``; ValueError naming the expected form."""
        report, sep, lifeline = text.partition(",")
        if not sep or not report.isdigit() or not lifeline.isdigit():
            raise ValueError(f"--link must be REPORT_FD,LIFELINE_FD, got {text!r}")
        return cls(int(report), int(lifeline))


@dataclass
class ParentEnds:
    """The supervisor's ends of one worker's pipes, and the worker's (to pass, then close)."""

    report_read: int
    lifeline_write: int
    child: LinkFds

    @classmethod
    def open(cls) -> ParentEnds:
        report_read, report_write = os.pipe()
        lifeline_read, lifeline_write = os.pipe()
        for fd in (report_read, lifeline_write):
            os.set_inheritable(fd, False)
        return cls(report_read, lifeline_write, LinkFds(report_write, lifeline_read))

    def close_child_ends(self) -> None:
        """After the worker started: its ends are its own now (EOF works only once they are closed here)."""
        for fd in (self.child.report, self.child.lifeline):
            _close(fd)

    def close(self) -> None:
        """Before a reader owns ``report_read`` (the worker could not be started)."""
        self.close_child_ends()
        _close(self.report_read)
        _close(self.lifeline_write)

    def close_lifeline(self) -> None:
        """After the worker exited (its reader closes ``report_read`` at EOF)."""
        _close(self.lifeline_write)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def read_reports(fd: int, on_report: Any) -> None:
    """Call ``on_report(dict)`` for each JSON line the worker writes, until EOF (it exited);
    then close ``fd``: the reader owns it, so it is never closed under a blocked read."""
    with os.fdopen(fd, "rb", buffering=0, closefd=True) as stream:
        buffer = b""
        while True:
            try:
                chunk = stream.read(4096)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    on_report(message)


class WorkerLink:
    """The worker's side: report to the parent, and stop when the parent is gone."""

    def __init__(self, fds: LinkFds) -> None:
        self.fds = fds
        self._lock = threading.Lock()

    def report(self, **message: Any) -> None:
        line = (json.dumps(message, sort_keys=True) + "\n").encode()
        with self._lock:
            try:
                os.write(self.fds.report, line)
            except OSError:  # the parent is gone: the lifeline stops this worker
                pass

    def watch_parent(self, stop: threading.Event) -> threading.Thread:
        """A daemon thread that sets ``stop`` when the lifeline reaches EOF (the parent exited)."""

        def watch() -> None:
            try:
                while os.read(self.fds.lifeline, 1):
                    pass
            except OSError:
                pass
            stop.set()

        thread = threading.Thread(target=watch, name="rollguard-lifeline", daemon=True)
        thread.start()
        return thread
