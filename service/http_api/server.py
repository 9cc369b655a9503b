"""The status API's server: a ThreadingHTTPServer that bounds slow clients, its handlers, readiness."""
from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast

from service.http_api.alarm_states import ALARM_POLL_SECONDS, AlarmClient, AlarmPoller
from service.http_api.document import public_text, status_document
from service.http_api.prometheus import PROMETHEUS_CONTENT_TYPE, render_prometheus
from service.http_api.rate_meter import RATE_SAMPLE_SECONDS, RateMeter

log = logging.getLogger("rollguard.http")

JSON_CONTENT_TYPE = "application/json"
#: a connection has this long to send a request line and headers, however it trickles them
REQUEST_TIMEOUT_SECONDS = 5.0
#: an idle keep-alive connection is closed after this long without a new request
IDLE_TIMEOUT_SECONDS = 10.0
#: connections served at once (one thread each); the next one is answered 503 and closed
MAX_CONNECTIONS = 16


class BaseDaemonView(Protocol):
    """What the API needs from any daemon; without ``readiness`` it is ready once ``ready`` is set."""

    ready: threading.Event

    @property
    def stats(self) -> Any: ...  # .records: int, read without the daemon's lock (a plain int)

    def status(self) -> dict[str, Any]: ...


class DaemonView(BaseDaemonView, Protocol):
    """What the API reads from the daemon (service.daemon.Daemon satisfies it)."""

    def readiness(self) -> tuple[bool, str]: ...  # (ok, one-line reason); must not block


NOT_READY_REASON = "waiting for partition assignment and state restore"


def readiness_of(daemon: DaemonView | BaseDaemonView) -> tuple[bool, str]:
    """``daemon.readiness()`` when it has it, else ``daemon.ready``; the reason is one short line.

    Never raises: a failing check is itself a reason not to be ready.
    """
    check = getattr(daemon, "readiness", None)
    if check is None:
        return (True, "ready") if daemon.ready.is_set() else (False, NOT_READY_REASON)
    try:
        ok, reason = check()
    except Exception as ex:  # noqa: BLE001 - a probe answers, it does not crash
        log.debug("readiness check failed", exc_info=True)
        return False, f"readiness check failed ({type(ex).__name__})"
    return bool(ok), public_text(reason) or ("ready" if ok else "no reason given")


class StatusServer:
    """The running API: ``address``/``url`` say where it listens; :meth:`shutdown` stops everything."""

    def __init__(self, httpd: _Server, threads: list[threading.Thread],
                 poller: AlarmPoller, stop: threading.Event) -> None:
        self._httpd = httpd
        self._threads = threads
        self._poller = poller
        self._stop = stop
        host, port = httpd.server_address[:2]
        self.address: tuple[str, int] = (str(host), int(port))

    @property
    def url(self) -> str:
        host = f"[{self.address[0]}]" if ":" in self.address[0] else self.address[0]
        return f"http://{host}:{self.address[1]}"

    @property
    def connections(self) -> int:
        """Connections open now (each holds a thread)."""
        return self._httpd.open_connections()

    def shutdown(self) -> None:
        """Stop serving, close the socket, stop the sampler and poller; idempotent, bounded (~1 s)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._poller.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
        for t in self._threads:
            t.join(1.0)


class _Api:
    """The state behind the handlers: the daemon, the rate meter and the alarm cache."""

    def __init__(self, daemon: DaemonView | BaseDaemonView, meter: RateMeter, poller: AlarmPoller,
                 monotonic: Callable[[], float]) -> None:
        self.daemon, self.meter, self.poller, self.monotonic = daemon, meter, poller, monotonic

    def sample(self) -> None:
        self.meter.sample(self.monotonic(), float(self.daemon.stats.records))

    def document(self) -> dict[str, Any]:
        self.sample()  # a scrape right after a burst sees it
        return status_document(self.daemon.status(), self.poller.snapshot(), self.meter.rate())


_TEXT = "text/plain; charset=utf-8"
_PROTECTED = ("/v1/status", "/metrics")


def _busy_response() -> bytes:
    body = b"busy: too many connections, retry shortly\n"
    head = (f"HTTP/1.1 503 Service Unavailable\r\nServer: rollguard\r\nContent-Type: {_TEXT}\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (constant-time compare)."""
    scheme, _, credential = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode())


