"""The run report offline: a run folder written by hand, read back with its model's leakage report.

The streaming end to end (Kafka, the notebooks) is in tests/test_notebooks.py; here a run folder is
made without a broker, from predictions the model really makes, so the report's numbers can be checked
against counts computed in the test.
"""

from __future__ import annotations

import json
import shutil

import matplotlib
import matplotlib.pyplot

matplotlib.use("Agg")  # this process only

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kstream.analysis import report  # noqa: E402
from kstream.stores.sqlite import SQLiteStore  # noqa: E402


def write_run(run_dir, model, ds, rows):
    """A run folder as app.run leaves it: predictions of ``rows`` of ``ds`` by ``model``, and its summary."""
    part = ds.take(rows)
    labels, scores = model.predict(part.features.to_numpy())
    with SQLiteStore(run_dir / "predictions.sqlite") as store:
        store.write([dict(record_id=rid, predicted_label=str(label), score=float(p), model_id=model.card.model_id,
                          send_ns=1_000_000 * i, predicted_ns=1_000_000 * i + 3_000_000, topic="flows.t",
                          topic_id="t1", partition=0, offset=i)
                     for i, (rid, label, p) in enumerate(zip(part.ids, labels, scores))])
    summary = {"records": len(rows), "throughput_rps": 1000.0, "latency_ms": {"p50": 3.0, "p95": 3.0, "p99": 3.0},
               "predicted_counts": {}, "model_id": model.card.model_id, "model_dir": str(model.path),
               "model_data_source": model.card.data_source,
               "settings": {"dataset": "cicids2017", "task": "multi_class", "model": "decision-tree",
                            "level": "grouped", "seed": model.card.seed, "split_mode": model.card.split_mode,
                            "data": "csv-sample", "topic": "flows.t", "store": "sqlite"}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return part


def test_the_report_counts_streamed_records_seen_in_training_and_draws_the_learning_curve(csv_model, samples,
                                                                                         tmp_path):
    ds, card = samples["csv-sample"], csv_model.card
    rows = np.arange(0, len(ds), 7)  # every 7th row: training and held-out rows of its random split
    part = write_run(tmp_path, csv_model, ds, rows)
    run = report.load_run(tmp_path)
    train = card.rows(ds, "train")
    assert run.summary["training_rows_streamed"] == part.ids.isin(set(train.ids)).sum() > 0
    as_tuples = {tuple(np.nan_to_num(r, nan=-1e300)) for r in train.features.to_numpy().tolist()}
    expected = [tuple(np.nan_to_num(r, nan=-1e300)) in as_tuples for r in part.features.to_numpy().tolist()]
    by_id = run.predictions.set_index("record_id")["seen_in_training"]
    assert by_id.loc[list(part.ids)].tolist() == expected
    assert run.card is not None and run.card.learning_curve
    figures = report.figures(run)
    assert "learning_curve" in figures
    text = report.write_report(run, figures).read_text()
    seen = sum(expected)
    assert f"| records whose feature vector a training row had | {seen} |" in text
    assert "records of unseen vectors | " in text and "| ceiling: the best accuracy these labels allow |" in text
    assert "(random split)" in text and "figures/learning_curve.png" in text
    assert (tmp_path / "figures" / "learning_curve.png").stat().st_size > 10_000


def test_a_run_whose_model_is_gone_says_the_seen_count_is_unknown(csv_model, samples, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(csv_model.path, model_dir)
    moved = type(csv_model)(csv_model.pipeline, csv_model.card, model_dir, csv_model.train_vectors)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run(run_dir, moved, samples["csv-sample"], np.arange(0, 500, 5))
    shutil.rmtree(model_dir)
    run = report.load_run(run_dir)
    assert "seen_in_training" not in run.predictions and run.card is None
    assert run.summary["training_rows_streamed"] > 0  # still counted from the run's seed and split mode
    text = report.write_report(run).read_text()
    assert "| records whose feature vector a training row had | unknown (the model's folder is gone) |" in text


@pytest.mark.parametrize("seen", [0, 3])
def test_leakage_lines_give_the_unseen_scores_only_when_some_rows_were_seen(seen):
    scores = {"seen_in_training": seen, "unseen": {"rows": 7, "accuracy": 0.5, "macro_f1": 0.25},
              "ceiling": 0.9, "multi_label_rows": 2}
    lines = report._leakage_lines(scores)
    assert lines[0] == f"| records whose feature vector a training row had | {seen} |"
    assert any("on the 7 records of unseen vectors | 0.5000 / 0.2500 |" in line for line in lines) == bool(seen)
    assert lines[-1] == "| ceiling: the best accuracy these labels allow | 0.9000 (2 records on vectors labelled " \
                        "more than one way) |"


def test_a_run_with_drift_windows_draws_them_and_summarises_drift_and_alerts(csv_model, samples, tmp_path):
    from kstream.drift.monitor import DriftMonitor, window_row

    ds = samples["csv-sample"]
    part = write_run(tmp_path, csv_model, ds, np.random.default_rng(0).permutation(len(ds))[:2000])  # mixed classes
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["settings"].update(drift=True, drift_window=500, drift_psi=0.2, drift_share=0.1, drift_window_s=0)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    x = part.features.to_numpy(dtype=np.float64, copy=True)
    x[1000:] *= 3  # the second half moves: its windows drift
    labels, scores = csv_model.predict(x)
    monitor = DriftMonitor(csv_model.reference(), window_records=500)
    windows = monitor.update(x, labels, scores, now_ns=10**9) + monitor.flush()
    rows = [window_row(w, "m", "flows.t", csv_model.card.model_id, ["max_psi > 1"] if w.drifted else [])
            for w in windows]
    with SQLiteStore(tmp_path / "predictions.sqlite") as store:
        store.write_windows(rows)
    run = report.load_run(tmp_path)
    assert run.windows["window"].tolist() == [0, 1, 2, 3]
    assert run.windows["drifted"].tolist() == [False, False, True, True]
    figures = report.figures(run)
    assert "drift" in figures and "2 of 4 windows drifted" in figures["drift"].axes[0].get_title()
    text = report.write_report(run, figures).read_text()
    assert "## Drift" in text and "| windows (judged) | 4 (4) |" in text
    assert "| drifted windows | 2, the first ending" in text and "| alerts | 2: 2 x max_psi > 1 |" in text
    assert "features drifting most often" in text and "figures/drift.png" in text
    matplotlib.pyplot.close("all")


def test_a_run_without_drift_has_no_drift_section(csv_model, samples, tmp_path):
    write_run(tmp_path, csv_model, samples["csv-sample"], np.arange(0, 300))
    run = report.load_run(tmp_path)
    figures = report.figures(run)
    assert run.windows is None and "drift" not in figures
    matplotlib.pyplot.close("all")
    assert "## Drift" not in report.write_report(run).read_text()


def test_kstream_report_prints_the_summary_and_writes_the_report_of_the_newest_run(csv_model, samples, tmp_path, cli):
    from kstream.paths import DATASETS_DIR

    root = tmp_path / "project"  # a project folder of its own: its runs/ holds an older and a newer run
    (root / "runs" / "old").mkdir(parents=True)
    (root / "datasets").symlink_to(DATASETS_DIR)
    write_run(root / "runs" / "old", csv_model, samples["csv-sample"], np.arange(0, 100))
    newest = root / "runs" / "new"
    newest.mkdir()
    write_run(newest, csv_model, samples["csv-sample"], np.arange(0, 300))
    proc = cli("report", env={"KSTREAM_ROOT": str(root)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cicids2017 / multi_class (grouped) / decision-tree\nrecords        300\n")
    assert f"report         {newest / 'report.md'}" in proc.stdout
    assert "| records predicted | 300" in (newest / "report.md").read_text()
    assert (newest / "figures" / "latency.png").stat().st_size > 10_000
    assert not (root / "runs" / "old" / "report.md").exists()
    as_json = cli("report", str(root / "runs" / "old"), "--json")
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["records"] == 100 and summary["report"] == str(root / "runs" / "old" / "report.md")
    assert "training_rows_streamed" in summary


def test_kstream_report_without_any_run_says_how_to_make_one(tmp_path, cli, one_line_error):
    (tmp_path / "runs").mkdir()
    one_line_error(cli("report", env={"KSTREAM_ROOT": str(tmp_path)}), "no run folder under", "kstream run")
