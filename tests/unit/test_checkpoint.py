from pathlib import Path

import pytest

from service.checkpoint import LocalDirStore, decode, encode, open_store


def test_local_store_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "state")
    assert store.load("p0.ckpt") is None
    store.save("p0.ckpt", encode({"a": 1}))
    store.save("p0.ckpt", encode({"a": 2}))
    assert decode(store.load("p0.ckpt") or b"", "p0.ckpt") == {"a": 2}
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["p0.ckpt"]  # no temp files left


def test_decode_refuses_foreign_bytes() -> None:
    with pytest.raises(ValueError, match="not a rollguard checkpoint"):
        decode(b"hello", "x.ckpt")


def test_open_store_picks_s3_or_directory(tmp_path: Path) -> None:
    made = []
    s3 = open_store("s3://bucket/some/prefix", lambda: made.append(1) or object())
    assert type(s3).__name__ == "S3Store" and s3._key("p1") == "some/prefix/p1"  # type: ignore[attr-defined]
    assert isinstance(open_store(str(tmp_path), lambda: None), LocalDirStore)
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        open_store("s3://", lambda: None)
