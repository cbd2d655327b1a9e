"""The long-lived local broker of ``kstream broker start|stop|status``.

:func:`start_daemon` starts a :class:`~kstream.servers.broker.LocalBroker` (one node, or a
cluster; optionally SASL) whose processes outlive the caller, and records them in
``<cache>/broker/state.json``; its data lives in ``<cache>/broker/data`` together with
its ports, so a start after a stop (or after a machine restart) listens where it did
before and running detectors reconnect. :func:`stop_daemon` and :func:`daemon_status`
trust a recorded pid only while ``/proc`` shows that it is still the very Kafka process
that was started (same config file, same start time): a pid the system handed to
another program is never signalled.

>>> daemon_status(home=Path("no-such-folder")) is None
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kstream.errors import BrokerError
from kstream.paths import cache_dir
from kstream.servers.broker import LocalBroker
from kstream.servers.processes import alive, terminate
from kstream.servers.provision import KAFKA_VERSION
from kstream.servers.scram import Credentials

__all__ = [
    "BrokerState",
    "start_daemon",
    "stop_daemon",
    "daemon_status",
    "running_bootstrap",
    "running_options",
    "is_our_broker",
]

log = logging.getLogger(__name__)


@dataclass
class BrokerState:
    """What ``kstream broker start`` records about the broker it started (``pid`` is node 1's)."""

    pid: int
    bootstrap: str
    data_dir: str
    log: str
    version: str
    started: str
    nodes: int = 1
    sasl: bool = False
    pids: list[int] = field(default_factory=list)  # every node's, in node order
    configs: list[str] = field(default_factory=list)  # each node's server.properties, as on its command line
    start_ticks: list[int] = field(default_factory=list)  # each process's start time (/proc/<pid>/stat)
    credentials: str = ""  # credentials.json of a SASL broker

    def client_options(self) -> dict[str, str]:
        """kafka-python options a client of this broker needs (SASL login; empty without SASL)."""
        return Credentials.load(self.credentials).client_options() if self.sasl else {}

    def log_dirs(self) -> list[Path]:
        """Each node's folder of partition logs (Kafka's ``log.dirs``), as :class:`LocalBroker` lays them out."""
        root = Path(self.data_dir)
        return [root / "kraft"] if self.nodes == 1 else [root / f"node-{n}" / "kraft" for n in range(1, self.nodes + 1)]


def _home(home: Path | None) -> Path:
    return Path(home) if home is not None else cache_dir() / "broker"


def _state_file(home: Path | None = None) -> Path:
    return _home(home) / "state.json"


def _read_state(home: Path | None = None) -> BrokerState | None:
    try:
        state = BrokerState(**json.loads(_state_file(home).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not state.pids:  # written before clusters existed: one node, nothing to check it against
        state.pids = [state.pid]
    return state


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(") ", 1)[1].split()[19])


def is_our_broker(pid: int, config: str | None = None, start_ticks: int | None = None) -> bool:
    """True if ``pid`` is a running Kafka server started with ``config`` (and at ``start_ticks``, if given).

    >>> import os
    >>> is_our_broker(os.getpid())  # this Python is no Kafka server
    False
    """
    if not alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    if "kafka.Kafka" not in args or (config is not None and config not in args):
        return False
    return start_ticks is None or _start_ticks(pid) == start_ticks


def _ours(state: BrokerState) -> list[int]:
    """The recorded pids that are still the processes this state describes."""
    configs: Sequence[str | None] = state.configs or [None] * len(state.pids)  # none recorded: any config
    ticks: Sequence[int | None] = state.start_ticks or [None] * len(state.pids)
    return [pid for pid, cfg, t in zip(state.pids, configs, ticks) if is_our_broker(pid, cfg, t)]


def _drop_stale(state: BrokerState, ours: list[int], home: Path | None) -> None:
    strangers = [p for p in state.pids if p not in ours and alive(p)]
    if strangers:
        log.warning(
            "pid %s in %s is no longer the kstream broker (another program has it now); "
            "removed that stale state without signalling it", ", ".join(map(str, strangers)), _state_file(home)
        )
    _state_file(home).unlink(missing_ok=True)


def _recorded(home: Path | None) -> tuple[BrokerState, list[int]] | None:
    """The recorded broker and those of its pids that are still its nodes; None (a stale state file
    removed) when none is."""
    state = _read_state(home)
    if state is None:
        return None
    ours = _ours(state)
    if not ours:
        _drop_stale(state, ours, home)
        return None
    return state, ours


def daemon_status(home: Path | None = None) -> BrokerState | None:
    """The running long-lived broker, or None (a stale state file is removed).

    ``home`` is the folder of its state and data (default ``<cache>/broker``).
    """
    recorded = _recorded(home)
    if recorded is None:
        return None
    state, ours = recorded
    if len(ours) < len(state.pids):
        log.warning("only %d of the %d nodes of the local broker run; restart it with `kstream broker stop` "
                    "then `kstream broker start`", len(ours), len(state.pids))
    return state


def _saved_layout(data: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((data / "cluster.json").read_text())
    return {}


def start_daemon(
    port: int = 0,
    version: str = KAFKA_VERSION,
    timeout_s: float = 90,
    nodes: int | None = None,
    sasl: bool | None = None,
    home: Path | None = None,
) -> BrokerState:
    """Start the long-lived local broker unless it already runs; returns its state.

    ``nodes`` and ``sasl`` default to what its data folder already holds (else one node,
    no SASL); its ports are the previous ones unless ``port`` names node 1's.
    """
    state = daemon_status(home)
    if state is not None:
        if (nodes or state.nodes, state.sasl if sasl is None else sasl) != (state.nodes, state.sasl):
            raise BrokerError(f"the local broker already runs with {state.nodes} node(s), SASL "
                              f"{'on' if state.sasl else 'off'}; stop it first with `kstream broker stop`")
        log.info("Kafka already running at %s (pid %d)", state.bootstrap, state.pid)
        return state
    data = _home(home) / "data"
    saved = _saved_layout(data)
    nodes = nodes or saved.get("nodes", 1)
    sasl = saved.get("sasl", False) if sasl is None else sasl
    broker = LocalBroker(data_dir=data, port=port, version=version, nodes=nodes, sasl=sasl)
    broker.start(timeout_s)
    pids = [broker.pid(n) for n in broker.node_ids]
    state = BrokerState(
        pid=pids[0],
        bootstrap=broker.bootstrap,
        data_dir=str(data),
        log=str(broker.log_path),
        version=version,
        started=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        nodes=nodes,
        sasl=sasl,
        pids=pids,
        configs=[str(broker.config_path(n)) for n in broker.node_ids],
        start_ticks=[_start_ticks(p) or 0 for p in pids],
        credentials=str(broker.credentials_path) if sasl else "",
    )
    _state_file(home).write_text(json.dumps(asdict(state), indent=2))
    broker.processes = {}  # detach: the nodes outlive this process
    return state


def stop_daemon(timeout_s: float = 30, home: Path | None = None) -> BrokerState | None:
    """Stop the long-lived broker if it runs; returns what was stopped.

    Only processes that are still the recorded Kafka nodes are signalled; a state file whose
    pids now belong to other programs is removed with a warning, and None is returned.
    """
    recorded = _recorded(home)
    if recorded is None:
        return None
    state, ours = recorded
    terminate(ours, timeout_s)
    _state_file(home).unlink(missing_ok=True)
    return state


def running_bootstrap(home: Path | None = None) -> str | None:
    """Bootstrap address of the long-lived local broker, if one runs."""
    state = daemon_status(home)
    return state.bootstrap if state else None


def running_options(home: Path | None = None) -> dict[str, str]:
    """Client options for the long-lived local broker (its SASL login, if it has one; else empty)."""
    state = daemon_status(home)
    return state.client_options() if state else {}
