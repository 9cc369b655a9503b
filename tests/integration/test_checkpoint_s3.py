"""A shared `s3://` state prefix (moto over HTTP): a crafted pickle placed at a partition's checkpoint
key is refused by the loading path and runs nothing; real checkpoints still move through S3."""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from service import checkpoint
from tests.unit.service.test_checkpoint import RunsCode
from tests.unit.service.test_daemon import TP, assign, capture, daemon

NAME = "rollguard.captures.labels.p0.ckpt"  # what Daemon._checkpoint_name(0) gives with default settings


@pytest.fixture
def s3_state(moto_endpoint: str, topic_names: Callable[[str], str]) -> tuple[Any, str, str]:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = topic_names("ckpt")
    s3.create_bucket(Bucket=bucket)
    return s3, bucket, f"s3://{bucket}/shared/rollguard"


@pytest.mark.parametrize("payload", [
    lambda marker: b"RGCK1\n" + pickle.dumps(RunsCode(marker), protocol=5),  # the old format's header
    lambda marker: pickle.dumps(RunsCode(marker), protocol=2),  # a bare pickle
])
def test_crafted_pickle_in_the_s3_prefix_is_refused_and_runs_nothing(
    s3_state: tuple[Any, str, str], tmp_path: Path, payload: Callable[[Path], bytes],
) -> None:
    s3, bucket, location = s3_state
    marker = tmp_path / "marker"
    crafted = payload(marker)
    s3.put_object(Bucket=bucket, Key=f"shared/rollguard/{NAME}", Body=crafted)

    store = checkpoint.open_store(location, lambda: s3)
    data = store.load(NAME)
    assert data == crafted
    with pytest.raises(ValueError, match=f"^checkpoint '{NAME}': (refused|not a rollguard checkpoint)"):
        checkpoint.decode(data, NAME)
    assert not marker.exists()

    # the daemon's own loading path, as on a partition assignment
    with pytest.raises(ValueError, match=f"^checkpoint '{NAME}': "):
        daemon(store).load_partition(0)  # type: ignore[arg-type]
    assert not marker.exists()
    stored = s3.get_object(Bucket=bucket, Key=f"shared/rollguard/{NAME}")["Body"].read()
    assert stored == crafted  # left in place for the operator, not replaced by an empty state


def test_checkpoints_written_to_s3_restore_on_another_instance(s3_state: tuple[Any, str, str]) -> None:
    s3, _, location = s3_state
    first = daemon(checkpoint.open_store(location, lambda: s3))  # type: ignore[arg-type]
    assign(first, [TP("captures", 0)])
    first.process({TP("captures", 0): [capture(i, i) for i in range(3)]})
    first.tick()
    data = checkpoint.open_store(location, lambda: s3).load(NAME)
    assert data is not None and data.startswith(b"RGCK4\n")
    second = daemon(checkpoint.open_store(location, lambda: s3))  # type: ignore[arg-type]
    slot = second.load_partition(0)
    assert slot.pipeline.snapshot() == first.slots[0].pipeline.snapshot()
    assert slot.pipeline.join.pending_captures == 3 and list(slot.unsent) == list(first.slots[0].unsent)


def test_a_disk_store_ships_to_s3_incrementally_and_restores_on_another_instance(
        s3_state: tuple[Any, str, str], tmp_path: Path) -> None:
    from pipelines.clock import MockedClock
    from service.daemon import Daemon
    from service.settings import load_settings
    from service.state.stores import DiskStores
    from tests.unit.service.test_daemon import NOW, DeadLetters, FakeConsumer, FakePublisher

    s3, bucket, location = s3_state

    def instance(n: int) -> Daemon:
        store = checkpoint.open_store(location, lambda: s3)
        return Daemon(load_settings(), consumer=FakeConsumer(), dead_letters=DeadLetters(),  # type: ignore[arg-type]
                      publisher=FakePublisher(), store=store, clock=MockedClock(NOW),
                      state=DiskStores(store, tmp_path / f"local{n}", lambda p: f"rollguard.captures.labels.p{p}.ckpt", 8))

    first = instance(0)
    assign(first, [TP("captures", 0)])
    first.process({TP("captures", 0): [capture(i, i) for i in range(300)]})
    first.tick()
    first._settle(wait=True)
    first.process({TP("captures", 0): [capture(i, i) for i in range(300, 310)]})
    first.tick()
    first._settle(wait=True)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="shared/rollguard/")["Contents"]}
    state = checkpoint.decode(checkpoint.open_store(location, lambda: s3).load(NAME) or b"", NAME)
    assert {f"shared/rollguard/{f.object}" for f in state["store"].files} <= keys
    assert sum("MANIFEST-" in k for k in keys) == 1  # the first snapshot's manifest is deleted
    second = instance(1)
    slot = second.load_partition(0)
    assert slot.pipeline.join.pending_captures == 310 and slot.pipeline.offsets == {"captures": 310}
    assert slot.pipeline.join.store.captures.get("ep", "id7") is not None  # type: ignore[attr-defined]
    first.state.close()
    second.state.close()
