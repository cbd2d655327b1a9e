"""A real Apache Kafka broker on this machine, without Docker.

:func:`provision` resolves ``org.apache.kafka:kafka_2.13`` and its runtime
dependencies with Maven into a cache folder (once; later runs reuse it).
:class:`LocalBroker` formats a storage folder and runs a single-node KRaft
broker+controller on free localhost ports with the machine's Java, waits until
it answers a metadata request, and stops it cleanly (killing it if it hangs).
It is a context manager for notebooks and tests::

    with LocalBroker() as broker:
        print(broker.bootstrap)      # 127.0.0.1:<port>

The CLI's ``kstream broker start|stop|status`` manage one long-lived broker
whose state lives in ``<cache>/broker/state.json``. When the user names a
cluster (``KSTREAM_BOOTSTRAP`` or ``KAFKA_BROKER_URL``), nothing is provisioned.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from kstream.config import cache_dir
from kstream.errors import BrokerError

__all__ = [
    "KAFKA_VERSION",
    "LocalBroker",
    "BrokerState",
    "provision",
    "find_java",
    "start_daemon",
    "stop_daemon",
    "daemon_status",
    "running_bootstrap",
]

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

_LOG4J = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = org.apache.kafka
logger.kafka.level = INFO
"""


def find_java() -> str:
    """Path of a Java >= 17 (``JAVA_HOME`` first, then ``PATH``), or a BrokerError saying what to install."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not java:
        raise BrokerError(f"Java {MIN_JAVA}+ is needed to run Kafka; install it (e.g. apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise BrokerError(f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, found {major or 'unknown'} at {java}; install a newer JDK or set JAVA_HOME")
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
            raise BrokerError(f"Maven could not fetch Kafka {version}; see {home / 'maven.log'} (is Maven Central reachable?)")
        done.write_text(dt.datetime.now(dt.timezone.utc).isoformat())
    return libs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still "exists"; check its state
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(") ", 1)[1][:1] != "Z"
    return True


class LocalBroker:
    """A single-node KRaft Kafka broker+controller on localhost.

    ``data_dir`` None means a fresh temporary folder, removed on :meth:`stop`.
    Ports 0 mean free ports picked at start. Nothing happens until :meth:`start`.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        port: int = 0,
        controller_port: int = 0,
        version: str = KAFKA_VERSION,
        heap: str = "512m",
        partitions: int = 1,
    ) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.port = port
        self.controller_port = controller_port
        self.version = version
        self.heap = heap
        self.partitions = partitions
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.data_dir is not None, "the broker has not been started"
        return self.data_dir / "logs" / "server.log"

    def __repr__(self) -> str:
        return f"LocalBroker(bootstrap={self.bootstrap!r}, running={self.process is not None})"

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_config(self) -> Path:
        assert self.data_dir is not None
        cfg = self.data_dir / "server.properties"
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        cfg.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J.format(log=self.log_path))
        return cfg

    def _java(self, java: str, libs: Path, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            str(libs / "*"),
            *args,
        ]

    def start(self, timeout_s: float = 90) -> LocalBroker:
        """Provision, format (first time only), launch and wait until the broker answers."""
        if self.process is not None:
            return self
        java = find_java()  # checked first: no point fetching jars without a Java to run them
        libs = provision(self.version)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="kstream-broker-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self.port = self.port or _free_port()
        self.controller_port = self.controller_port or _free_port()
        cfg = self._write_config()
        if not (self.data_dir / "kraft" / "meta.properties").exists():
            fmt = subprocess.run(
                self._java(java, libs, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(cfg)),
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise BrokerError(f"formatting Kafka storage in {self.data_dir} failed: {fmt.stderr.strip()[-300:]}")
        out = open(self.data_dir / "logs" / "broker.out", "ab")
        self.process = subprocess.Popen(
            self._java(java, libs, "kafka.Kafka", str(cfg)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in a notebook or terminal must not kill it mid-write
        )
        out.close()
        log.info("starting Kafka %s at %s (logs: %s)", self.version, self.bootstrap, self.log_path)
        try:
            wait_ready(self.bootstrap, timeout_s, self.process)
        except BaseException:  # any failure (or Ctrl-C) while waiting must not leave a broker behind
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``); remove a temporary data folder."""
        if self.process is not None:
            terminate(self.process.pid, timeout_s)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            self.process = None
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


def wait_ready(bootstrap: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Block until ``bootstrap`` answers a metadata request, or raise BrokerError."""
    from kstream.clients import check_reachable

    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"Kafka exited with code {process.returncode} while starting; see its log")
        try:
            check_reachable(bootstrap, timeout_ms=2000)
            return
        except BrokerError:
            if time.monotonic() > deadline:
                raise BrokerError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s; see its log") from None
            time.sleep(0.5)


def terminate(pid: int, timeout_s: float = 30) -> bool:
    """SIGTERM ``pid`` and wait; SIGKILL if it is still alive after ``timeout_s``. True if it was running."""
    if not _alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    log.warning("Kafka (pid %d) did not stop within %.0fs; killing it", pid, timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


# --- the long-lived broker of `kstream broker start|stop|status` ----------------------------


@dataclass
class BrokerState:
    """What ``kstream broker start`` records about the broker it started."""

    pid: int
    bootstrap: str
    data_dir: str
    log: str
    version: str
    started: str


def _state_file() -> Path:
    return cache_dir() / "broker" / "state.json"


def _read_state() -> BrokerState | None:
    path = _state_file()
    try:
        return BrokerState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def start_daemon(port: int = 0, version: str = KAFKA_VERSION, timeout_s: float = 90) -> BrokerState:
    """Start the long-lived local broker unless it already runs; returns its state."""
    state = daemon_status()
    if state is not None:
        log.info("Kafka already running at %s (pid %d)", state.bootstrap, state.pid)
        return state
    data = cache_dir() / "broker" / "data"
    broker = LocalBroker(data_dir=data, port=port, version=version)
    broker.start(timeout_s)
    assert broker.process is not None
    state = BrokerState(
        pid=broker.process.pid,
        bootstrap=broker.bootstrap,
        data_dir=str(data),
        log=str(broker.log_path),
        version=version,
        started=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    _state_file().write_text(json.dumps(asdict(state), indent=2))
    broker.process = None  # detach: it outlives this process
    return state


def daemon_status() -> BrokerState | None:
    """The running long-lived broker, or None (a stale state file is removed)."""
    state = _read_state()
    if state is None:
        return None
    if not _alive(state.pid):
        _state_file().unlink(missing_ok=True)
        return None
    return state


def stop_daemon(timeout_s: float = 30) -> BrokerState | None:
    """Stop the long-lived broker if it runs; returns what was stopped."""
    state = daemon_status()
    if state is None:
        return None
    terminate(state.pid, timeout_s)
    _state_file().unlink(missing_ok=True)
    return state


def running_bootstrap() -> str | None:
    """Bootstrap address of the long-lived local broker, if one runs."""
    state = daemon_status()
    return state.bootstrap if state else None
