"""Shared fixtures and helpers: one real Kafka broker per session, trained models, unique names,
the CLI in a subprocess, pipelines of `kstream generate` and `kstream detect` processes with the
ledger that checks what they left, and CICIDS2017 files written the way the 2017 release spells them.

The broker is a real single-node KRaft Kafka started by :class:`kstream.servers.broker.LocalBroker`
on free ports (or the cluster named by ``KSTREAM_TEST_BOOTSTRAP``). Each test gets its own
topic and consumer-group names so tests never see each other's records. A test that uses the
broker must be marked ``kafka`` (checked at collection), so ``-m "not kafka"`` runs the rest
without one.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import kafka
import pandas as pd
import pytest

from kstream.clients import ensure_topics
from kstream.data import datasets
from kstream.modeling import artifacts, training
from kstream.modeling.artifacts import ModelRef
from kstream.paths import DATASETS_DIR
from kstream.servers import broker
from kstream.settings import Settings
from kstream.stores.sqlite import open_store

IMPROVED = DATASETS_DIR / "cicids2017-improved-sample"

TRAINED = [
    ("binary_class", "decision-tree"),
    ("multi_class", "decision-tree"),
    ("binary_class", "random-forest"),
]


def pytest_collection_modifyitems(items):
    """Refuse a test that starts or uses a server (the broker, FerretDB) without its mark."""
    for fixture, mark in (("kafka_bootstrap", "kafka"), ("mongo_server", "mongodb")):
        unmarked = [i.nodeid for i in items if fixture in getattr(i, "fixturenames", ())
                    and i.get_closest_marker(mark) is None]
        if unmarked:
            raise pytest.UsageError(f"tests using {fixture} must be marked {mark}: {', '.join(unmarked)}")


# --- the broker and the models ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """Bootstrap address of a real broker for the whole session."""
    given = os.environ.get("KSTREAM_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    with broker.LocalBroker() as local:
        yield local.bootstrap


@pytest.fixture(scope="session")
def mongo_server():
    """One FerretDB (MongoDB wire protocol, SQLite backend) without authentication for the session;
    built with Go into the cache on first use."""
    from kstream.servers.ferretdb import LocalMongo

    with LocalMongo() as server:
        yield server


@pytest.fixture(scope="session")
def cicids():
    """The bundled CICIDS2017 sample, loaded once."""
    return datasets.load("cicids2017")


@pytest.fixture(scope="session")
def samples(cicids):
    """Every bundled sample, loaded once: the default one of each dataset, and the CICIDS2017 csv-sample."""
    out = {name: cicids if name == "cicids2017" else datasets.load(name) for name in datasets.available()}
    out["csv-sample"] = datasets.load("cicids2017", "csv-sample")
    return out


@pytest.fixture(scope="session")
def csv_model(tmp_path_factory, samples):
    """A multi-class decision tree trained on the csv-sample's random split (the split that leaks: a fifth
    of its rows repeat a vector), with a learning curve; for tests that read a model's leakage report."""
    root = tmp_path_factory.mktemp("csv-model")
    ref = ModelRef("cicids2017", "multi_class", "decision-tree", level="grouped", models_dir=root, split_mode="random")
    return training.train(ref, samples["csv-sample"], learning_curve=True)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, cicids) -> Path:
    """A models folder holding the seed models the tests stream with."""
    root = tmp_path_factory.mktemp("models")
    for task, model in TRAINED:
        training.train(ModelRef("cicids2017", task, model, models_dir=root), cicids)
    return root


@pytest.fixture
def names():
    """Unique topic/group names for one test."""
    tag = uuid.uuid4().hex[:10]
    return {
        "topic": f"flows-{tag}",
        "predictions_topic": f"preds-{tag}",
        "dlq_topic": f"dlq-{tag}",
        "group": f"group-{tag}",
    }


@pytest.fixture
def client() -> str:
    """The Kafka client backend of the ``settings`` fixture; a test module overrides this fixture with
    ``params=list(BACKENDS)`` to run its tests on every backend."""
    return "kafka-python"


