"""What a local Kafka needs from this machine: a Java >= 17, and Kafka's jars fetched once with Maven.

:func:`provision` resolves ``org.apache.kafka:kafka_2.13`` (``KSTREAM_BROKER_VERSION``, default
4.1.1) and its runtime dependencies with Maven into ``<cache>/kafka/<version>/libs`` (once, under
a file lock; later runs reuse it). :func:`find_java` finds the Java that runs them.

>>> KAFKA_VERSION.split(".")[0] >= "4" or "KSTREAM_BROKER_VERSION" in os.environ
True
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from kstream.errors import BrokerError
from kstream.paths import cache_dir

__all__ = ["KAFKA_VERSION", "MIN_JAVA", "find_java", "provision"]

log = logging.getLogger(__name__)

KAFKA_VERSION = os.environ.get("KSTREAM_BROKER_VERSION", "4.1.1")
LOG4J_VERSION = "2.24.3"
MIN_JAVA = 17

_POM = """<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>kstream.local</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def find_java() -> str:
    """Path of a Java >= 17 (``JAVA_HOME`` first, then ``PATH``), or a BrokerError saying what to install."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not java:
        raise BrokerError(f"Java {MIN_JAVA}+ is needed to run Kafka; "
                          "install it (e.g. apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise BrokerError(f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, found {major or 'unknown'} at {java}; "
                          "install a newer JDK or set JAVA_HOME")
    return java


def provision(version: str = KAFKA_VERSION, root: Path | None = None) -> Path:
    """The folder of Kafka's jars for ``version``, fetched with Maven on first use."""
    home = (root or cache_dir()) / "kafka" / version
    libs, done = home / "libs", home / ".complete"
    if done.exists():
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError("Maven (mvn) is needed once to fetch Kafka's jars; install it (e.g. apt-get install maven)")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one download at a time, across processes
        if done.exists():
            return libs
        (home / "pom.xml").write_text(_POM.format(version=version, log4j=LOG4J_VERSION))
        log.info("fetching Apache Kafka %s jars with Maven into %s", version, libs)
        cmd = [mvn, "-B", "-q", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
               f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            (home / "maven.log").write_text(proc.stdout + proc.stderr)
            raise BrokerError(f"Maven could not fetch Kafka {version}; see {home / 'maven.log'} "
                              "(is Maven Central reachable?)")
        done.write_text(dt.datetime.now(dt.timezone.utc).isoformat())
    return libs
