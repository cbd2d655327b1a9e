"""The command line: help is enough, bad configuration fails at start with one clear line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kstream.data import datasets
from kstream.modeling import artifacts
from kstream.modeling.artifacts import ModelRef
from kstream.paths import cache_dir


@pytest.mark.parametrize("command", [[], ["broker"], ["broker", "start"], ["train"], ["generate"], ["detect"], ["run"]])
def test_every_command_has_help(command, cli):
    proc = cli(*command, "--help")
    assert proc.returncode == 0 and "usage: kstream" in proc.stdout


def test_help_lists_choices_and_original_names(cli):
    out = cli("train", "--help").stdout
    assert "SELECTED_CICIDS" in out and "binary_class, multi_class" in out and "random-forest" in out
    assert "KAFKA_BROKER_URL" in cli("--help").stdout


def test_python_dash_m_and_version(cli):
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("kstream ")


@pytest.mark.parametrize(
    "args, words",
    [
        (["-d", "SELECTED_KDD"], ["unknown dataset 'SELECTED_KDD'", "cicids2017 (alias SELECTED_CICIDS)"]),
        (["-m", "svm"], ["unknown model 'svm'", "logistic-regressor, decision-tree, random-forest"]),
        (["-t", "regression"], ["unknown task 'regression'", "binary_class, multi_class"]),
        (["--param", "depth=3", "-m", "decision-tree"], ["bad hyperparameter for decision-tree"]),
    ],
)
def test_bad_choices_fail_with_one_line(args, words, tmp_path, cli, one_line_error):
    one_line_error(cli("train", "--models-dir", str(tmp_path), *args), *words)


def test_bad_choice_from_the_environment_fails_the_same_way(tmp_path, cli, one_line_error):
    proc = cli("detect", env={"MODEL": "knn", "MODELS_CHECKPOINT": str(tmp_path)})
    one_line_error(proc, "unknown model 'knn'")


def test_missing_model_file_names_the_train_command(tmp_path, cli, one_line_error):
    proc = cli("detect", "--models-dir", str(tmp_path), "--bootstrap", "127.0.0.1:1")  # fails before any broker
    one_line_error(proc, "no trained model", "kstream train -d cicids2017 -t binary_class -m random-forest")


def test_tampered_model_is_refused(models_dir, tmp_path, cli, one_line_error):
    src = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir).directory
    dst = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=tmp_path).directory
    shutil.copytree(src, dst)
    with open(dst / "model.joblib", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    proc = cli("detect", "-m", "decision-tree", "--models-dir", str(tmp_path), "--bootstrap", "127.0.0.1:1")
    one_line_error(proc, "does not match the sha256", "retrain")


def test_unreachable_broker_fails_with_the_fix(models_dir, cli, one_line_error):
    proc = cli("detect", "-m", "decision-tree", "--models-dir", str(models_dir), "--bootstrap", "127.0.0.1:1")
    one_line_error(proc, "cannot reach Kafka at 127.0.0.1:1", "kstream broker start")


def test_generate_without_any_broker_says_how_to_get_one(tmp_path, cli, one_line_error):
    home = tmp_path / "home"
    proc = cli("generate", "--limit", "1", env={"KSTREAM_HOME": str(home)})
    one_line_error(proc, "no Kafka broker", "kstream broker start")


def test_bad_kafka_option_is_a_config_error(cli, one_line_error):
    proc = cli("generate", "--limit", "1", "--bootstrap", "127.0.0.1:1", "--kafka-option", "lingr_ms=5")
    one_line_error(proc, "bad Kafka client option", "lingr_ms")


@pytest.mark.kafka
def test_train_generate_detect_through_the_cli(tmp_path, kafka_bootstrap, names, cli):
    models = tmp_path / "models"
    store = tmp_path / "p.sqlite"
    common = ["--bootstrap", kafka_bootstrap, "--topic", names["topic"]]
    trained = cli("train", "-d", "SELECTED_CICIDS", "-t", "multi_class", "-m", "decision-tree",
                      "--models-dir", str(models), "--param", "max_depth=6")
    assert trained.returncode == 0, trained.stderr
    ref = ModelRef("cicids2017", "multi_class", "decision-tree", models_dir=models)
    assert artifacts.load(ref).card.params["max_depth"] == 6
    sent = cli("-q", "generate", "--limit", "250", *common)
    assert sent.returncode == 0 and "sent 250 records" in sent.stdout, sent.stderr
    detected = cli("-q", "detect", "-t", "multi_class", "-m", "decision-tree", "--models-dir", str(models),
                       "--group", names["group"], "--store-url", f"sqlite:///{store}", "--max-records", "250", *common)
    assert detected.returncode == 0, detected.stderr
    assert "handled 250 records: 250 predicted, 0 dead-lettered" in detected.stdout


@pytest.mark.kafka
def test_sigusr1_prints_where_every_thread_is_and_the_detector_goes_on(tmp_path, kafka_bootstrap, models_dir, names):
    """A run that seems stuck can be asked where it is without stopping it (the fault tests use this)."""
    err_path = tmp_path / "detect.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSTREAM_", "KAFKA_BROKER_URL"))}
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kstream", "detect", "-m", "decision-tree", "--models-dir", str(models_dir),
             "--bootstrap", kafka_bootstrap, "--topic", names["topic"], "--group", names["group"],
             "--store-url", str(tmp_path / "p.sqlite"), "--idle-timeout", "3"],
            env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while "detect: " not in err_path.read_text():  # its progress bar: the detector's loop runs
            assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGUSR1)
        try:
            assert proc.wait(timeout=120) == 0, err_path.read_text()
        except subprocess.TimeoutExpired:  # its log and the stacks SIGUSR1 printed say where it waits
            pytest.fail("the detector did not stop at its idle timeout:\n" + err_path.read_text())
    finally:
        proc.kill()
    printed = err_path.read_text()
    assert "most recent call first" in printed and "Thread 0x" in printed
    assert "kstream/detector/loop.py" in printed  # the main thread, in the detector's loop
    assert "no new record for 3.0s; stopping" in printed  # it went on to its normal end


@pytest.mark.kafka
def test_broker_start_status_stop(tmp_path, cli):
    home = tmp_path / "home"
    home.mkdir()
    (home / "kafka").symlink_to(cache_dir() / "kafka")  # reuse the jars the session already fetched
    env = {"KSTREAM_HOME": str(home)}
    assert cli("broker", "status", env=env).returncode == 1
    started = cli("broker", "start", env=env)
    assert started.returncode == 0, started.stderr
    try:
        status = cli("broker", "status", env=env)
        assert status.returncode == 0 and "running at 127.0.0.1:" in status.stdout
        bootstrap = status.stdout.split("running at ")[1].split()[0]
        again = cli("broker", "start", env=env)
        assert bootstrap in again.stdout  # a second start reuses the running broker
        sent = cli("-q", "generate", "--limit", "5", "--topic", "t", env=env)  # finds it without --bootstrap
        assert sent.returncode == 0 and bootstrap in sent.stdout, sent.stderr
    finally:
        stopped = cli("broker", "stop", env=env)
    assert stopped.returncode == 0 and "stopped Kafka" in stopped.stdout
    assert cli("broker", "status", env=env).returncode == 1


def test_original_machinelearningcve_csv_trains_and_scores_through_the_cli(tmp_path, cli, improved_rows,
                                                                         write_2017_csv):
    rows = improved_rows(40)
    csv = write_2017_csv(tmp_path / "Wednesday-workingHours.pcap_ISCX.csv", rows)
    models = str(tmp_path / "models")
    trained = cli("-q", "train", "-d", "SELECTED_CICIDS", "-m", "decision-tree", "--data", str(csv),
                      "--models-dir", models)
    assert trained.returncode == 0, trained.stderr
    scored = cli("-q", "evaluate", "-d", "SELECTED_CICIDS", "-m", "decision-tree", "--data", str(csv),
                     "--models-dir", models, "--json", "--predictions", str(tmp_path / "p.csv"))
    assert scored.returncode == 0, scored.stderr
    scores = json.loads(scored.stdout)  # the file it was trained on: its held-out rows
    assert scores["rows"] == len(pd.read_csv(tmp_path / "p.csv")) < len(rows) and scores["accuracy"] > 0.9
    assert {"tpr", "far", "netml_overall"} <= set(scores)


def test_train_all_lists_undefined_combinations_and_models_lists_cards(tmp_path, cli, samples):
    models = str(tmp_path / "models")
    grid = cli("-q", "train", "--all", "-d", "netml", "-m", "decision-tree", "--models-dir", models,
                   "--markdown", str(tmp_path / "grid.md"))
    assert grid.returncode == 0, grid.stderr
    assert grid.stdout.count("skipped: netml (") == 1 and "use -t multi_class" in grid.stdout
    markdown = (tmp_path / "grid.md").read_text()
    assert "| netml | multi_class | decision-tree | trained |" in markdown
    assert "| netml_overall | seen_in_training | unseen_accuracy | unseen_macro_f1 | unseen_netml_overall |" in markdown
    assert "feature vectors shared by several rows, and labelled more than one way" in grid.stdout
    ds = samples["netml"]
    vectors, duplicates = len(ds.features.drop_duplicates()), int(ds.features.duplicated(keep=False).sum())
    card = artifacts.ModelCard.read(Path(models) / "netml" / "multi_class" / "decision-tree" / "model.json")
    assert card.metrics["seen_in_training"] == 0 and "| netml | multi_class | decision-tree | trained | " in markdown
    assert (f"| netml | multi_class | {len(ds)} | {vectors} | {duplicates} | {duplicates / len(ds):.4f} | "
            f"{card.conflicts['multi_label_vectors']} | {card.conflicts['multi_label_rows']} |") in markdown
    listed = cli("models", "--models-dir", models)
    assert listed.returncode == 0 and "netml" in listed.stdout and "multi_class" in listed.stdout
    assert "grouped" in listed.stdout  # the split column


def test_binary_on_netml_and_an_unknown_level_fail_with_one_line(tmp_path, cli, one_line_error):
    one_line_error(cli("train", "-d", "SELECTED_NET", "-t", "binary_class", "--models-dir", str(tmp_path)),
                          "no benign/attack split", "use -t multi_class")
    one_line_error(cli("train", "-d", "netml", "-t", "multi_class", "--level", "finest",
                                  "--models-dir", str(tmp_path)), "top, mid, fine")


def test_a_cross_source_score_is_two_commands(tmp_path, models_dir, improved_rows, cli, one_line_error, samples):
    rows = improved_rows(40)
    columns = {"Flow Duration": "Flow Duration", "Total Fwd Packets": "Total Fwd Packet",
               "Total Length of Fwd Packets": "Total Length of Fwd Packet", "Min Packet Length": "Packet Length Min",
               "Init_Win_bytes_forward": "FWD Init Win Bytes", "min_seg_size_forward": "Fwd Seg Size Min",
               "Flow IAT Mean": "Flow IAT Mean", "Average Packet Size": "Average Packet Size"}
    selected = pd.DataFrame({name: rows[canon] for name, canon in columns.items()})
    selected["Label"] = (rows["Label"] != "BENIGN").astype(int)
    csv = tmp_path / "selected.csv"
    selected.to_csv(csv, index=False)
    common = ["-q", "evaluate", "-m", "decision-tree", "--data", str(csv)]
    refused = cli(*common, "--models-dir", str(models_dir))  # the full-feature model: 75 features missing
    line = one_line_error(refused, "needs 75 feature(s) the data lacks: Dst Port", "--allow-missing")
    assert "does not fit" in line
    imputed = cli(*common, "--models-dir", str(models_dir), "--allow-missing", "--json")
    assert imputed.returncode == 0, imputed.stderr
    scores = json.loads(imputed.stdout)
    assert scores["rows"] == len(rows) and len(scores["missing_features"]) == 75 and scores["model_features"] == 83
    models = str(tmp_path / "restricted")
    trained = cli("-q", "train", "-m", "decision-tree", "--features-from", str(csv), "--models-dir", models)
    assert trained.returncode == 0 and f"(8 features of {csv})" in trained.stdout, trained.stderr
    restricted = cli(*common, "--models-dir", models, "--json")
    assert restricted.returncode == 0, restricted.stderr
    scores = json.loads(restricted.stdout)
    assert scores["missing_features"] == [] and scores["rows"] == len(rows) and {"tpr", "far"} <= set(scores)
    # rows of the bundled sample, seen through 8 features: those of its training rows count as seen
    card = artifacts.ModelCard.read(Path(models) / "cicids2017" / "binary_class" / "decision-tree" / "model.json")
    trained_on = card.rows(samples["cicids2017"], "train").features[card.features].drop_duplicates()
    scored = datasets.load("cicids2017", csv).features[card.features]
    seen = scored.merge(trained_on, how="left", indicator=True)["_merge"].eq("both").sum()
    assert scores["seen_in_training"] == seen and 0 < seen < len(rows)
    listed = cli("models", "--models-dir", models, "--features")
    assert "needs 8 features:" in listed.stdout and "  FWD Init Win Bytes" in listed.stdout


def test_train_and_evaluate_print_the_leakage_report_and_the_learning_curve(tmp_path, cli, one_line_error, samples):
    models = tmp_path / "models"
    common = ["-t", "multi_class", "-m", "decision-tree", "--data", "csv-sample", "--models-dir", str(models)]
    trained = cli("-q", "train", *common, "--split-mode", "random", "--learning-curve")
    assert trained.returncode == 0, trained.stderr
    card = artifacts.ModelCard.read(models / "cicids2017" / "multi_class-grouped" / "decision-tree" / "model.json")
    seen, ds = card.metrics["seen_in_training"], samples["csv-sample"]
    duplicates = int(ds.features.duplicated(keep=False).sum())
    out = trained.stdout
    assert "(random split, seed 42)" in out and seen > 0
    assert f"seen in training: {seen} of {card.test_rows} rows ({seen / card.test_rows:.1%})" in out
    assert f"unseen vectors: rows {card.test_rows - seen}   accuracy {card.metrics['unseen']['accuracy']:.4f}" in out
    assert f"all {len(ds)} rows: {duplicates} ({duplicates / len(ds):.1%}) share their feature vector" in out
    table = out.split("learning curve (held-out scores by training rows):\n")[1].splitlines()
    assert table[0].split()[:4] == ["fraction", "train_rows", "accuracy", "macro_f1"]
    assert [int(line.split()[1]) for line in table[1:]] == [p["train_rows"] for p in card.learning_curve]
    assert len(card.learning_curve) == 6 and card.learning_curve[-1]["train_rows"] == card.train_rows
    refused = cli("-q", "evaluate", *common, "--split-mode", "grouped")
    one_line_error(refused, "it was trained on a random split, not a grouped one", "--split-mode grouped")
    scored = cli("-q", "evaluate", *common)
    assert scored.returncode == 0, scored.stderr
    assert f"seen in training: {seen} of {card.test_rows} rows" in scored.stdout


def _old_card_models(models_dir: Path, root: Path) -> Path:
    """A copy of the binary decision tree whose card predates drift references."""
    src = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir).directory
    dst = root / "cicids2017" / "binary_class" / "decision-tree"
    shutil.copytree(src, dst)
    card = json.loads((dst / "model.json").read_text())
    del card["drift_reference"]
    (dst / "model.json").write_text(json.dumps(card))
    return root


@pytest.mark.parametrize("command", ["run", "detect"])
def test_drift_on_a_model_without_a_reference_fails_in_one_line_naming_the_retrain(command, models_dir, tmp_path,
                                                                                    cli, one_line_error):
    old = _old_card_models(models_dir, tmp_path / "models")
    # before any broker is looked for: the bootstrap given is not even reachable
    proc = cli("-q", command, "-m", "decision-tree", "--bootstrap", "127.0.0.1:1", env={"KSTREAM_MODELS_DIR": str(old),
                                                                               "KSTREAM_DRIFT": "1"})
    one_line_error(proc, "no drift reference", f"kstream train -d cicids2017 -t binary_class -m decision-tree "
                   f"--models-dir {old}")


@pytest.mark.kafka
def test_run_with_drift_counts_windows_and_alerts_and_shows_a_status_line(models_dir, kafka_bootstrap, tmp_path, cli):
    proc = cli("run", "-m", "decision-tree", "--models-dir", str(models_dir), "--bootstrap", kafka_bootstrap,
               "--limit", "1200", "--drift", "--drift-window", "500", "--alert", "attack_rate > 0.5",
               "--run-dir", str(tmp_path / "run"), "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    # 500 + 500 + the last 200 (judged: 200 records is the least a window needs); the held-out split
    # is ~90% attacks, so the rule fires on each
    assert summary["drift"] == {"windows": 3, "drifted": 0, "judged": 3, "alerts": 3}
    assert summary["settings"]["drift"] is True and summary["settings"]["alerts"] == "attack_rate > 0.5"
    assert "1,200 predicted |" in proc.stderr and "| drift 0/3 windows, 3 alerts" in proc.stderr
