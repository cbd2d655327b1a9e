"""The notebooks, executed by papermill through `kstream sweep` against the real broker."""

from __future__ import annotations

import json
import sqlite3

import nbformat
import pandas as pd
import papermill
import pytest

from kstream import sweep

ALL_NOTEBOOKS = sorted(p.name for p in sweep.NOTEBOOKS_DIR.glob("*.ipynb"))


def test_the_sweep_runs_the_pipeline_notebooks_and_every_other_one_is_tested_on_its_own():
    assert set(sweep.NOTEBOOKS) < set(ALL_NOTEBOOKS) and "4.0-adaptation.ipynb" in ALL_NOTEBOOKS


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_notebook_has_one_parameters_cell_and_no_outputs(name):
    book = nbformat.read(sweep.NOTEBOOKS_DIR / name, as_version=4)
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for line in tagged[0].source.splitlines():
        assert ": " in line and " = " in line and "  # " in line, f"untyped or uncommented parameter: {line}"
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "commit notebooks with outputs stripped"
    assert set(sweep.declared_parameters(sweep.NOTEBOOKS_DIR / name))  # papermill can read every parameter


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory, kafka_bootstrap, cli):
    out = tmp_path_factory.mktemp("sweep")
    proc = cli("-q", "sweep", "--grid", "model=decision-tree,logistic-regressor", "--grid",
               "task=binary_class,multi_class", "--grid", "records=300", "--bootstrap", kafka_bootstrap,
               "--out", str(out), "--jobs", "2",
               "--models-dir", str(out / "models"), timeout=900)
    return out, proc


@pytest.mark.kafka
def test_two_by_two_sweep_has_four_runs_with_real_numbers(two_by_two):
    out, proc = two_by_two
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert set(zip(table["model"], table["task"])) == {
        ("decision-tree", "binary_class"), ("decision-tree", "multi_class"),
        ("logistic-regressor", "binary_class"), ("logistic-regressor", "multi_class"),
    }
    assert (table["records"] == 300).all()
    assert table["accuracy"].between(0.5, 1).all() and table["macro_f1"].between(0, 1).all()
    assert (table["throughput_rps"] > 0).all()
    assert (table["latency_p50_ms"] <= table["latency_p95_ms"]).all()
    assert (table["latency_p95_ms"] <= table["latency_p99_ms"]).all()
    assert len((out / "summary.md").read_text().splitlines()) == 2 + 4
    assert f"report: {out}" in proc.stdout


