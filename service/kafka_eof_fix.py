"""A fix for kafka-python 3.0's network layer: bytes read together with the end of the stream are lost.

`KafkaTCPTransport._read_from_sock` aborts as soon as `_sock_recv` reports an error, and drops the
bytes that the same call read before it. A broker that refuses a SASL login sends its answer
(`SaslAuthenticationFailedError: ... invalid credentials`) and closes the connection; when both
arrive in one read, the client sees only "socket disconnected", and a wrong password reads as an
unreachable broker. `install()` makes `_sock_recv` hand such bytes over first and report the
end of the stream on its next call; the read loop then delivers them before it aborts. Only the
end of the stream is put off: a socket at its end stays readable, so that next call comes at once.
Any other error aborts as before.
"""
from __future__ import annotations

from typing import Any

from kafka.net import transport

_PENDING = "_rollguard_pending_error"
_END_OF_STREAM = "socket disconnected"  # kafka-python's KafkaConnectionError when recv returns b""


def _deliver_first(recv: Any) -> Any:
    def sock_recv(self: Any) -> tuple[bytes, BaseException | None]:
        pending = getattr(self, _PENDING, None)
        if pending is not None:  # the bytes before it were delivered on the previous call
            setattr(self, _PENDING, None)
            return b"", pending
        data, err = recv(self)
        if data and err is not None and err.args == (_END_OF_STREAM,):
            setattr(self, _PENDING, err)
            return data, None
        return data, err

    sock_recv.__wrapped__ = recv  # type: ignore[attr-defined]
    return sock_recv


def install() -> None:
    """Idempotent; both transports, since the TLS one has a `_sock_recv` of its own."""
    for cls in (transport.KafkaTCPTransport, transport.KafkaSSLTransport):
        recv = cls.__dict__.get("_sock_recv")
        if recv is not None and not hasattr(recv, "__wrapped__"):
            setattr(cls, "_sock_recv", _deliver_first(recv))
