"""The long-lived broker: it comes back on its previous ports, and stop never signals a stranger."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import kafka
import pytest

from kstream.clients import Record, ensure_topics
from kstream.clients.kafka_python import Producer
from kstream.errors import BrokerError
from kstream.servers import daemon, processes


@pytest.fixture
def stranger():
    """A process that is not Kafka but whose command line names a Kafka config, like a recycled pid might."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "kafka.Kafka",
                             "/x/server.properties"])
    deadline = time.monotonic() + 10  # Popen returns after the fork; the exec that sets the command line may lag
    while b"kafka.Kafka" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def write_state(home, **fields) -> None:
    state = {"pid": 0, "bootstrap": "127.0.0.1:1", "data_dir": str(home / "data"), "log": "-", "version": "4.1.1",
             "started": "2025-01-01T00:00:00+00:00", **fields}
    home.mkdir(exist_ok=True)
    (home / "state.json").write_text(json.dumps(state))


def test_stop_refuses_a_pid_that_is_not_our_broker(tmp_path, caplog):
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        write_state(tmp_path, pid=sleeper.pid, pids=[sleeper.pid], configs=[str(tmp_path / "data/server.properties")])
        assert daemon.stop_daemon(home=tmp_path) is None
        assert sleeper.poll() is None  # still running: never signalled
        assert not (tmp_path / "state.json").exists()
        assert f"pid {sleeper.pid} in {tmp_path / 'state.json'} is no longer the kstream broker" in caplog.text
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_state_written_before_pids_were_checked_does_not_make_stop_signal_a_stranger(tmp_path):
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        write_state(tmp_path, pid=sleeper.pid)  # the old format: a pid and nothing to check it against
        assert daemon.daemon_status(home=tmp_path) is None
        assert daemon.stop_daemon(home=tmp_path) is None and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_pid_is_ours_only_with_our_config_and_start_time(tmp_path, stranger):
    ticks = daemon._start_ticks(stranger.pid)
    assert ticks and daemon.is_our_broker(stranger.pid, "/x/server.properties", ticks)
    assert not daemon.is_our_broker(stranger.pid, "/y/server.properties", ticks)
    assert not daemon.is_our_broker(stranger.pid, "/x/server.properties", ticks + 1)  # a later process, same pid
    write_state(tmp_path, pid=stranger.pid, pids=[stranger.pid], configs=["/x/server.properties"],
                start_ticks=[ticks + 1])
    assert daemon.stop_daemon(home=tmp_path) is None
    assert stranger.poll() is None


@pytest.mark.kafka
def test_the_daemon_comes_back_on_its_ports_with_its_data_and_login(tmp_path, cli):
    home = tmp_path / "broker"
    start = dt.datetime.now()  # where kstream commands look for the local broker with KSTREAM_HOME=tmp_path
    first = daemon.start_daemon(home=home, sasl=True)
    try:
        assert daemon.daemon_status(home=home) == first
        assert daemon.start_daemon(home=home) == first  # already running: the same one
        options = first.client_options()
        ensure_topics(first.bootstrap, {"kept": 1}, options)
        with Producer(first.bootstrap, options) as producer:
            producer.publish([Record("kept", b"before the crash")], deadline_s=30)
        for pid in first.pids:  # a power cut: no clean stop, the state file stays behind
            os.kill(pid, signal.SIGKILL)
        wait_until_dead(first.pids)
        assert daemon.daemon_status(home=home) is None

        second = daemon.start_daemon(home=home)  # nodes and SASL come from the data folder
        assert second.bootstrap == first.bootstrap and second.pid != first.pid and second.sasl
        assert second.client_options() == options
        assert read_one(second.bootstrap, "kept", options) == b"before the crash"
        # the commands find it, log in by themselves, and read the size and last write off its data folder
        listed = cli("broker", "topics", env={"KSTREAM_HOME": str(tmp_path)})
        assert listed.returncode == 0, listed.stderr
        kept = next(line.split() for line in listed.stdout.splitlines() if line.startswith("kept "))
        assert kept[1:4] == ["-", "1", "1"] and kept[5] in ("B", "kB")  # one small record: bytes or kilobytes
        assert dt.datetime.strptime(" ".join(kept[6:8]), "%Y-%m-%d %H:%M") >= start.replace(second=0, microsecond=0)
    finally:
        stopped = daemon.stop_daemon(home=home)
    assert stopped is not None and stopped.bootstrap == first.bootstrap
    wait_until_dead(stopped.pids)
    assert daemon.daemon_status(home=home) is None

    port = int(first.bootstrap.rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(BrokerError) as err:
            daemon.start_daemon(home=home)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        f"port {port} of the local broker (node 1) is taken by another process; stop that process")
    assert str(home / "data" / "cluster.json") in message


def wait_until_dead(pids: list[int], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while any(processes.alive(p) for p in pids):
        if time.monotonic() > deadline:
            pytest.fail(f"pids {pids} still alive")
        time.sleep(0.2)


def read_one(bootstrap: str, topic: str, options: dict[str, str]) -> bytes | None:
    consumer = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                   **options)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                return batch[0].value
    finally:
        consumer.close()
    return None