def _handler(api: _Api, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "rollguard"
        sys_version = ""  # no Python version in the Server header
        protocol_version = "HTTP/1.1"
        server: _Server
        _served = 0

        def version_string(self) -> str:
            return self.server_version

        def handle_one_request(self) -> None:
            srv = self.server
            if self._served:
                # keep-alive: wait idle_timeout for the next request's first byte (a single read,
                # so no trickle extends it), then the request deadline covers its headers
                self.connection.settimeout(srv.idle_timeout_s)
                try:
                    if not cast(io.BufferedReader, self.rfile).peek(1):
                        self.close_connection = True
                        return
                except OSError:  # TimeoutError included
                    log.debug("%s idle keep-alive connection closed", self.address_string())
                    self.close_connection = True
                    return
            self.connection.settimeout(srv.request_timeout_s)
            srv.arm(self.connection)
            try:
                super().handle_one_request()
            finally:
                srv.disarm(self.connection)
            self._served += 1

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            if not self.server.disarm(self.connection):
                # past its deadline: the socket was shut, and the EOF read as the end of the headers
                self.close_connection = True
                return
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            try:
                if path in _PROTECTED and token is not None and not self._authorized(token, body):
                    return
                if path == "/healthz":
                    self._send(HTTPStatus.OK, _TEXT, b"ok\n", body)
                elif path == "/readyz":
                    ok, reason = readiness_of(api.daemon)
                    if ok:
                        self._send(HTTPStatus.OK, _TEXT, b"ready\n", body)
                    else:
                        self._send(HTTPStatus.SERVICE_UNAVAILABLE, _TEXT, f"not ready: {reason}\n".encode(), body)
                elif path == "/v1/status":
                    doc = json.dumps(api.document(), default=str, sort_keys=True).encode()
                    self._send(HTTPStatus.OK, JSON_CONTENT_TYPE, doc, body)
                elif path == "/metrics":
                    self._send(HTTPStatus.OK, PROMETHEUS_CONTENT_TYPE, render_prometheus(api.document()).encode(), body)
                else:
                    self._send(HTTPStatus.NOT_FOUND, _TEXT,
                               b"not found; try /healthz, /readyz, /v1/status or /metrics\n", body)
            except (ConnectionError, TimeoutError):  # the client went away or stopped reading
                log.debug("%s HTTP %s: client gone", self.address_string(), path)
                self.close_connection = True
            except Exception as ex:  # noqa: BLE001 - one broken request must not take the API down
                log.exception("HTTP %s failed", path)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT,
                           f"internal error: {public_text(f'{type(ex).__name__}: {ex}')}\n".encode(), body)

        def _authorized(self, token: str, body: bool) -> bool:
            """True when the request carries the token; else answers 401 and returns False."""
            header = self.headers.get("Authorization")
            if bearer_matches(header, token):
                return True
            challenge = 'Bearer realm="rollguard"' + (', error="invalid_token"' if header else "")
            self._send(HTTPStatus.UNAUTHORIZED, _TEXT,
                       b"unauthorized: send Authorization: Bearer <ROLLGUARD_HTTP_TOKEN>\n", body,
                       extra=(("WWW-Authenticate", challenge),))
            return False

        def _send(self, code: HTTPStatus, content_type: str, payload: bytes, body: bool,
                  extra: tuple[tuple[str, str], ...] = ()) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that bounds what slow or idle clients can hold.

    Each open connection is tracked with the deadline by which its current request's headers
    must be in; ``service_actions`` (run by ``serve_forever`` at every poll) shuts down the
    sockets past it, which ends their threads' reads. Beyond ``max_connections`` a new
    connection gets a canned 503 from the accept loop itself, no thread started.
    """

    daemon_threads = True  # a slow client never holds up shutdown
    allow_reuse_address = True
    request_queue_size = 64  # the stdlib's 5 drops a burst of connects into 1-3 s SYN retries

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 request_timeout_s: float, idle_timeout_s: float, max_connections: int,
                 monotonic: Callable[[], float]) -> None:
        self.request_timeout_s = request_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._monotonic = monotonic
        self._deadlines: dict[Any, float | None] = {}  # open connection -> header deadline, None while answering
        self._reaped: set[Any] = set()  # shut for missing their deadline, until closed
        self._conn_lock = threading.Lock()
        super().__init__(address, handler)

    def open_connections(self) -> int:
        with self._conn_lock:
            return len(self._deadlines)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            admitted = len(self._deadlines) < self.max_connections
            if admitted:
                self._deadlines[request] = self._monotonic() + self.request_timeout_s
        if not admitted:
            log.debug("%s refused: %d connections open", client_address, self.max_connections)
            self._refuse(request)
            return
        super().process_request(request, client_address)  # on failure the caller runs shutdown_request

    def _refuse(self, request: Any) -> None:
        try:
            request.setblocking(False)  # the accept loop never waits on a client
            try:
                request.recv(65536)  # what already arrived, so closing does not reset the 503 away
            except BlockingIOError:
                pass
            request.sendall(_busy_response())
        except OSError:
            pass
        super().shutdown_request(request)

    def arm(self, conn: Any) -> None:
        with self._conn_lock:
            if conn in self._deadlines:
                self._deadlines[conn] = self._monotonic() + self.request_timeout_s

    def disarm(self, conn: Any) -> bool:
        """No deadline while ``conn``'s request is answered; False if it already missed it."""
        with self._conn_lock:
            if conn in self._deadlines:
                self._deadlines[conn] = None
            return conn not in self._reaped

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:  # forgotten before it is closed, so service_actions never sees a closed socket
            self._deadlines.pop(request, None)
            self._reaped.discard(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        now = self._monotonic()
        with self._conn_lock:
            for conn, deadline in self._deadlines.items():
                if deadline is not None and deadline <= now:
                    self._deadlines[conn] = None
                    self._reaped.add(conn)
                    try:
                        conn.shutdown(socket.SHUT_RDWR)  # the handler's read returns at once
                    except OSError:
                        pass
                    log.debug("connection cut: no complete request within %s s", self.request_timeout_s)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _client_factory(alarm_client: AlarmClient | Callable[[], AlarmClient] | None, settings: Any) -> Callable[[], AlarmClient]:
    if alarm_client is None:
        from service import aws

        return lambda: aws.client("cloudwatch", settings)
    if hasattr(alarm_client, "get_paginator"):
        client: AlarmClient = alarm_client
        return lambda: client
    return alarm_client


def start_server(
    daemon: DaemonView | BaseDaemonView,
    *,
    addr: str | None = None,
    alarm_client: AlarmClient | Callable[[], AlarmClient] | None = None,
    alarm_interval_s: float = ALARM_POLL_SECONDS,
    sample_interval_s: float = RATE_SAMPLE_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
    token: str | None = None,
    request_timeout_s: float = REQUEST_TIMEOUT_SECONDS,
    idle_timeout_s: float = IDLE_TIMEOUT_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
    label: str = "http",
) -> StatusServer:
    """Serve the API for ``daemon`` on ``addr`` (default ``daemon.settings.http_addr``) and return at once.

    Port 0 picks a free port; the bound address is logged at INFO as
    ``http listening on HOST:PORT`` and available as ``.address``. ``alarm_client`` is a
    CloudWatch client or a factory of one (default: ``service.aws.client("cloudwatch",
    daemon.settings)``). ``token`` (default: ``daemon.settings.http_bearer_token()``, if the
    settings have one) makes ``/v1/status`` and ``/metrics`` require it as a bearer token.
    ``monotonic`` also times the request deadlines; ``label`` starts that log line (a worker's
    API, which only its supervisor reads, logs another). Raises ``SystemExit`` with one line when
    the address cannot be bound, so ``rollguard run`` stops with a clear message instead of a
    traceback.
    """
    if token == "":
        raise ValueError("token must not be empty (None for no token)")
    if request_timeout_s <= 0 or idle_timeout_s <= 0 or max_connections < 1:
        raise ValueError(f"need request_timeout_s > 0, idle_timeout_s > 0 and max_connections >= 1, got "
                         f"{request_timeout_s}, {idle_timeout_s} and {max_connections}")
    settings: Any = getattr(daemon, "settings", None)
    addr = addr or str(settings.http_addr)
    if token is None and hasattr(settings, "http_bearer_token"):
        token = settings.http_bearer_token()
    host, _, port_text = addr.rpartition(":")
    host = host.strip("[]")
    poller = AlarmPoller(_client_factory(alarm_client, settings), interval_s=alarm_interval_s)
    api = _Api(daemon, RateMeter(), poller, monotonic)
    try:
        server_class = _Server6 if ":" in host else _Server
        httpd = server_class((host, int(port_text)), _handler(api, token), request_timeout_s=request_timeout_s,
                             idle_timeout_s=idle_timeout_s, max_connections=max_connections, monotonic=monotonic)
    except OSError as ex:  # bound before any thread starts, so a bad address leaves nothing behind
        raise SystemExit(f"rollguard: cannot serve HTTP on {addr} (ROLLGUARD_HTTP_ADDR): {ex.strerror or ex}") from ex
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(sample_interval_s):
            try:
                api.sample()
            except Exception:  # noqa: BLE001 - never let the sampler die
                log.debug("record-rate sample failed", exc_info=True)

    api.sample()
    serve = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                             name="rollguard-http", daemon=True)
    sample = threading.Thread(target=sampler, name="rollguard-http-sampler", daemon=True)
    serve.start()
    sample.start()
    poller.start()
    server = StatusServer(httpd, [serve, sample], poller, stop)
    log.info("%s listening on %s:%d", label, *server.address)
    if token is not None:
        log.info("http: /v1/status and /metrics require the bearer token")
    elif not _is_loopback(server.address[0]):
        log.warning("http on %s without ROLLGUARD_HTTP_TOKEN: /v1/status and /metrics are open to anyone "
                    "who can reach this address", addr)
    return server
