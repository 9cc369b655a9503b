"""moto's AWS API over real HTTP on loopback, standing in for CloudWatch and S3."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from service.devstack.processes import StopsOnExit, free_port, spawn, tail, terminate


@dataclass
class MotoServer(StopsOnExit):
    """moto's AWS API over real HTTP on loopback; `stop()` is idempotent."""

    endpoint_url: str
    pid: int | None = None
    workdir: Path | None = None  # holds moto.log
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def stop(self) -> None:
        if self.pid is not None:
            terminate(self.pid, self._process, grace_s=5.0)
            self.pid = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def start_moto(*, timeout_s: float = 30.0, port: int | None = None, script: str | None = None) -> MotoServer:
    """Start `python -m moto.server` on loopback `port` (default: a free one); return once it answers HTTP.

    `script`: a Python file to run instead, taking moto.server's arguments (bench/moto_indexed.py)."""
    workdir = Path(tempfile.mkdtemp(prefix="rollguard-moto-"))
    port = free_port() if port is None else port
    server_argv = [script] if script is not None else ["-m", "moto.server"]
    process = spawn([sys.executable, *server_argv, "-H", "127.0.0.1", "-p", str(port)], workdir / "moto.log")
    server = MotoServer(f"http://127.0.0.1:{port}", pid=process.pid, workdir=workdir, _process=process)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited (is moto[server] installed?):\n"
                                   f"{tail(workdir / 'moto.log')}")
            try:
                urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=2).close()
                return server
            except urllib.error.HTTPError:
                return server  # any HTTP answer means it serves
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server not answering after {timeout_s:.0f} s:\n"
                                   f"{tail(workdir / 'moto.log')}")
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise
