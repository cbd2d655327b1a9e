"""The online learner through the real broker: `kstream detect --learn online` killed while it learns, started
again, learns every label exactly once; the detectors serve the versions it hands them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from kstream.learning.online import digest_ids, read_state
from kstream.modeling import artifacts, training
from kstream.modeling.artifacts import ModelRef

pytestmark = pytest.mark.kafka

#: 20 s of records at RATE: the learner (a process started beside the detector) has learned the labels the kill
#: waits for long before the stream ends, so the detector started again serves what it learned
RECORDS, DELAY, RATE = 10_000, 300, 500


@pytest.fixture(scope="module")
def learner_models(tmp_path_factory, cicids):
    """A models folder with an sgd-classifier and a decision tree trained on the sample's first two days."""
    root = tmp_path_factory.mktemp("learners")
    for model in ("sgd-classifier", "decision-tree"):
        training.train(ModelRef("cicids2017", "binary_class", model, models_dir=root, split_mode="temporal",
                                train_until="2017-07-05"), cicids)
    return root


def _kstream(*args: str, models: os.PathLike, **popen) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSTREAM_", "KAFKA_BROKER_URL"))}
    env["KSTREAM_MODELS_DIR"] = str(models)
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, **popen}
    return subprocess.Popen([sys.executable, "-m", "kstream", *args], env=env, start_new_session=True, text=True,
                            **popen)


@pytest.mark.timeout(300)
def test_a_detector_killed_while_learning_online_and_started_again_learns_every_label_once(
    kafka_bootstrap, learner_models, names, tmp_path, read_topic
):
    common = ["-m", "sgd-classifier", "--bootstrap", kafka_bootstrap, "--topic", names["topic"],
              "--labels-topic", f"{names['topic']}.labels"]
    learn_dir, store = tmp_path / "learner", tmp_path / "p.sqlite"
    detect = ["-q", "detect", *common, "--group", names["group"], "--predictions-topic", names["predictions_topic"],
              "--dlq-topic", names["dlq_topic"], "--store-url", str(store), "--labels", "--learn", "online",
              "--learn-every", "250", "--learn-dir", str(learn_dir), "--idle-timeout", "8", "--model-check", "0.5"]
    first = _kstream(*detect, models=learner_models)
    generator = _kstream("-q", "generate", *common, "--records", str(RECORDS), "--label-delay", str(DELAY),
                         "--rate", str(RATE), models=learner_models)
    try:
        deadline = time.monotonic() + 120
        while (state := read_state(learn_dir) if (learn_dir / "learner.joblib").exists() else None) is None \
                or state.learned < 800:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0]
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)  # the detector and its learner, mid-stream
        first.wait(30)
        killed_at = read_state(learn_dir).learned
        second = _kstream(*detect, models=learner_models)
        out = second.communicate(timeout=240)[0]
        assert second.returncode == 0, out
        assert generator.wait(120) == 0, generator.communicate()[0]
    finally:
        for proc in (first, generator):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    ids = [m.key.decode() for m in read_topic(kafka_bootstrap, f"{names['topic']}.labels", RECORDS)]
    state = read_state(learn_dir)
    assert killed_at < RECORDS == len(ids)
    assert (state.learned, state.digest, state.skipped) == (RECORDS, digest_ids(ids), {}), out
    assert f"learner: {RECORDS} labels learned" in out
    with sqlite3.connect(store) as db:  # the detector served the learner's versions as they came
        served = {row[0] for row in db.execute("SELECT DISTINCT model_id FROM predictions")}
    base = artifacts.load(ModelRef("cicids2017", "binary_class", "sgd-classifier", models_dir=learner_models))
    assert served - {base.card.model_id}, served  # a learned version scored


@pytest.mark.timeout(300)
def test_a_run_that_learns_online_learns_every_label_and_serves_its_versions(kafka_bootstrap, learner_models,
                                                                              tmp_path, cli):
    ref = ModelRef("cicids2017", "binary_class", "sgd-classifier", models_dir=learner_models)
    trained = artifacts.load(ref).card.sha256
    run = cli("-q", "run", "--learn", "online", "--learner", "sgd-classifier", "--label-delay", "200",
              "--records", "4000", "--rate", "500", "--learn-every", "250", "--model-check", "0.5",
              "--bootstrap", kafka_bootstrap, "--run-dir", str(tmp_path / "run"), "--json",
              env={"KSTREAM_MODELS_DIR": str(learner_models)})
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["learn"] == "online" and summary["settings"]["learner"] == "sgd-classifier"
    assert summary["learner"]["learned"] == summary["labels"]["sent"] == 4000 and summary["learner"]["skipped"] == {}
    assert summary["model_dir"] == str(tmp_path / "run" / "learner")  # served from the run's learn folder
    versions = {w["model_id"] for w in summary["prequential"]}  # each window scores one version
    assert len(versions) >= 2 and summary["model_id"] in versions, versions
    assert artifacts.load(ref).card.sha256 == trained  # the trained model itself is left as it was


