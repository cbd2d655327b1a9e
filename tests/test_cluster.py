"""A real three-node KRaft cluster: replicated topics outlive the crash of their leader."""

from __future__ import annotations

import contextlib
import logging
import time

import kafka
import pytest

from kstream.clients import Record, check_reachable, ensure_topics
from kstream.clients.kafka_python import Producer
from kstream.errors import BrokerError
from kstream.servers.broker import QUICK_START_JVM, LocalBroker

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def cluster():
    with LocalBroker(nodes=3, jvm_options=QUICK_START_JVM) as local:
        yield local


def wait_for(condition, what: str, timeout_s: float = 90):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"gave up waiting for {what}")


def read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                   group_id=None, enable_auto_commit=False)
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in batch)
    finally:
        consumer.close()
    return values


def send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    with Producer(bootstrap, {"request_timeout_ms": 5000}) as producer:  # acks=all, like the generator
        # raises unless every record is acknowledged by the in-sync replicas within 120 s
        producer.publish([Record(topic, v) for v in values], deadline_s=120)


def test_every_node_is_a_broker_and_a_controller_voter(cluster):
    described = check_reachable(cluster.bootstrap)
    assert sorted(b["broker_id"] for b in described["brokers"]) == [1, 2, 3]
    assert sorted(b["port"] for b in described["brokers"]) == sorted(cluster.ports)
    config = cluster.config_path(2).read_text()
    voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in zip(cluster.node_ids, cluster.controller_ports))
    assert f"controller.quorum.voters={voters}\n" in config
    assert "min.insync.replicas=2\n" in config and "default.replication.factor=3\n" in config


def test_acks_all_writes_and_reads_survive_a_killed_leader_which_rejoins_on_its_port(cluster):
    topic = "replicated"
    ensure_topics(cluster.bootstrap, {topic: 1})  # replication factor: the cluster default, 3
    wait_for(lambda: len(isr(cluster, topic)) == 3, "three in-sync replicas")
    assert sorted(cluster.partition_info(topic)["replicas"]) == [1, 2, 3]
    before = [f"before-{i}".encode() for i in range(200)]
    send(cluster.bootstrap, topic, before)

    leader = cluster.leader(topic)
    port = cluster.ports[leader - 1]
    cluster.kill(leader)

    after = [f"after-{i}".encode() for i in range(200)]
    send(cluster.bootstrap, topic, after)  # blocks until a new leader takes acks=all writes with 2 in sync
    new = cluster.partition_info(topic)
    assert new["leader"] in set(cluster.node_ids) - {leader}
    assert leader not in new["isr"] and len(new["isr"]) == 2
    assert sorted(read_all(cluster.bootstrap, topic, 400)) == sorted(before + after)

    cluster.restart(leader)
    assert cluster.ports[leader - 1] == port
    back = check_reachable(cluster.address(leader))
    assert {b["broker_id"]: b["port"] for b in back["brokers"]}[leader] == port
    # in the ISR again means it has copied every acknowledged record from the new leader
    wait_for(lambda: leader in isr(cluster, topic), f"node {leader} back in sync")


def isr(cluster: LocalBroker, topic: str) -> list[int]:
    try:
        return cluster.partition_info(topic)["isr"]
    except BrokerError:  # the topic's metadata has not reached the broker that answered yet
        return []


def test_a_paused_node_answers_nothing_until_resumed(cluster):
    node = 3
    cluster.pause(node)
    try:
        with pytest.raises(BrokerError, match="cannot reach Kafka"):
            check_reachable(cluster.address(node), timeout_ms=1500)
    finally:
        cluster.resume(node)
    assert wait_for(lambda: _answers(cluster.address(node)), f"node {node} to answer after SIGCONT")


def _answers(address: str) -> bool:
    try:
        check_reachable(address, timeout_ms=2000)
    except BrokerError:
        return False
    return True


def test_hooks_refuse_unknown_nodes_and_topics(cluster):
    with pytest.raises(BrokerError, match=r"no node 4: this cluster has nodes 1..3"):
        cluster.kill(4)
    with pytest.raises(BrokerError, match="node 2 is running; kill or stop it first"):
        cluster.restart(2)
    with pytest.raises(BrokerError, match="no partition 0 of topic 'never-made'"):
        cluster.leader("never-made")


def test_topic_creation_asks_again_while_the_cluster_names_a_controller_it_does_not_list_yet(cluster, monkeypatch,
                                                                                           caplog):
    from kstream.clients import kafka_python

    caplog.set_level(logging.INFO, logger="kstream")
    real, calls = kafka.KafkaAdminClient.create_topics, []

    def racing(admin, *args, **kwargs):  # what a just-started cluster's metadata made kafka-python raise in CI
        calls.append(1)
        if len(calls) == 1:
            raise kafka.errors.UnknownBrokerIdError(3)
        return real(admin, *args, **kwargs)

    monkeypatch.setattr(kafka.KafkaAdminClient, "create_topics", racing)
    ensure_topics(cluster.bootstrap, {"settling": 3})
    assert len(calls) == 2 and "cannot create topics yet (UnknownBrokerIdError)" in caplog.text

    def third_partition():
        with contextlib.suppress(BrokerError):
            return cluster.partition_info("settling", 2)

    assert len(wait_for(third_partition, "partition 2 of the new topic")["replicas"]) == 3

    monkeypatch.setattr(kafka.KafkaAdminClient, "create_topics",
                        lambda *a, **k: (_ for _ in ()).throw(kafka.errors.UnknownBrokerIdError(3)))
    monkeypatch.setattr(kafka_python, "ADMIN_RETRY_S", 1.0)
    with pytest.raises(BrokerError, match="could not create topics within 1s .*is every broker of the cluster up"):
        ensure_topics(cluster.bootstrap, {"never-made": 1})
