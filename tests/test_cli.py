"""The command line: help is enough, bad configuration fails at start with one clear line."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kstream.cli import COMMANDS, build_parser, main
from kstream.clients import kafka_python
from kstream.data import datasets
from kstream.modeling import artifacts
from kstream.modeling.artifacts import ModelRef
from kstream.paths import cache_dir
from kstream.settings import ENV_NAMES


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS),
                                     *(["broker", action] for action in ("start", "stop", "status", "provision"))])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith(f"usage: kstream {' '.join(command)}".rstrip())
    options = out.split("\nenvironment (")[0]
    assert not re.search(r"[A-Z]_S\b", options)  # no setting's field name (OUTAGE_TIMEOUT_S) leaks as a metavar


def test_help_lists_choices_and_the_environment(cli):
    out = cli("train", "--help").stdout
    assert "SELECTED_CICIDS" in out and "binary_class, multi_class" in out and "random-forest" in out
    assert "default 42" in out  # the split seed a model trains with
    top = cli("--help").stdout
    assert "KAFKA_BROKER_URL" in top
    (db_name,) = [line for line in top.splitlines() if "DB_NAME" in line]
    assert "KSTREAM_STORE_DATABASE" in db_name and "MongoDB database" in db_name  # what DB_NAME sets
    (table,) = [line for line in top.splitlines() if "KSTREAM_STORE_TABLE" in line]
    assert "DB_NAME" not in table


def test_every_environment_name_sets_an_option_some_command_has(capsys):
    """The epilog's option names are read from Settings: each must be an option of a command, or say what it sets."""
    epilog = build_parser().epilog
    options = set()
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        options |= {word.rstrip(",") for word in capsys.readouterr().out.split() if word.startswith("--")}
    for env_names in ENV_NAMES.values():
        (line,) = [line for line in epilog.splitlines() if line.strip().startswith(", ".join(env_names) + " ")]
        what = line.split(maxsplit=len(env_names))[-1]
        named = what.split()[0].split("/")[-1]
        assert named in options or not named.startswith("--"), line


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
    proc = cli("generate", "--records", "1", env={"KSTREAM_HOME": str(home)})
    one_line_error(proc, "no Kafka broker", "kstream broker start")