@pytest.fixture
def settings(kafka_bootstrap, models_dir, names, tmp_path, client) -> Settings:
    """Settings for a decision-tree binary detector on this test's own topics and store, with ``client``."""
    return Settings(
        model="decision-tree",
        models_dir=models_dir,
        bootstrap=kafka_bootstrap,
        store_url=str(tmp_path / "predictions.sqlite"),
        client=client,
        **names,
    )


# --- processes and topics ---------------------------------------------------------------------------


def _run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("KSTREAM_", "KAFKA_BROKER_URL", "MPLBACKEND"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kstream", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


@pytest.fixture(scope="session")
def cli():
    """``cli(*args, env=None, timeout=300)``: run ``python -m kstream ARGS`` in a subprocess, output captured.

    The caller's KSTREAM_* and KAFKA_BROKER_URL variables are left out, so only ``env`` configures it.
    """
    return _run_cli


@pytest.fixture(scope="session")
def one_line_error():
    """``one_line_error(proc, *words)``: assert the command failed with exactly one line holding ``words``."""

    def check(proc: subprocess.CompletedProcess, *words: str) -> str:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("kstream: error: ") and "Traceback" not in proc.stderr
        for word in words:
            assert word in lines[0]
        return lines[0]

    return check


@pytest.fixture(scope="session")
def read_topic():
    """``read_topic(bootstrap, topic, expected, timeout_s=30)``: every record of a topic (waits for ``expected``)."""

    def read(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list:
        consumer = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                       group_id=None, consumer_timeout_ms=2000)
        out, deadline = [], time.monotonic() + timeout_s
        try:
            while len(out) < expected and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    out.extend(batch)
        finally:
            consumer.close()
        return out

    return read


@pytest.fixture(scope="session")
def detect_command():
    """``detect_command(settings)``: environment and argv of a `kstream detect` subprocess on its topics and store."""

    def command(settings: Settings) -> tuple[dict[str, str], list[str]]:
        env = {**os.environ, "KSTREAM_MODELS_DIR": str(settings.models_dir)}
        cmd = [sys.executable, "-m", "kstream", "-q", "detect", "-m", settings.model,
               "--bootstrap", settings.bootstrap, "--topic", settings.topic, "--group", settings.group,
               "--predictions-topic", settings.predictions_topic, "--dlq-topic", settings.dlq_topic,
               "--store-url", settings.store_url, "--batch-size", "50", "--client", settings.client]
        return env, cmd

    return command


@pytest.fixture(scope="session")
def wait_for_stored():
    """``wait_for_stored(settings, at_least, proc, timeout_s=120)``: poll the store until it holds
    ``at_least`` rows, the process exits or time runs out; returns the count."""

    def wait(settings: Settings, at_least: int, proc: subprocess.Popen, timeout_s: float = 120) -> int:
        deadline, stored = time.monotonic() + timeout_s, 0
        while stored < at_least and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if os.path.exists(settings.store_url):
                with open_store("sqlite", settings.store_url) as store:
                    stored = store.count()
        return stored

    return wait


# --- pipelines of processes: generate -> flows topic -> detect -> store, and their ledger -------------

#: Records per poll of the detectors a Pipe starts: small, so a fault lands inside a stream of many batches.
PIPE_BATCH = 50


def count_rows(store: str | Path, table: str) -> int:
    """Rows of ``table`` in a SQLite results store (0 before the detector made the file or its tables)."""
    if not os.path.exists(store):
        return 0
    with contextlib.closing(sqlite3.connect(store, timeout=30)) as db:
        try:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not there yet
            return 0


@pytest.fixture(scope="session")
def stored_rows():
    """``stored_rows(store, table)``: :func:`count_rows` for tests outside this file."""
    return count_rows


@dataclass
class Pipe:
    """A generator -> flows topic -> detector(s) -> store pipeline on topics, group and files of its own.

    :meth:`generate` and :meth:`detect` start `kstream generate` / `kstream detect` (decision-tree,
    binary) as processes whose output goes to ``<work>/<name>.out|.err``; the other methods read
    what they left: rows stored, offsets committed, records of a topic.
    """

    bootstrap: str
    models_dir: Path
    work: Path
    options: dict[str, str] = field(default_factory=dict)  # the test's own clients' options (a SASL login)
    cli_options: dict[str, str] | None = None  # what the processes get as --kafka-option (default: options)
    partitions: int = 1
    batch: int = PIPE_BATCH  # records per poll of its detectors
    client: str = "kafka-python"  # the Kafka client backend of its processes (--client)
    labels: bool = False  # whether its topics include a labels topic (and a prequential one)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.topic, self.predictions_topic, self.dlq_topic = f"flows-{self.tag}", f"preds-{self.tag}", f"dlq-{self.tag}"
        self.labels_topic, self.prequential_topic = f"labels-{self.tag}", f"preq-{self.tag}"
        self.group = f"group-{self.tag}"
        self.store = self.work / "predictions.sqlite"
        self.procs: dict[str, subprocess.Popen] = {}

    def create_topics(self) -> None:
        topics = {self.topic: self.partitions, self.predictions_topic: self.partitions, self.dlq_topic: 1}
        if self.labels:
            topics.update({self.labels_topic: self.partitions, self.prequential_topic: 1})
        ensure_topics(self.bootstrap, topics, self.options)

    def _start(self, name: str, args: list[str], env: dict[str, str] | None, **popen) -> subprocess.Popen:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("KSTREAM_", "KAFKA_BROKER_URL"))}
        full_env.update({"KSTREAM_MODELS_DIR": str(self.models_dir), **(env or {})})
        given = self.options if self.cli_options is None else self.cli_options
        options = [a for k, v in given.items() for a in ("--kafka-option", f"{k}={v}")]
        head = args[:2] if args[0] else args[1:2]  # (verbosity, command); an empty verbosity is the INFO default
        cmd = [sys.executable, "-m", "kstream", *head, "-m", "decision-tree", "--bootstrap", self.bootstrap,
               "--client", self.client, "--topic", self.topic, *options, *args[2:]]
        out = open(self.work / f"{name}.out", "w")
        err = open(self.work / f"{name}.err", "w")
        with out, err:
            proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=err, **popen)
        self.procs[name] = proc
        return proc

    def generate(self, *args: str, name: str = "generate", verbosity: str = "-q",
                 env: dict[str, str] | None = None) -> subprocess.Popen:
        """`kstream generate` of the decision-tree's held-out records into this pipe's topic."""
        return self._start(name, [verbosity, "generate", *args], env)

    def detect(self, *args: str, name: str = "detect", verbosity: str = "-q", env: dict[str, str] | None = None,
               **popen) -> subprocess.Popen:
        """`kstream detect` on this pipe's topics, group and store, in batches of ``batch`` records."""
        return self._start(name, [verbosity, "detect", "--group", self.group, "--predictions-topic",
                                  self.predictions_topic, "--dlq-topic", self.dlq_topic, "--store-url", str(self.store),
                                  "--batch-size", str(self.batch), *args], env, **popen)

    def output(self, name: str) -> str:
        return (self.work / f"{name}.out").read_text() + (self.work / f"{name}.err").read_text()

    def stacks(self, name: str) -> str:
        """The tail of a running process's output after it printed every thread's stack (SIGUSR1)."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen process prints nothing
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
        return self.output(name)[-12000:] if name in self.procs else ""

    def wait(self, name: str, timeout_s: float) -> int:
        """Exit code of a process (fails the test, showing its output, if it outlives ``timeout_s``)."""
        try:
            return self.procs[name].wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stacks = self.stacks(name)
            self.procs[name].kill()
            self.procs[name].wait()
            pytest.fail(f"{name} still ran after {timeout_s:.0f}s:\n{stacks}")

    def finished(self, name: str, timeout_s: float) -> str:
        """Wait for a process that must succeed; returns its output."""
        code = self.wait(name, timeout_s)
        assert code == 0, f"{name} exited {code}:\n{self.output(name)[-3000:]}"
        return self.output(name)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()

    def stored(self) -> int:
        return count_rows(self.store, "predictions")

    def wait_stored(self, at_least: int, timeout_s: float = 120, watch: str = "detect") -> int:
        """Wait until the store holds ``at_least`` rows (fails if the watched process exits first)."""
        deadline = time.monotonic() + timeout_s
        while (stored := self.stored()) < at_least:
            proc = self.procs.get(watch)
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"{watch} exited {proc.returncode} with {stored} rows stored:\n"
                            f"{self.output(watch)[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"only {stored} rows stored after {timeout_s:.0f}s; {watch} is at:\n{self.stacks(watch)}")
            time.sleep(0.1)
        return stored

    def wait_sent(self, at_least: int, timeout_s: float = 120) -> None:
        """Wait until the flows topic holds ``at_least`` records (fails if the generator exits first)."""
        probe = kafka.KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, **self.options)
        try:
            parts = [kafka.TopicPartition(self.topic, p) for p in probe.partitions_for_topic(self.topic) or ()]
            deadline = time.monotonic() + timeout_s
            while sum(probe.end_offsets(parts).values()) < at_least:
                if self.procs["generate"].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the generator sent fewer than {at_least} records:\n{self.output('generate')[-3000:]}")
                time.sleep(0.1)
        finally:
            probe.close()

    def committed(self, topic: str | None = None) -> dict[int, int]:
        """The detector group's committed offset of each partition of ``topic`` (default: the flows topic; 0 where
        nothing was committed)."""
        topic = topic or self.topic
        probe = kafka.KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
                                    **self.options)
        try:
            parts = probe.partitions_for_topic(topic) or set()
            return {p: probe.committed(kafka.TopicPartition(topic, p)) or 0 for p in sorted(parts)}
        finally:
            probe.close()

    def stored_labels(self) -> int:
        """Labels in the store (0 before the detector made its tables)."""
        return count_rows(self.store, "labels")

    def read(self, topic: str, timeout_s: float = 60) -> list:
        """Every record of ``topic`` (its end offsets at the time of the call)."""
        consumer = kafka.KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                       **self.options)
        try:
            parts = [kafka.TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.assign(parts)
            consumer.seek_to_beginning()
            ends = consumer.end_offsets(parts)
            out: list = []
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end for tp, end in ends.items()) and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    out.extend(batch)
            return out
        finally:
            consumer.close()


def _ledger(pipe: Pipe, stored_ids: list[str], dead_lettered: int = 0, dup_batches: int = 1,
            labels: list[str] | None = None) -> dict[str, int]:
    """Check what a finished pipeline left behind; returns its numbers.

    - the flows topic holds each record sent once (``stored_ids`` plus ``dead_lettered`` bad ones);
    - the store holds exactly one row per id of ``stored_ids``, no more, no less;
    - per partition, every offset below the committed one is stored or dead-lettered, exactly once,
      and nothing above it is (what is committed is durable, and what is durable is committed);
    - the predictions topic holds every stored record; duplicates (a batch published again after a
      crash or a lost membership) are at most ``dup_batches`` batches.

    With ``labels`` (the ids whose label was sent, each to be joined): the labels topic holds each once, the store
    holds one label per id, each joined to the prediction of its id and counted in exactly one stored prequential
    window (the windows' records add up to the labels joined, window by window), and the labels topic's committed
    offsets are the ones stored.
    """
    flows = pipe.read(pipe.topic)
    keys = collections.Counter(m.key.decode("utf-8", "replace") for m in flows if m.key is not None)
    assert len(flows) == len(stored_ids) + dead_lettered and all(keys[i] == 1 for i in stored_ids), \
        f"the flows topic holds {len(flows)} records ({len(keys)} keys) for {len(stored_ids) + dead_lettered} sent"
    with open_store("sqlite", str(pipe.store)) as store:
        frame = store.frame(pipe.topic)
    lost = len(set(stored_ids) - set(frame["record_id"]))
    assert lost == 0, f"{lost} records sent are neither stored nor dead-lettered"
    assert len(frame) == len(stored_ids) and frame["record_id"].is_unique, \
        f"{len(frame)} rows stored for {len(stored_ids)} records"
    dead = pipe.read(pipe.dlq_topic)
    sources = collections.Counter(source for m in dead if (source := dict(m.headers)["kstream-source"].decode())
                                  .startswith(pipe.topic + "/"))
    assert len(sources) == dead_lettered, f"{len(sources)} records dead-lettered, not {dead_lettered}"
    handled: dict[int, list[int]] = collections.defaultdict(list)
    for partition, offset in zip(frame["partition"], frame["offset"]):
        handled[int(partition)].append(int(offset))
    for source in sources:
        _, partition, offset = source.rsplit("/", 2)
        handled[int(partition)].append(int(offset))
    committed = pipe.committed()
    for partition in set(committed) | set(handled):
        offsets = sorted(handled.get(partition, []))
        assert offsets == list(range(committed.get(partition, 0))), (
            f"partition {partition}: committed offset {committed.get(partition, 0)}, {len(offsets)} records handled "
            f"(offsets {offsets[:3]}...{offsets[-3:]})")
    published = pipe.read(pipe.predictions_topic)
    identities = collections.Counter((v["topic"], v["partition"], v["offset"]) for v in
                                     (json.loads(m.value) for m in published))
    assert len(identities) == len(stored_ids), f"{len(identities)} distinct predictions published"
    duplicates = len(published) - len(identities)
    assert duplicates <= dup_batches * pipe.batch, \
        f"{duplicates} duplicate predictions: more than {dup_batches} batch(es)"
    numbers = {"sent": len(flows), "stored": len(frame), "dead_lettered": len(sources), "lost": lost,
               "duplicate_predictions": duplicates, "committed": sum(committed.values())}
    if labels is not None:
        numbers.update(_label_ledger(pipe, labels, frame))
    return numbers


def _label_ledger(pipe: Pipe, ids: list[str], predictions: pd.DataFrame) -> dict[str, int]:
    """The labels part of :func:`_ledger`."""
    sent = pipe.read(pipe.labels_topic)
    keys = collections.Counter(m.key.decode() for m in sent)
    assert len(sent) == len(ids) and all(keys[i] == 1 for i in ids), \
        f"the labels topic holds {len(sent)} records ({len(keys)} keys) for {len(ids)} labels sent"
    with open_store("sqlite", str(pipe.store)) as store:
        stored, windows = store.labels(pipe.topic), store.prequential(pipe.topic)
    assert len(stored) == len(ids) and stored["record_id"].is_unique and set(stored["record_id"]) == set(ids), \
        f"{len(stored)} labels stored for {len(ids)} sent"
    unjoined = stored[stored["window"].isna()]
    assert unjoined.empty, f"{len(unjoined)} labels never joined: {unjoined['record_id'].tolist()[:5]}"
    scored = predictions.set_index("record_id")["predicted_label"]
    assert (stored.set_index("record_id")["predicted_label"] == scored.reindex(stored["record_id"])).all(), \
        "a label was joined to another prediction than its record's"
    assert windows[["partition", "window"]].value_counts().max() == 1
    counted = stored.groupby(["label_partition", "window"]).size()
    per_window = windows.set_index(["partition", "window"])["records"]
    assert counted.sort_index().tolist() == per_window.sort_index().tolist() and \
        list(counted.sort_index().index) == list(per_window.sort_index().index), \
        f"windows count {per_window.sum()} labels, the store joined {len(stored)}"
    committed = pipe.committed(pipe.labels_topic)
    for partition, end in committed.items():
        offsets = sorted(stored.loc[stored["label_partition"] == partition, "label_offset"].astype(int))
        assert offsets == list(range(end)), f"labels partition {partition}: committed {end}, {len(offsets)} stored"
    return {"labels": len(sent), "labels_stored": len(stored), "labels_joined": int(windows["records"].sum()),
            "prequential_windows": len(windows), "labels_committed": sum(committed.values())}


@pytest.fixture(scope="session")
def pipeline(models_dir):
    """``pipeline(bootstrap, work, options=None, cli_options=None, partitions=1, client=None)``: a :class:`Pipe`
    with the session's models; the caller kills what it started with ``pipe.kill_all()``."""

    def make(bootstrap: str, work: Path, **kwargs) -> Pipe:
        return Pipe(bootstrap, models_dir, Path(work), **{k: v for k, v in kwargs.items() if v is not None})

    return make


@pytest.fixture(scope="session")
def ledger():
    """``ledger(pipe, stored_ids, dead_lettered=0, dup_batches=1, labels=None)``: check a finished pipeline
    (see :func:`_ledger`)."""
    return _ledger


@pytest.fixture(scope="session")
def sent_ids(models_dir, cicids):
    """``sent_ids(count)``: the ids of the first ``count`` records `kstream generate -m decision-tree [--loop]`
    sends (the held-out split in its default order, by the flows' times, with ``#<pass>`` from the second pass
    on)."""
    model = artifacts.load(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir))
    held_out = list(model.held_out(cicids).in_order().ids)

    def ids(count: int) -> list[str]:
        n = len(held_out)
        return [held_out[i % n] if i < n else f"{held_out[i % n]}#{i // n}" for i in range(count)]

    return ids


# --- CICIDS2017 files in the 2017 spelling ----------------------------------------------------------

#: The header of the 2017 MachineLearningCVE CSVs, spelled as in those files (leading spaces,
#: Fwd Header Length twice).
MLCVE_HEADER = [
    " Destination Port", " Flow Duration", " Total Fwd Packets", " Total Backward Packets",
    "Total Length of Fwd Packets", " Total Length of Bwd Packets", " Fwd Packet Length Max",
    " Fwd Packet Length Min", " Fwd Packet Length Mean", " Fwd Packet Length Std", "Bwd Packet Length Max",
    " Bwd Packet Length Min", " Bwd Packet Length Mean", " Bwd Packet Length Std", "Flow Bytes/s",
    " Flow Packets/s", " Flow IAT Mean", " Flow IAT Std", " Flow IAT Max", " Flow IAT Min", "Fwd IAT Total",
    " Fwd IAT Mean", " Fwd IAT Std", " Fwd IAT Max", " Fwd IAT Min", "Bwd IAT Total", " Bwd IAT Mean",
    " Bwd IAT Std", " Bwd IAT Max", " Bwd IAT Min", "Fwd PSH Flags", " Bwd PSH Flags", " Fwd URG Flags",
    " Bwd URG Flags", " Fwd Header Length", " Bwd Header Length", "Fwd Packets/s", " Bwd Packets/s",
    " Min Packet Length", " Max Packet Length", " Packet Length Mean", " Packet Length Std",
    " Packet Length Variance", "FIN Flag Count", " SYN Flag Count", " RST Flag Count", " PSH Flag Count",
    " ACK Flag Count", " URG Flag Count", " CWE Flag Count", " ECE Flag Count", " Down/Up Ratio",
    " Average Packet Size", " Avg Fwd Segment Size", " Avg Bwd Segment Size", " Fwd Header Length",
    "Fwd Avg Bytes/Bulk", " Fwd Avg Packets/Bulk", " Fwd Avg Bulk Rate", " Bwd Avg Bytes/Bulk",
    " Bwd Avg Packets/Bulk", "Bwd Avg Bulk Rate", "Subflow Fwd Packets", " Subflow Fwd Bytes",
    " Subflow Bwd Packets", " Subflow Bwd Bytes", "Init_Win_bytes_forward", " Init_Win_bytes_backward",
    " act_data_pkt_fwd", " min_seg_size_forward", "Active Mean", " Active Std", " Active Max", " Active Min",
    "Idle Mean", " Idle Std", " Idle Max", " Idle Min", " Label",
]  # fmt: skip
#: GeneratedLabelledFlows put these in front of Flow Duration instead of Destination Port.
GLF_PREFIX = ["Flow ID", " Source IP", " Source Port", " Destination IP", " Destination Port", " Protocol",
              " Timestamp"]

