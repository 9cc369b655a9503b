"""`service.kafka_eof_fix`: bytes read together with the end of the stream reach the protocol first."""
from __future__ import annotations

from kafka.net import transport

from service import kafka_clients  # noqa: F401  (installs the fix, as every client's module does)
from service.kafka_eof_fix import _deliver_first, install


class Scripted:
    """A transport whose socket reads are given: each `_sock_recv` call returns the next one."""

    def __init__(self, *reads: tuple[bytes, BaseException | None]) -> None:
        self.reads = list(reads)

    def _sock_recv(self) -> tuple[bytes, BaseException | None]:
        return self.reads.pop(0)


Scripted._sock_recv = _deliver_first(Scripted._sock_recv)  # type: ignore[method-assign]


def test_bytes_read_with_the_end_of_the_stream_come_first_and_the_error_next() -> None:
    eof = ConnectionError("socket disconnected")
    t = Scripted((b"answer", eof))
    assert t._sock_recv() == (b"answer", None)
    assert t._sock_recv() == (b"", eof)


def test_other_errors_abort_at_once_as_before() -> None:
    reset = ConnectionError("[Errno 104] Connection reset by peer")
    t = Scripted((b"partial", reset))
    assert t._sock_recv() == (b"partial", reset)


def test_reads_without_both_pass_through() -> None:
    eof = ConnectionError("socket disconnected")
    t = Scripted((b"abc", None), (b"", eof))
    assert t._sock_recv() == (b"abc", None)
    assert t._sock_recv() == (b"", eof)


def test_both_transports_are_fixed_once() -> None:
    install()  # again: idempotent
    for cls in (transport.KafkaTCPTransport, transport.KafkaSSLTransport):
        recv = cls.__dict__["_sock_recv"]
        assert hasattr(recv, "__wrapped__") and not hasattr(recv.__wrapped__, "__wrapped__")


def test_kafka_pythons_own_read_of_a_closed_socket_keeps_the_last_bytes() -> None:
    import socket

    ours, broker = socket.socketpair()
    ours.setblocking(False)
    broker.sendall(b"refused: invalid credentials")
    broker.close()  # the answer and the end of the stream are in one read
    t = transport.KafkaTCPTransport(None, ours)  # its reads need no event loop
    try:
        assert t._sock_recv() == (b"refused: invalid credentials", None)
        data, err = t._sock_recv()
        assert data == b"" and "socket disconnected" in str(err)
    finally:
        ours.close()
