"""Shared fixtures and helpers: one real Kafka broker per session, trained models, unique names,
the CLI in a subprocess, and CICIDS2017 files written the way the 2017 release spells them.

The broker is a real single-node KRaft Kafka started by :class:`kstream.broker.LocalBroker`
on free ports (or the cluster named by ``KSTREAM_TEST_BOOTSTRAP``). Each test gets its own
topic and consumer-group names so tests never see each other's records. A test that uses the
broker must be marked ``kafka`` (checked at collection), so ``-m "not kafka"`` runs the rest
without one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kafka
import pandas as pd
import pytest

from kstream import broker, datasets, training
from kstream.artifacts import ModelRef
from kstream.config import DATASETS_DIR
from kstream.settings import Settings
from kstream.sinks import open_store

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
    from kstream.ferretdb import LocalMongo

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
def settings(kafka_bootstrap, models_dir, names, tmp_path) -> Settings:
    """Settings for a decision-tree binary detector on this test's own topics and store."""
    return Settings(
        model="decision-tree",
        models_dir=models_dir,
        bootstrap=kafka_bootstrap,
        store_url=str(tmp_path / "predictions.sqlite"),
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
               "--store-url", settings.store_url, "--batch-size", "50"]
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