@pytest.mark.timeout(300)
def test_a_run_that_retrains_stores_and_sends_every_decision_and_serves_what_it_promotes(
    kafka_bootstrap, learner_models, tmp_path, cli, read_topic
):
    ref = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=learner_models)
    trained = artifacts.load(ref).card.sha256
    run = cli("-q", "run", "-m", "decision-tree", "--learn", "retrain", "--label-delay", "200", "--records", "4000",
              "--rate", "1000", "--retrain-trigger", "labels", "--retrain-every", "1000", "--retrain-window", "1000",
              "--retrain-holdout", "500", "--retrain-with-training", "--bootstrap", kafka_bootstrap,
              "--run-dir", str(tmp_path / "run"), "--json", env={"KSTREAM_MODELS_DIR": str(learner_models)})
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    decisions = summary["retrains"]
    assert summary["learn"] == "retrain" and [d["attempt"] for d in decisions] == list(range(1, len(decisions) + 1))
    assert len(decisions) >= 2 and all(not d["error"] and d["training_rows"] > 0 for d in decisions), decisions
    with sqlite3.connect(tmp_path / "run" / "predictions.sqlite") as db:  # stored once each, as returned
        stored = db.execute("SELECT attempt, promoted, challenger_f1 FROM retrains ORDER BY attempt").fetchall()
    assert stored == [(d["attempt"], int(d["promoted"]), d["challenger_f1"]) for d in decisions]
    sent = read_topic(kafka_bootstrap, summary["settings"]["retrains_topic"], len(decisions))
    assert sorted(json.loads(m.value)["attempt"] for m in sent) == [d["attempt"] for d in decisions]
    promoted = [d for d in decisions if d["promoted"]]
    served = artifacts.load_dir(tmp_path / "run" / "learner").card  # what the detectors swap in
    assert promoted and served.model_id == promoted[-1]["challenger_id"]
    assert artifacts.load(ref).card.sha256 == trained  # the trained model itself is left as it was


def _pid_of(log_file, what: str, proc: subprocess.Popen, deadline: float) -> int:
    """The pid the run's log gives for ``what`` ("online learner" or "retrainer")."""
    while time.monotonic() < deadline:
        for line in log_file.read_text().splitlines():
            if f"{what} started (pid " in line:
                return int(line.rsplit("(pid ", 1)[1].split(")")[0])
        assert proc.poll() is None, log_file.read_text()
        time.sleep(0.2)
    raise AssertionError(f"no '{what} started' line: {log_file.read_text()}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("learn", ["online", "retrain"])
def test_a_learner_process_killed_mid_run_is_started_again_and_the_run_goes_on(
    learn, kafka_bootstrap, learner_models, tmp_path
):
    """SIGKILL the learner (or retrainer) process of `kstream run` once it has learned 500 labels (or decided once):
    the detectors keep serving, the process is started again, and the online learner still learns every label
    once; the retrainer stores the death as a decision with its reason and numbers on."""
    run_dir, log_file = tmp_path / "run", tmp_path / "run.log"
    model = ["--learner", "sgd-classifier", "--learn-every", "250"] if learn == "online" else [
        "-m", "decision-tree", "--retrain-trigger", "labels", "--retrain-every", "500", "--retrain-window", "500",
        "--retrain-holdout", "250", "--retrain-with-training"]
    with log_file.open("w") as log:
        proc = _kstream("run", "--learn", learn, *model, "--label-delay", "200", "--records", "5000", "--rate", "500",
                        "--model-check", "0.5", "--bootstrap", kafka_bootstrap, "--run-dir", str(run_dir),
                        models=learner_models, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        pid = _pid_of(log_file, "online learner" if learn == "online" else "retrainer", proc, deadline)
        if learn == "online":  # once it has checkpointed a few versions
            while (state := read_state(run_dir / "learner") if (run_dir / "learner" / "learner.joblib").exists()
                   else None) is None or state.learned < 500:
                assert proc.poll() is None and time.monotonic() < deadline, log_file.read_text()
                time.sleep(0.2)
        else:  # once it has decided once
            while "retraining attempt 1" not in log_file.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log_file.read_text()
                time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(240) == 0, log_file.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = log_file.read_text()
    assert "the learner process died (exit code -9); starting it again" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["records"] == summary["sent"] == 5000  # the detectors served throughout
    if learn == "online":
        assert summary["learner"]["restarts"] == 1
        assert summary["learner"]["learned"] == 5000 and summary["learner"]["skipped"] == {}
    else:
        decisions = summary["retrains"]
        assert [d["attempt"] for d in decisions] == list(range(1, len(decisions) + 1))
        (restart,) = [d for d in decisions if d["trigger"] == "restart"]
        assert "exit code -9" in restart["reason"] and restart["error"] and not restart["promoted"]
        assert any(d["attempt"] > restart["attempt"] and not d["error"] for d in decisions), decisions  # it went on
        promoted = [d for d in decisions if d["promoted"]]
        if promoted:
            assert artifacts.load_dir(run_dir / "learner").card.model_id == promoted[-1]["challenger_id"]
