"""The Docker files cannot run here (no engine), so their consistency is checked as data."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from service.devstack.jars import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[3]


def test_compose_stack_matches_the_project() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "moto", "rollguard", "topics", "traffic"} <= set(services)
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    env = services["rollguard"]["environment"]
    assert env["ROLLGUARD_AWS_ENDPOINT_URL"].startswith("http://moto:")
    assert services["rollguard"]["command"] == ["run"]


def test_compose_publishes_ports_on_loopback_only() -> None:
    """The status API and moto have no authentication by default: never on every host interface."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    published = {name: svc["ports"] for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"rollguard": ["127.0.0.1:8787:8787"], "moto": ["127.0.0.1:5000:5000"]}
    dockerfile = (ROOT / "Dockerfile").read_text()
    # inside the container the daemon binds every interface, or the published port reaches nothing
    assert "ROLLGUARD_HTTP_ADDR=0.0.0.0:8787" in dockerfile and "EXPOSE 8787" in dockerfile


def test_dockerfile_is_slim_non_root_and_runs_the_daemon() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER rollguard" in text
    assert 'ENTRYPOINT ["rollguard"]' in text and 'CMD ["run"]' in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"


def test_wrong_setting_stops_run_with_one_line() -> None:
    env = {**os.environ, "ROLLGUARD_TICK_SECONDS": "soon"}
    proc = subprocess.run([sys.executable, "-m", "service.cli", "run"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "ROLLGUARD_TICK_SECONDS" in lines[0], proc.stderr
