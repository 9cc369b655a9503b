"""The Kafka broker's jars: resolved by Maven from the checked-in pom.xml into a cache outside git."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from service.devstack.processes import file_lock

# The one place the broker version is pinned; pom.xml's default `kafka.version` matches it.
KAFKA_VERSION = "4.2.1"
JAVA_MIN_MAJOR = 17
POM = Path(__file__).resolve().parents[2] / "pom.xml"
_MARKER = "COMPLETE"


def cache_dir() -> Path:
    """`$ROLLGUARD_CACHE_DIR`, else `~/.cache/rollguard` (kept outside the git tree)."""
    configured = os.environ.get("ROLLGUARD_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "rollguard"


def find_java() -> str:
    """Path of a java >= 17, or RuntimeError naming what is missing."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else None
    java = candidate if candidate and os.access(candidate, os.X_OK) else shutil.which("java")
    if java is None:
        raise RuntimeError(f"Kafka needs Docker or a local JDK >= {JAVA_MIN_MAJOR}: no Docker engine "
                           "answered and `java` is not on PATH (apt-get install openjdk-17-jdk-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = (int(match.group(2) or 0) if match.group(1) == "1" else int(match.group(1))) if match else 0
    if major < JAVA_MIN_MAJOR:
        raise RuntimeError(f"Kafka {KAFKA_VERSION} needs java >= {JAVA_MIN_MAJOR}; {java} is "
                           f"{out.splitlines()[0] if out else 'unknown'}")
    return java


def libs_complete(libs: Path) -> bool:
    marker = libs / _MARKER
    return marker.exists() and all((libs / name).exists() for name in marker.read_text().split())


def fetch_kafka(version: str = KAFKA_VERSION) -> Path:
    """Resolve the broker jars into `{cache}/kafka-{version}/libs` (once) and return that dir."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    if libs_complete(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(f"resolving the Kafka {version} jars needs Maven: `mvn` is not on PATH "
                           "(apt-get install maven), and no Docker engine answered")
    if not POM.exists():
        raise RuntimeError(f"{POM} is missing: the local Kafka needs a rollguard source checkout")
    # Two test sessions may start at once; only one resolves, the other finds the marker.
    with file_lock(libs.parent / "resolve.lock"):
        if libs_complete(libs):
            return libs
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=libs.parent))
        cmd = [mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}", "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        jars = sorted(p.name for p in staging.glob("*.jar"))
        if done.returncode != 0 or not jars:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"mvn could not resolve Kafka {version} (exit {done.returncode}):\n"
                               f"{(done.stdout + done.stderr)[-3000:]}")
        (staging / _MARKER).write_text("\n".join(jars) + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs
