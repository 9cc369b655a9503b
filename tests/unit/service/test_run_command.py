"""`rollguard run` reporting: a failure before the loop runs "cannot start", one after it "stopped"."""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from service.commands import run
from service.daemon import RestoreRefused


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("ROLLGUARD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROLLGUARD_WORKERS", "1")  # the daemon in this process (tests/unit/service/test_workers.py: more)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in handlers.items():  # main() installs its own
        signal.signal(sig, handler)


def failing(error: Exception, *, after_start: bool) -> Callable[..., Any]:
    def serve(settings: Any, stop: threading.Event, started: Callable[[Any], None]) -> Any:
        if after_start:
            started(object())
        raise error

    return serve


def test_a_kafka_error_before_the_loop_runs_is_cannot_start(capsys: pytest.CaptureFixture[str]) -> None:
    error = KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:9")
    assert run.main([], serve_daemon=failing(error, after_start=False)) == 2
    assert capsys.readouterr().err.splitlines() == [
        "rollguard: cannot start: KafkaTimeoutError: Unable to bootstrap from 127.0.0.1:9"]


def test_a_kafka_error_while_running_is_stopped_not_cannot_start(capsys: pytest.CaptureFixture[str]) -> None:
    error = KafkaConnectionError("broker\ngone")
    assert run.main([], serve_daemon=failing(error, after_start=True)) == 1
    assert capsys.readouterr().err.splitlines() == ["rollguard: stopped: KafkaConnectionError: broker gone"]


def test_a_bug_while_running_keeps_its_traceback_and_ends_with_the_line(caplog: pytest.LogCaptureFixture,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([], serve_daemon=failing(KeyError("slot"), after_start=True)) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "rollguard: stopped: KeyError: 'slot'"
    assert caplog.records[-1].exc_info is not None


def test_a_bug_before_the_loop_runs_is_raised() -> None:
    with pytest.raises(KeyError):
        run.main([], serve_daemon=failing(KeyError("slot"), after_start=False))


def test_a_stop_signal_exits_0() -> None:
    def serve(settings: Any, stop: threading.Event, started: Callable[[Any], None]) -> Any:
        started(object())
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set()

    assert run.main([], serve_daemon=serve) == 0


def test_a_checkpoint_refused_at_restore_is_one_line(caplog: pytest.LogCaptureFixture,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    error = RestoreRefused("checkpoint 'g.c.l.p0.ckpt': not a rollguard checkpoint (no RGCK header)")
    assert run.main([], serve_daemon=failing(error, after_start=True)) == 2  # as when the callback raised it
    assert capsys.readouterr().err.splitlines() == [
        "rollguard: stopped: checkpoint 'g.c.l.p0.ckpt': not a rollguard checkpoint (no RGCK header)"]
    assert not any(r.exc_info for r in caplog.records)