#: The tests' own oracle: which improved-release column holds the value of a 2017 column.
IMPROVED_NAME = {
    "Flow ID": "Flow ID", "Source IP": "Src IP", "Source Port": "Src Port", "Destination IP": "Dst IP",
    "Destination Port": "Dst Port", "Timestamp": "Timestamp",
    "Total Fwd Packets": "Total Fwd Packet", "Total Backward Packets": "Total Bwd packets",
    "Total Length of Fwd Packets": "Total Length of Fwd Packet",
    "Total Length of Bwd Packets": "Total Length of Bwd Packet", "Min Packet Length": "Packet Length Min",
    "Max Packet Length": "Packet Length Max", "CWE Flag Count": "CWR Flag Count",
    "Avg Fwd Segment Size": "Fwd Segment Size Avg", "Avg Bwd Segment Size": "Bwd Segment Size Avg",
    "Fwd Avg Bytes/Bulk": "Fwd Bytes/Bulk Avg", "Fwd Avg Packets/Bulk": "Fwd Packet/Bulk Avg",
    "Fwd Avg Bulk Rate": "Fwd Bulk Rate Avg", "Bwd Avg Bytes/Bulk": "Bwd Bytes/Bulk Avg",
    "Bwd Avg Packets/Bulk": "Bwd Packet/Bulk Avg", "Bwd Avg Bulk Rate": "Bwd Bulk Rate Avg",
    "Init_Win_bytes_forward": "FWD Init Win Bytes", "Init_Win_bytes_backward": "Bwd Init Win Bytes",
    "act_data_pkt_fwd": "Fwd Act Data Pkts", "min_seg_size_forward": "Fwd Seg Size Min",
}  # fmt: skip
#: Improved label -> the 2017 spelling, as bytes (0x96 is the cp1252 dash of the 2017 files).
LABEL_2017 = {
    "BENIGN": b"BENIGN",
    "Web Attack - Brute Force": b"Web Attack \x96 Brute Force",
    "Web Attack - XSS": "Web Attack \u2013 XSS".encode(),  # a UTF-8 en dash, as some re-saved copies have
    "Web Attack - SQL Injection": b"Web Attack \x96 Sql Injection",
    "Portscan": b"PortScan",
    "Botnet": b"Bot",
    "DoS Slowloris": b"DoS slowloris",
}
#: The bundled improved-sample file of each class above.
SOURCE_FILES = {
    "BENIGN": "BENIGN_2500",
    "Web Attack - Brute Force": "Web_Attack_-_Brute_Force_73",
    "Web Attack - XSS": "Web_Attack_-_XSS_18",
    "Web Attack - SQL Injection": "Web_Attack_-_SQL_Injection_13",
    "Portscan": "Portscan_2500",
    "Botnet": "Botnet_736",
    "DoS Slowloris": "DoS_Slowloris_2500",
}

