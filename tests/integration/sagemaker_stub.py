"""A tiny recording SageMaker API over real HTTP, for the commands that call UpdateEndpoint.

moto does not implement SageMaker's UpdateEndpoint (nor a DescribeEndpoint that follows it),
which is why this stub exists: `rollguard watch --apply` must be tested against a real boto3
client over HTTP, signing, retries and all, not a botocore Stubber.

It speaks the JSON 1.1 protocol boto3's ``sagemaker`` client uses (``POST /`` with
``X-Amz-Target: SageMaker.<Operation>``), on 127.0.0.1 and a free port, in a thread:

- ``UpdateEndpoint``: records the request, switches the endpoint to the new config, answers
  ``{"EndpointArn": "arn:aws:sagemaker:us-east-1:000000000000:endpoint/<name>"}``;
- ``DescribeEndpoint``: the endpoint's config and status (``endpoints``; an unknown endpoint is
  InService on config ``"unknown"``);
- anything else: 400 ``UnknownOperationException``.

``failures`` queues, per operation, answers to give before the real one, e.g.
``{"UpdateEndpoint": [(400, "ThrottlingException"), (503, "ServiceUnavailable")]}``, to
exercise retries. Every request is recorded, failed or not,
in ``requests`` as ``(operation, parsed body)``.

    stub = SageMakerStub({"fraud-ep": {"EndpointConfigName": "fraud-ep-v6"}})
    client = boto3.client("sagemaker", endpoint_url=stub.url, region_name="us-east-1")
    ...
    stub.close()
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "000000000000"
REGION = "us-east-1"


def endpoint_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name.lower()}"


class SageMakerStub:
    def __init__(self, endpoints: Mapping[str, Mapping[str, Any]] | None = None,
                 failures: Mapping[str, Iterable[tuple[int, str]]] | None = None) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {
            name: {"EndpointStatus": "InService", **dict(fields)} for name, fields in (endpoints or {}).items()}
        self.failures: dict[str, list[tuple[int, str]]] = {op: list(f) for op, f in (failures or {}).items()}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                status, answer = stub._answer(target, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sagemaker-stub", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def updates(self) -> list[dict[str, Any]]:
        """The UpdateEndpoint request bodies received, in order (the failed attempts too)."""
        return [body for op, body in self.requests if op == "UpdateEndpoint"]

    def _answer(self, target: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        service, _, operation = target.partition(".")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"__type": "SerializationException", "message": "body is not JSON"}
        with self._lock:
            self.requests.append((operation, body))
            if service != "SageMaker":
                return 400, {"__type": "UnknownOperationException", "message": f"unknown target {target!r}"}
            queued = self.failures.get(operation)
            if queued:
                status, code = queued.pop(0)
                return status, {"__type": code, "message": f"stub failure {code}"}
            name = str(body.get("EndpointName", ""))
            if operation == "UpdateEndpoint":
                endpoint = self.endpoints.setdefault(name, {"EndpointStatus": "InService"})
                endpoint["EndpointConfigName"] = body.get("EndpointConfigName")
                return 200, {"EndpointArn": endpoint_arn(name)}
            if operation == "DescribeEndpoint":
                endpoint = self.endpoints.get(name, {"EndpointStatus": "InService", "EndpointConfigName": "unknown"})
                return 200, {"EndpointName": name, "EndpointArn": endpoint_arn(name),
                             "CreationTime": 1_790_000_000, "LastModifiedTime": 1_790_000_000, **endpoint}
            return 400, {"__type": "UnknownOperationException", "message": f"the stub does not implement {operation}"}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SageMakerStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