def test_bad_kafka_option_is_a_config_error(cli, one_line_error):
    proc = cli("generate", "--records", "1", "--bootstrap", "127.0.0.1:1", "--kafka-option", "lingr_ms=5")
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
    sent = cli("-q", "generate", "--records", "250", *common)
    assert sent.returncode == 0 and "sent 250 records" in sent.stdout, sent.stderr
    detected = cli("-q", "detect", "-t", "multi_class", "-m", "decision-tree", "--models-dir", str(models),
                       "--group", names["group"], "--store-url", f"sqlite:///{store}", "--records", "250", *common)
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
        sent = cli("-q", "generate", "--records", "5", "--topic", "t", env=env)  # finds it without --bootstrap
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
    listed = cli("models", "--models-dir", models, "--list-features")
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
    # shuffled: each window looks like the training data (in time order each holds one day's attacks, and drifts)
    proc = cli("run", "-m", "decision-tree", "--models-dir", str(models_dir), "--bootstrap", kafka_bootstrap,
               "--records", "1200", "--drift", "--drift-window", "500", "--alert", "attack_rate > 0.5",
               "--order", "shuffle", "--run-dir", str(tmp_path / "run"), "--json", "--delete-topics", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    run_id = summary["settings"]["topic"].rsplit(".", 1)[1]
    # every topic of the run is gone from the cluster (flows, predictions, dead letters, drift, alerts), no other
    assert len(summary["topics_deleted"]) == 5 and all(t.endswith(run_id) for t in summary["topics_deleted"])
    assert not [t for t in kafka_python.list_topics(kafka_bootstrap) if t.endswith(run_id)]
    # 500 + 500 + the last 200 (judged: 200 records is the least a window needs); the held-out split
    # is ~90% attacks, so the rule fires on each
    assert summary["drift"] == {"windows": 3, "drifted": 0, "judged": 3, "alerts": 3}
    assert summary["settings"]["drift"] is True and summary["settings"]["alerts"] == "attack_rate > 0.5"
    assert summary["settings"]["order"] == "shuffle"
    assert "1,200 predicted |" in proc.stderr and "| drift 0/3 windows, 3 alerts" in proc.stderr


# --- one name per idea, one idea per name; options a command would ignore are refused -------------------


def usage_error(capsys, *argv: str) -> str:
    """Parse ``kstream ARGV`` in this process; assert it is a usage error (exit 2) and return its error line."""
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    err = capsys.readouterr().err
    assert done.value.code == 2, err
    (line,) = [line for line in err.splitlines() if ": error: " in line]
    return line


@pytest.mark.parametrize("argv, old", [
    (["capture", "traffic.pcap", "--idle-timeout", "5"], "--idle-timeout"),  # now --flow-idle-timeout
    (["models", "--features"], "--features"),  # now --list-features
    (["sweep", "--param", "model=decision-tree"], "--param"),  # now --grid
    (["sweep", "-p", "model=decision-tree"], "-p"),
    (["generate", "--limit", "5"], "--limit"),  # a record count is --records everywhere
    (["run", "--limit", "5"], "--limit"),
    (["detect", "--max-records", "5"], "--max-records"),
    (["detect", "--idle", "5"], "--idle"),  # no abbreviations: an old name cannot match a new one by its prefix
])
def test_the_old_names_are_gone(argv, old, capsys):
    assert f"unrecognized arguments: {old}" in usage_error(capsys, *argv)


def test_the_new_names_parse_to_their_meaning():
    parse = build_parser().parse_args
    assert parse(["capture", "--interface", "lo", "--flow-idle-timeout", "3"]).flow_idle_timeout == 3
    assert parse(["detect", "--idle-timeout", "2.5", "--records", "9"]).idle_timeout == 2.5
    assert parse(["models", "--list-features"]).list_features is True
    assert parse(["train", "--features", "capture", "--param", "max_depth=3"]).param == ["max_depth=3"]
    args = parse(["sweep", "--grid", "model=a,b", "--grid", "records=5", "--grid-file", "g.yaml"])
    assert (args.grid, args.grid_file) == (["model=a,b", "records=5"], "g.yaml")
    for command in ("generate", "capture", "detect", "run"):
        assert parse([command, "--records", "7"]).records == 7


@pytest.mark.parametrize("argv, words", [
    (["train", "--all", "--data", "x.csv", "--param", "max_depth=3"],
     ["--data and --param cannot go with --all", "drop them, or train one model without --all"]),
    (["train", "--all", "--learning-curve"], ["--learning-curve cannot go with --all", "drop it"]),
    (["train", "--markdown", "grid.md"], ["--markdown belongs to the grid: add --all, or drop it"]),
    (["train", "--jobs", "2"], ["--jobs belongs to the grid: add --all, or drop it"]),
    (["evaluate", "--label-column", "Class"], ["--label-column names a column of your data file: add --data PATH"]),
    (["train", "--label-column", "Class"], ["add --data PATH or --features-from, or drop it"]),
    (["detect", "--allow-missing"], ["--allow-missing lets the model score --data that lacks features: add --data"]),
    (["detect", "--drift-window", "500", "--alert", "attack_rate > 0.5"],
     ["--drift-window and --alert need drift monitoring: add --drift (or set KSTREAM_DRIFT=1), or drop them"]),
    (["run", "--drift-seconds", "5"], ["--drift-seconds needs drift monitoring: add --drift"]),
    (["capture", "traffic.pcap", "--flow-idle-timeout", "5"],
     ["--flow-idle-timeout ends the flows of a live capture: add --interface NAME, or drop it"]),
    (["train", "--train-until", "2017-07-06"],
     ["--train-until is the boundary of a temporal split: add --split-mode temporal, or drop it"]),
    (["generate", "--split-mode", "grouped", "--train-until", "2017-07-06"], ["add --split-mode temporal"]),
    (["capture"], ["give a capture file (kstream capture FILE) or --interface NAME"]),
    (["capture", "traffic.pcap", "--interface", "lo"], ["not both and not neither"]),
    (["models", "-v", "-q"], ["-v (more detail) and -q (less) contradict each other"]),
    (["detect", "--learn", "online"], ["--learn online learns from labels: add --labels"]),
    (["run", "--learn", "retrain"], ["--learn retrain learns from labels: add --label-delay N"]),
    (["detect", "--labels", "--retrain-every", "100"], ["--retrain-every needs retraining: add --learn retrain"]),
    (["run", "--label-delay", "10", "--learner", "sgd-classifier"],
     ["--learner needs an online learner: add --learn online"]),
    (["detect", "--labels", "--learn-dir", "x"], ["--learn-dir needs a model that adapts"]),
])
def test_an_option_the_command_would_ignore_is_refused_naming_the_fix(argv, words, cli):
    proc = cli(*argv)  # a process of its own: the command runs as far as its usage check
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert line.startswith(f"kstream {argv[0]}: error: ")
    for word in words:
        assert word in line


def test_drift_options_are_taken_when_the_environment_turns_drift_on(tmp_path, cli, one_line_error):
    proc = cli("detect", "--drift-window", "500", "--models-dir", str(tmp_path), env={"KSTREAM_DRIFT": "1"})
    one_line_error(proc, "no trained model")  # past the usage check, to the missing model


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_and_quiet_go_before_or_after_the_command(where, models_dir, cli):
    flag = ["-v"]
    argv = [*flag, "models", "--models-dir", str(models_dir)] if where == "before" else \
        ["models", "--models-dir", str(models_dir), *flag]
    proc = cli(*argv)
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG kstream: settings: Settings(" in proc.stderr  # -v took effect
    quiet = cli("evaluate", "-m", "decision-tree", "--models-dir", str(models_dir), "-q")
    assert quiet.returncode == 0 and " INFO " not in quiet.stderr, quiet.stderr


def test_models_lists_each_models_features_in_text_and_json(models_dir, cli):
    text = cli("models", "--models-dir", str(models_dir), "--list-features")
    card = artifacts.load(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir)).card
    assert f"cicids2017/binary_class/decision-tree needs {len(card.features)} features:\n  {card.features[0]}" \
        in text.stdout
    rows = json.loads(cli("models", "--models-dir", str(models_dir), "--list-features", "--json").stdout)
    (row,) = [r for r in rows if r["task"] == "binary_class" and r["model"] == "decision-tree"]
    assert row["feature_names"] == card.features
    assert "feature_names" not in json.loads(cli("models", "--models-dir", str(models_dir), "--json").stdout)[0]


@pytest.mark.parametrize("url, kind", [("mongodb://db.example.org:27017", "mongodb"), ("sqlite:///x.sqlite", "sqlite"),
                                       ("runs/x.sqlite", "sqlite")])
def test_the_store_follows_its_url_and_a_contradicting_kind_is_one_line(url, kind, tmp_path, cli, one_line_error):
    other = "sqlite" if kind == "mongodb" else "mongodb"
    proc = cli("detect", "--store-url", url, "--models-dir", str(tmp_path), env={"DATABASE": other})
    one_line_error(proc, f"the results store is set to {other!r} (KSTREAM_STORE / DATABASE) but its URL is a {kind} "
                   "one",
                   "unset the store (the URL decides)")
    one_line_error(cli("run", "--store-url", "postgres://h/db", "--models-dir", str(tmp_path)),
                   "results store URL scheme 'postgres://' is not one kstream writes to")


@pytest.mark.kafka
@pytest.mark.mongodb
@pytest.mark.timeout(1800)  # the first use of FerretDB builds it
def test_a_mongodb_store_url_is_enough_for_detect_and_for_run_with_two_detectors(mongo_server, kafka_bootstrap,
                                                                                models_dir, names, tmp_path, cli):
    from kstream.stores.mongodb import MongoStore

    common = ["-m", "decision-tree", "--models-dir", str(models_dir), "--bootstrap", kafka_bootstrap]
    sent = cli("-q", "generate", "--records", "120", "--topic", names["topic"], *common)
    assert sent.returncode == 0, sent.stderr
    detected = cli("-q", "detect", "--records", "120", "--topic", names["topic"], "--group", names["group"],
                   "--store-url", mongo_server.url, *common, env={"DB_NAME": "cli_detect"})
    assert detected.returncode == 0 and "handled 120 records: 120 predicted" in detected.stdout, detected.stderr
    with MongoStore(mongo_server.url, "cli_detect") as store:
        assert store.count(names["topic"]) == 120
    # no --partitions: one per detector; both detector processes write into MongoDB
    run = cli("-q", "run", "--records", "400", "--detectors", "2", "--store-url", mongo_server.url,
              "--run-dir", str(tmp_path / "run"), "--json", *common, env={"DB_NAME": "cli_run"}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["records"] == 400 and summary["settings"]["partitions"] == 2
    assert summary["settings"]["store"] == "mongodb" and len(summary["per_detector"]) == 2
    assert all(n > 0 for n in summary["per_detector"]), "each detector owns a partition"
    with MongoStore(mongo_server.url, "cli_run") as store:
        assert set(store.frame(summary["settings"]["topic"])["partition"]) == {0, 1}
    assert not (tmp_path / "run" / "predictions.sqlite").exists()
    reported = cli("report", str(tmp_path / "run"))  # read back from the MongoDB database the summary names
    assert reported.returncode == 0, reported.stderr
    assert "records        400" in reported.stdout and (tmp_path / "run" / "report.md").exists()