def _write_2017_csv(path: Path, rows: pd.DataFrame, dialect: str = "MachineLearningCVE", blank_tail: int = 0) -> Path:
    header = MLCVE_HEADER if dialect == "MachineLearningCVE" else GLF_PREFIX + MLCVE_HEADER[1:]
    lines = [",".join(header).encode()]
    for i, row in rows.reset_index(drop=True).iterrows():
        cells = []
        for column in header:
            name = column.strip()
            if name == "Label":
                cells.append(LABEL_2017[row["Label"]])
            elif name == "Flow Bytes/s" and i < 3:
                cells.append([b"Infinity", b"NaN", b""][i])
            else:
                cells.append(str(row[IMPROVED_NAME.get(name, name)]).encode())
        lines.append(b",".join(cells))
    lines += [b"," * (len(header) - 1)] * blank_tail  # the blank rows some 2017 files end with
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    return path


def _improved_rows(per_class: int) -> pd.DataFrame:
    parts = [pd.read_csv(IMPROVED / f"{stem}.csv.gz", nrows=per_class) for stem in SOURCE_FILES.values()]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def improved_rows():
    """``improved_rows(per_class)``: real rows of seven improved-sample classes, as the raw CSVs hold them."""
    return _improved_rows


@pytest.fixture(scope="session")
def write_2017_csv():
    """``write_2017_csv(path, rows, dialect="MachineLearningCVE", blank_tail=0)``: write improved-release rows
    as a 2017 CSV (2017 names, cp1252 dashes, inf/NaN spellings, the duplicated column)."""
    return _write_2017_csv