@pytest.mark.kafka
def test_every_notebook_wrote_what_it_promises(two_by_two):
    out, _ = two_by_two
    run = out / "model=decision-tree-task=multi_class-records=300"
    for name in sweep.NOTEBOOKS:
        executed = nbformat.read(run / name, as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    images = [o for c in nbformat.read(run / "3.0-report.ipynb", as_version=4).cells if c.cell_type == "code"
              for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4, "3.0 shows each of its four figures once"
    train_images = [o for c in nbformat.read(run / "1.0-train.ipynb", as_version=4).cells if c.cell_type == "code"
                    for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(train_images) == 1  # the held-out confusion matrix, from the card's counts
    card = json.loads((out / "models" / "cicids2017" / "multi_class" / "decision-tree" / "model.json").read_text())
    assert card["model"] == "decision-tree" and card["metrics"]["confusion_matrix"]
    with sqlite3.connect(run / "predictions.sqlite") as db:
        assert db.execute("SELECT COUNT(DISTINCT record_id) FROM predictions").fetchone()[0] == 300
    summary = json.loads((run / "summary.json").read_text())
    assert summary["records"] == 300 and summary["settings"]["task"] == "multi_class"
    for figure in ("class_counts", "latency", "confusion_matrix", "throughput"):
        png = run / "figures" / f"{figure}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    report = (run / "report.md").read_text()
    assert "| records predicted | 300" in report and "figures/latency.png" in report


@pytest.mark.kafka
def test_a_bad_value_and_an_unknown_parameter_fail_their_runs_and_the_sweep(tmp_path, kafka_bootstrap, cli):
    grid = tmp_path / "grid.yaml"
    grid.write_text("model: [decision-tree, svm]\nrecords: [100]\n")
    proc = cli("-q", "sweep", "--grid-file", str(grid), "--bootstrap", kafka_bootstrap, "--out", str(tmp_path / "a"),
               "--models-dir", str(tmp_path / "models"), timeout=600)
    assert proc.returncode == 1
    table = pd.read_csv(tmp_path / "a" / "summary.csv").set_index("model")
    assert table.loc["decision-tree", "status"] == "ok" and table.loc["decision-tree", "records"] == 100
    assert table.loc["svm", "status"] == "failed"
    assert table.loc["svm", "error"].startswith("1.0-train.ipynb cell ")
    assert "ConfigError: unknown model 'svm'" in table.loc["svm", "error"]
    proc = cli("-q", "sweep", "--grid", "colour=red", "--bootstrap", kafka_bootstrap, "--out", str(tmp_path / "b"))
    assert proc.returncode == 1 and "unknown parameter 'colour'" in proc.stdout


@pytest.mark.kafka
def test_a_drift_run_keeps_its_final_live_view_and_reports_its_windows(tmp_path, kafka_bootstrap, cli):
    proc = cli("-q", "sweep", "--grid", "model=decision-tree", "--grid", "records=1200", "--grid", "drift=true",
               "--grid", "drift_window=500", "--grid", "alerts=attack_rate > 0.5", "--grid", "value_format=vector",
               "--grid", "order=shuffle",  # windows like the training data: in time order each holds one day
               "--bootstrap", kafka_bootstrap, "--out", str(tmp_path), "--models-dir", str(tmp_path / "models"),
               timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name != "models"]
    stream = nbformat.read(run / "2.0-stream.ipynb", as_version=4)
    (run_cell,) = [c for c in stream.cells if c.cell_type == "code" and "on_progress=view.update" in c.source]
    images = [o for o in run_cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, "one display handle, redrawn in place: the run's final view stays"
    assert len(images[0]["data"]["image/png"]) > 20_000
    windows = stream.cells[-1].outputs[0]["data"]["text/plain"]
    assert "attack_rate > 0.5" in windows  # the windows table lists the alerts that fired
    report_images = [o for c in nbformat.read(run / "3.0-report.ipynb", as_version=4).cells if c.cell_type == "code"
                     for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(report_images) == 5  # the four figures of every run and the drift windows
    summary = json.loads((run / "summary.json").read_text())
    assert summary["settings"]["value_format"] == "vector" and summary["records"] == 1200  # streamed as vectors
    assert summary["drift"] == {"windows": 3, "drifted": 0, "judged": 3, "alerts": 3}
    report = (run / "report.md").read_text()
    assert "## Drift" in report and "| alerts | 3: 3 x attack_rate > 0.5 |" in report and "figures/drift.png" in report


@pytest.mark.kafka
def test_the_adaptation_notebook_compares_static_retrain_and_online_on_one_stream(tmp_path, kafka_bootstrap):
    """4.0 under papermill, shortened: 4,000 records of the week in time order, label delay 500, the
    decision tree retrained on every 1,000 labels, the sgd-classifier learning online."""
    out = tmp_path / "adaptation"
    papermill.execute_notebook(
        str(sweep.NOTEBOOKS_DIR / "4.0-adaptation.ipynb"), str(tmp_path / "4.0-adaptation.ipynb"),
        parameters={"tasks": "binary_class", "model": "decision-tree", "learner": "sgd-classifier",
                    "label_delays": "500", "retrain_trigger": "labels", "retrain_every": 1000, "rate": 0.0,
                    "records": 4000, "block": 500, "bootstrap": kafka_bootstrap, "out_dir": str(out)},
        progress_bar=False, kernel_name="python3", cwd=str(tmp_path))
    table = pd.read_csv(out / "adaptation.csv").set_index("learn")
    assert list(table.index) == ["static", "retrain", "online"] and (table["records"] == 4000).all(), table.to_string()
    assert table.loc["static", "versions"] == 1 and table.loc["static", "retrains"] == 0
    assert table.loc["online", "model"] == "sgd-classifier" and table.loc["retrain", "model"] == "decision-tree"
    # an attempt every 1,000 labels once window and holdout hold them
    assert table.loc["retrain", "retrains"] >= 1, table.to_string()
    assert table["macro_f1_after_unseen"].between(0, 1).all()
    recovery = pd.read_csv(out / "recovery.csv")
    assert set(recovery["run"]) == {f"binary_class-delay500-{m}" for m in ("static", "retrain", "online")}
    assert recovery.groupby("run")["records"].sum().eq(4000).all()  # every record belongs to one family
    assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    executed = nbformat.read(tmp_path / "4.0-adaptation.ipynb", as_version=4)
    assert all(c.outputs == [] or "ename" not in c.outputs[0] for c in executed.cells if c.cell_type == "code")
