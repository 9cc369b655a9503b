"""SIGUSR1 prints every thread's stack and the process goes on (a stuck instance shows where it waits)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROGRAM = """
import sys, threading, time
from service.signals import dump_stacks_on_signal
dump_stacks_on_signal()
def parked_in_a_helper_thread():
    time.sleep(60)
threading.Thread(target=parked_in_a_helper_thread, daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()  # the main thread waits here until the test writes a line
print("still running", flush=True)
"""


def test_sigusr1_prints_every_threads_stack_and_the_process_carries_on() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.2)  # the helper thread is in its sleep
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out == "still running\n"
    assert "parked_in_a_helper_thread" in err and "<module>" in err, err
    assert err.count("Thread 0x") + err.count("Current thread 0x") == 2, err
