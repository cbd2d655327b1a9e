"""The local broker: lifecycle and the one-line errors when Java or Maven is missing."""

from __future__ import annotations

import os
import shutil

import pytest

from kstream.clients import check_reachable
from kstream.errors import BrokerError
from kstream.servers import broker, processes


@pytest.mark.kafka
def test_context_manager_starts_a_reachable_broker_and_cleans_up():
    with broker.LocalBroker() as local:
        data_dir, pid = local.data_dir, local.process.pid
        assert check_reachable(local.bootstrap)["brokers"][0]["port"] == local.port
        assert local.log_path.exists() and "Kafka Server started" in local.log_path.read_text()
    assert not processes.alive(pid)
    assert not data_dir.exists()
    with pytest.raises(BrokerError, match="cannot reach Kafka"):
        check_reachable(local.bootstrap, timeout_ms=1000)


def _path_with(tmp_path, *tools):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        (bin_dir / tool).symlink_to(os.path.realpath(shutil.which(tool)))
    return str(bin_dir)


def test_missing_java_says_what_to_install(tmp_path, cli):
    env = {"PATH": _path_with(tmp_path), "KSTREAM_HOME": str(tmp_path / "home"), "JAVA_HOME": ""}
    proc = cli("broker", "start", env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("kstream: error: Java 17+ is needed to run Kafka; "
                                   "install it (e.g. apt-get install openjdk-17-jre-headless)")


def test_missing_maven_says_what_to_install(tmp_path, cli):
    env = {"PATH": _path_with(tmp_path, "java"), "KSTREAM_HOME": str(tmp_path / "home"), "JAVA_HOME": ""}
    proc = cli("broker", "provision", env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(
        "kstream: error: Maven (mvn) is needed once to fetch Kafka's jars; install it")


@pytest.mark.kafka  # needs Kafka's jars, not a running broker
@pytest.mark.parametrize(
    "saved, asked, held",
    [
        ({"cluster.json": '{"nodes": 3, "ports": [1, 2, 3], "controller_ports": [4, 5, 6], "sasl": true, '
                          '"cluster_id": "x"}'}, {"nodes": 1}, "a 3-node broker with SASL"),
        ({"kraft/meta.properties": "cluster.id=abc\nnode.id=1\n"}, {"nodes": 3}, "a 1-node broker without SASL"),
        ({"kraft/meta.properties": "cluster.id=abc\nnode.id=1\n"}, {"sasl": True}, "a 1-node broker without SASL"),
    ],
)
def test_a_data_folder_restarts_only_as_the_cluster_it_holds(tmp_path, saved, asked, held):
    for name, text in saved.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    local = broker.LocalBroker(data_dir=tmp_path, **asked)
    with pytest.raises(BrokerError) as err:
        local.start()
    assert str(err.value) == f"{tmp_path} holds {held}; start it that way again, or remove that folder to start afresh"
    assert local.processes == {} and tmp_path.exists()
