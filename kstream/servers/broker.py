"""A real Apache Kafka broker (or a small cluster) on this machine, without Docker.

:func:`provision` resolves ``org.apache.kafka:kafka_2.13`` and its runtime
dependencies with Maven into a cache folder (once; later runs reuse it).
:class:`LocalBroker` formats a storage folder per node and runs KRaft nodes, each a combined
broker+controller, on localhost ports with the machine's Java; it waits until every node answers,
and stops them cleanly (killing any that hang). It is a context manager for notebooks and tests::

    with LocalBroker() as broker:
        print(broker.bootstrap)      # 127.0.0.1:<port>

``LocalBroker(nodes=3)`` is a three-voter cluster with durable defaults
(replication factor 3, two in-sync replicas) and fault hooks for tests:
:meth:`~LocalBroker.pause`, :meth:`~LocalBroker.resume`, :meth:`~LocalBroker.kill`,
:meth:`~LocalBroker.restart` (same ports, same data) and :meth:`~LocalBroker.leader`.
``LocalBroker(sasl=True)`` accepts only SCRAM-SHA-512 clients; its generated :attr:`~LocalBroker.credentials`
are also written, owner-readable only, to ``credentials.json`` in its data folder. A broker with a kept
data folder restarts on the ports it used before (``cluster.json`` in that folder), so clients can reconnect.

The long-lived broker of ``kstream broker start|stop|status`` is :mod:`kstream.servers.daemon`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kstream.errors import BrokerError
from kstream.retry import wait_until
from kstream.servers.processes import free_ports, port_free, terminate, write_private
from kstream.servers.provision import KAFKA_VERSION, find_java, provision
from kstream.servers.scram import SCRAM_MECHANISM, Credentials, scram_arg

__all__ = ["QUICK_START_JVM", "LocalBroker", "wait_ready"]
log = logging.getLogger(__name__)

_BROKER_USER = "kstream-broker"  # inter-broker identity on the SASL listener
_STARTING = threading.Lock()  # brokers started on threads of one process (the tests) must not pick the same ports
# JIT tier 1 only and the serial GC: a throwaway cluster starts ~40% sooner on 2 cores (and runs slower)
QUICK_START_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

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


def _cluster_id() -> str:
    """A random Kafka cluster id; never one starting with '-', which kafka-storage would read as an
    option (Kafka's own random ids skip those too)."""
    while (text := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return text


@dataclass
class _Layout:
    """What must stay the same across restarts of one data folder: ports, node count, security."""

    nodes: int
    ports: list[int]
    controller_ports: list[int]
    sasl: bool
    cluster_id: str


class LocalBroker:
    """A KRaft Kafka of ``nodes`` combined broker+controller nodes on localhost (node ids 1..nodes).

    ``data_dir`` None means a fresh temporary folder, removed on :meth:`stop`; a given
    folder is kept and a later start reuses its data, ports and credentials. ``port`` and
    ``controller_port`` fix node 1's ports (0: the previous ones, else free ones).
    ``jvm_options`` go to every node's Java (tests pass :data:`QUICK_START_JVM`).
    Nothing happens until :meth:`start`.

    >>> LocalBroker(nodes=3, sasl=True)
    LocalBroker(bootstrap='', nodes=3, sasl=True, running=False)
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        port: int = 0,
        controller_port: int = 0,
        version: str = KAFKA_VERSION,
        heap: str = "512m",
        partitions: int = 1,
        nodes: int = 1,
        sasl: bool = False,
        jvm_options: Sequence[str] = (),
    ) -> None:
        if nodes < 1:
            raise BrokerError(f"a local cluster needs at least 1 node, not {nodes}")
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.nodes = nodes
        self.sasl = sasl
        self.version = version
        self.heap = heap
        self.partitions = partitions
        self.jvm_options = list(jvm_options)
        self.ports = [port] + [0] * (nodes - 1)
        self.controller_ports = [controller_port] + [0] * (nodes - 1)
        self.processes: dict[int, subprocess.Popen] = {}
        self._credentials: Credentials | None = None
        self._internal: dict[str, str] = {}
        self._java_cmd: str | None = None
        self._libs: Path | None = None

    # --- addresses and files -------------------------------------------------------------

    @property
    def port(self) -> int:
        """Client port of node 1."""
        return self.ports[0]

    @property
    def bootstrap(self) -> str:
        """Comma-separated client addresses of every node."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports if p)

    @property
    def node_ids(self) -> list[int]:
        return list(range(1, self.nodes + 1))

    def address(self, node: int) -> str:
        """Client address of one node."""
        return f"127.0.0.1:{self.ports[self._index(node)]}"

    @property
    def process(self) -> subprocess.Popen | None:
        """Node 1's process (the only one of a single-node broker)."""
        return self.processes.get(1)

    def pid(self, node: int) -> int:
        """Process id of a running node."""
        self._index(node)
        proc = self.processes.get(node)
        if proc is None:
            raise BrokerError(f"node {node} is not running; start it with restart({node})")
        return proc.pid

    def node_dir(self, node: int) -> Path:
        """Data folder of one node (the broker's own folder when it has one node)."""
        assert self.data_dir is not None, "the broker has not been started"
        self._index(node)
        return self.data_dir if self.nodes == 1 else self.data_dir / f"node-{node}"

    def config_path(self, node: int = 1) -> Path:
        return self.node_dir(node) / "server.properties"

    def node_log(self, node: int) -> Path:
        return self.node_dir(node) / "logs" / "server.log"

    @property
    def log_path(self) -> Path:
        """Node 1's log."""
        return self.node_log(1)

    @property
    def credentials(self) -> Credentials | None:
        """The SCRAM user clients log in as (None without ``sasl``); known once started."""
        return self._credentials

    @property
    def credentials_path(self) -> Path:
        assert self.data_dir is not None, "the broker has not been started"
        return self.data_dir / "credentials.json"

    def client_options(self) -> dict[str, str]:
        """kafka-python options every client of this broker needs (empty without SASL)."""
        return self._credentials.client_options() if self._credentials else {}

    def _index(self, node: int) -> int:
        if not 1 <= node <= self.nodes:
            raise BrokerError(f"no node {node}: this cluster has nodes 1..{self.nodes}")
        return node - 1

    def __repr__(self) -> str:
        return (f"LocalBroker(bootstrap={self.bootstrap!r}, nodes={self.nodes}, sasl={self.sasl}, "
                f"running={bool(self.processes)})")

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- configuration -------------------------------------------------------------------

    def _load_layout(self) -> _Layout:
        """Ports and identity from a previous start of this folder, checked against this one's settings."""
        assert self.data_dir is not None
        path = self.data_dir / "cluster.json"
        old: _Layout | None = None
        with contextlib.suppress(OSError, ValueError, TypeError):
            old = _Layout(**json.loads(path.read_text()))
        legacy = self.data_dir / "kraft" / "meta.properties"  # a 1-node broker from before cluster.json
        if old is None and legacy.exists():
            cluster_id = re.search(r"^cluster\.id=(\S+)", legacy.read_text(), re.M)
            old = _Layout(1, [0], [0], False, cluster_id.group(1) if cluster_id else _cluster_id())
        if old is not None and (old.nodes, old.sasl) != (self.nodes, self.sasl):
            raise BrokerError(
                f"{self.data_dir} holds a {old.nodes}-node broker {'with' if old.sasl else 'without'} SASL; start it "
                "that way again, or remove that folder to start afresh"
            )
        fresh = iter(free_ports(2 * self.nodes))
        ports = [p or (old.ports[i] if old else 0) or next(fresh) for i, p in enumerate(self.ports)]
        cports = [p or (old.controller_ports[i] if old else 0) or next(fresh)
                  for i, p in enumerate(self.controller_ports)]
        layout = _Layout(self.nodes, ports, cports, self.sasl, old.cluster_id if old else _cluster_id())
        path.write_text(json.dumps(asdict(layout), indent=2))
        return layout

    def _load_secrets(self) -> None:
        """Reuse this folder's credentials, or make new random ones (a fresh folder only)."""
        assert self.data_dir is not None
        internal = self.data_dir / "internal-credentials.json"
        if self.credentials_path.exists() and internal.exists():
            self._credentials = Credentials.load(self.credentials_path)
            self._internal = json.loads(internal.read_text())
            return
        if any((self.node_dir(n) / "kraft" / "meta.properties").exists() for n in self.node_ids):
            raise BrokerError(f"the credentials of the SASL broker in {self.data_dir} are gone; "
                              "remove that folder to start afresh")
        self._credentials = Credentials("kstream", secrets.token_urlsafe(24))
        self._internal = {"broker": secrets.token_urlsafe(24), "controller": secrets.token_urlsafe(24)}
        write_private(self.credentials_path, json.dumps(asdict(self._credentials), indent=2))
        write_private(internal, json.dumps(self._internal, indent=2))

    def _properties(self, node: int) -> dict[str, str]:
        i, n = self._index(node), self.nodes
        rf, isr = ("3", "2") if n >= 3 else (str(n), "1")
        voters = ",".join(f"{k + 1}@127.0.0.1:{p}" for k, p in enumerate(self.controller_ports))
        client = "SASL_PLAINTEXT" if self.sasl else "PLAINTEXT"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "listeners": f"{client}://127.0.0.1:{self.ports[i]},CONTROLLER://127.0.0.1:{self.controller_ports[i]}",
            "advertised.listeners": f"{client}://127.0.0.1:{self.ports[i]}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": client,
            "listener.security.protocol.map": f"CONTROLLER:{client},{client}:{client}",
            "log.dirs": str(self.node_dir(node) / "kraft"),
            "num.partitions": str(self.partitions),
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": "0",  # a group's first rebalance does not wait for more members
            "group.coordinator.append.linger.ms": "0",  # an offset commit is written at once, not batched for 5 ms
            "auto.create.topics.enable": "true",
        }
        if n == 1:  # exactly the single-node settings of before
            del props["default.replication.factor"], props["min.insync.replicas"]
        if self.sasl:
            assert self._credentials is not None
            scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
            plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
            ctl = self._internal["controller"]
            props.update({
                "sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
                f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config":
                    f'{scram} username="{_BROKER_USER}" password="{self._internal["broker"]}";',
                # controllers cannot read SCRAM users before their quorum runs: PLAIN with one fixed user there
                "sasl.mechanism.controller.protocol": "PLAIN",
                "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
                "listener.name.controller.plain.sasl.jaas.config":
                    f'{plain} username="controller" password="{ctl}" user_controller="{ctl}";',
            })
        return props

    def _write_config(self, node: int) -> Path:
        home = self.node_dir(node)
        (home / "logs").mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}={v}\n" for k, v in self._properties(node).items())
        cfg = self.config_path(node)
        if self.sasl:
            write_private(cfg, text)  # holds the inter-broker and controller passwords
        else:
            cfg.write_text(text)
        (home / "log4j2.properties").write_text(_LOG4J.format(log=self.node_log(node)))
        return cfg

    def _java(self, node: int, *args: str) -> list[str]:
        assert self._java_cmd is not None and self._libs is not None
        return [
            self._java_cmd,
            f"-Xmx{self.heap}",
            *self.jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.node_dir(node) / 'log4j2.properties'}",
            "-cp",
            str(self._libs / "*"),
            *args,
        ]

    def _format(self, cluster_id: str) -> None:
        """Format every node whose storage is new (in parallel: each is a JVM start)."""
        scram: list[str] = []
        if self.sasl:
            assert self._credentials is not None
            scram = ["--add-scram", scram_arg(self._credentials.username, self._credentials.password),
                     "--add-scram", scram_arg(_BROKER_USER, self._internal["broker"])]
        todo = [n for n in self.node_ids if not (self.node_dir(n) / "kraft" / "meta.properties").exists()]
        runs = {n: subprocess.Popen(
            self._java(n, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_path(n)),
                       *scram),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in todo}
        for n, run in runs.items():
            _, err = run.communicate()
            if run.returncode != 0:
                raise BrokerError(f"formatting Kafka storage in {self.node_dir(n)} failed: {err.strip()[-300:]}")

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 90) -> LocalBroker:
        """Provision, format (first time only), launch every node and wait until all answer."""
        if self.processes:
            return self
        self._java_cmd = find_java()  # checked first: no point fetching jars without a Java to run them
        self._libs = provision(self.version)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="kstream-broker-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            with _STARTING:  # free ports are picked, then bound by the JVM seconds later: one start at a time
                self._start_nodes(timeout_s)
        except BaseException:  # any failure (or Ctrl-C) while starting must not leave a broker behind
            self.stop()
            raise
        return self

    def _start_nodes(self, timeout_s: float) -> None:
        """Pick the ports, write the configs, format, launch every node and wait until all answer."""
        layout = self._load_layout()
        self.ports, self.controller_ports = layout.ports, layout.controller_ports
        self._check_ports()
        if self.sasl:
            self._load_secrets()
        for node in self.node_ids:
            self._write_config(node)
        self._format(layout.cluster_id)
        for node in self.node_ids:
            self._launch(node)
        log.info("starting Kafka %s at %s (%d node%s%s; logs: %s)", self.version, self.bootstrap, self.nodes,
                 "s" if self.nodes > 1 else "", ", SASL" if self.sasl else "", self.log_path)
        wait_ready(self.bootstrap, timeout_s, list(self.processes.values()), self.client_options(), self.nodes)

    def _check_ports(self) -> None:
        assert self.data_dir is not None
        for node in self.node_ids:
            for port in (self.ports[node - 1], self.controller_ports[node - 1]):
                if not port_free(port):
                    raise BrokerError(
                        f"port {port} of the local broker (node {node}) is taken by another process; "
                        f"stop that process, or delete {self.data_dir / 'cluster.json'} to start on new ports "
                        "(clients then need the new address)"
                    )

    def _launch(self, node: int) -> None:
        with open(self.node_dir(node) / "logs" / "broker.out", "ab") as out:
            self.processes[node] = subprocess.Popen(
                self._java(node, "kafka.Kafka", str(self.config_path(node))),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in a notebook or terminal must not kill it mid-write
            )

    def stop(self, timeout_s: float = 30) -> None:
        """Stop every node (SIGTERM together, then SIGKILL after ``timeout_s``); remove a temporary data folder."""
        procs, self.processes = self.processes, {}
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a paused node cannot stop
        terminate([p.pid for p in procs.values()], timeout_s)
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    # --- fault injection, for tests ----------------------------------------------------

    def pause(self, node: int) -> None:
        """Freeze one node (SIGSTOP): it holds its ports but answers nothing, like a hung machine."""
        os.kill(self.pid(node), signal.SIGSTOP)

    def resume(self, node: int) -> None:
        """Let a paused node run again (SIGCONT)."""
        os.kill(self.pid(node), signal.SIGCONT)

    def kill(self, node: int) -> None:
        """Crash one node (SIGKILL): no controlled shutdown, no flush."""
        self._index(node)
        proc = self.processes.pop(node, None)
        if proc is None:
            raise BrokerError(f"node {node} is not running")
        proc.kill()
        proc.wait()

    def stop_node(self, node: int, timeout_s: float = 30) -> None:
        """Stop one node cleanly (SIGTERM, controlled shutdown)."""
        proc = self.processes.pop(node, None)
        if proc is not None:
            terminate([proc.pid], timeout_s)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def restart(self, node: int, timeout_s: float = 90) -> None:
        """Start a killed or stopped node again on its own ports and data; wait until the cluster lists it."""
        if node in self.processes:
            raise BrokerError(f"node {node} is running; kill or stop it first")
        port = self.ports[self._index(node)]
        if not port_free(port):
            raise BrokerError(f"port {port} of node {node} is taken by another process; stop that process")
        self._launch(node)
        wait_ready(self.address(node), timeout_s, [self.processes[node]], self.client_options(), node=node)

    def leader(self, topic: str, partition: int = 0) -> int:
        """Node id leading one partition (-1 while it has none)."""
        return self.partition_info(topic, partition)["leader"]

    def partition_info(self, topic: str, partition: int = 0) -> dict[str, Any]:
        """``{"leader": id, "replicas": [ids], "isr": [ids]}`` of one partition, from the cluster's metadata."""
        import kafka
        import kafka.errors

        try:
            admin = kafka.KafkaAdminClient(bootstrap_servers=self.bootstrap, **self.client_options())
        except kafka.errors.KafkaError as err:
            raise BrokerError(f"cannot reach Kafka at {self.bootstrap} ({type(err).__name__}); "
                              "is the cluster up?") from err
        try:
            topics = admin.describe_topics([topic])
        finally:
            admin.close()
        for part in topics[0]["partitions"] if topics and not topics[0]["error_code"] else ():
            if part["partition_index"] == partition:
                return {"leader": part["leader_id"], "replicas": list(part["replica_nodes"]),
                        "isr": list(part["isr_nodes"])}
        raise BrokerError(f"no partition {partition} of topic {topic!r} at {self.bootstrap}; create the topic first")


def _unfenced(cluster: dict[str, Any]) -> set[int]:
    return {b["broker_id"] for b in cluster["brokers"] if not b.get("is_fenced")}


def wait_ready(
    bootstrap: str,
    timeout_s: float,
    process: subprocess.Popen | list[subprocess.Popen] | None = None,
    options: dict[str, str] | None = None,
    brokers: int = 1,
    node: int | None = None,
) -> None:
    """Block until ``bootstrap`` answers a metadata request listing ``brokers`` live brokers (and ``node``
    among them), or raise BrokerError."""
    from kstream.clients import check_reachable

    procs = process if isinstance(process, list) else [process] if process is not None else []

    def ready() -> bool:
        for proc in procs:
            if proc.poll() is not None:
                raise BrokerError(f"Kafka exited with code {proc.returncode} while starting; see its log")
        try:
            live = _unfenced(check_reachable(bootstrap, options, timeout_ms=2000))
        except BrokerError:
            return False
        return len(live) >= brokers and (node is None or node in live)

    if not wait_until(ready, timeout_s, interval=0.5):
        raise BrokerError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s; see its log")
