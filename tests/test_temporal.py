"""The temporal split on the bundled CICIDS2017 sample: where its boundary falls, ties, --train-until,
the refusal of data without times, and what the model card records of it.

The sample's attack families arrive by day (07-03 benign only; 07-04 FTP- and SSH-Patator; 07-05 the
DoS tools and Heartbleed; 07-06 web attacks and infiltration; 07-07 DDoS, PortScan and Botnet), so a
model trained before 07-06 has never seen the classes of the last two days.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kstream import app
from kstream.data import leakage
from kstream.errors import ConfigError, ModelError
from kstream.modeling import artifacts, training
from kstream.modeling.artifacts import ModelRef
from kstream.settings import Settings
from kstream.stores.sqlite import open_store

FIRST, LAST = "2017-07-03T11:57:41.826651", "2017-07-07T20:02:39.567285"  # the sample's first and last flow


def test_the_last_fifth_by_time_is_held_out_whatever_the_seed(cicids):
    train, test = cicids.split_index(seed=42, mode="temporal")
    times = cicids.times
    assert len(train) + len(test) == len(cicids) and not set(train) & set(test)
    assert times.iloc[train].max() < times.iloc[test].min()  # every held-out flow is later than every training one
    boundary = times.iloc[test].min()
    assert len(test) == (times >= boundary).sum() >= round(0.2 * len(cicids))
    assert (times.sort_values().iloc[len(cicids) - round(0.2 * len(cicids))]) == boundary
    for seed in (7, 1234):  # the seed only seeds the classifier
        assert np.array_equal(cicids.split_index(seed=seed, mode="temporal")[1], test)
    half = cicids.split_index(seed=42, mode="temporal", test_size=0.5)[1]
    assert set(test) < set(half) and abs(len(half) - len(cicids) / 2) <= 1 + times.duplicated().sum()


def test_rows_of_the_boundary_time_stay_on_one_side(cicids):
    times = cicids.times.sort_values(kind="stable")
    counts = times.value_counts()
    tied = counts[counts >= 2].index[0]  # a time several real flows share
    at = np.flatnonzero(times.to_numpy() == tied.to_datetime64())
    # ten flows before the tie, the tied ones, two after: a cut at the tie's second row would split it
    rows = times.index[at[0] - 10: at[-1] + 3]
    part = cicids.times.loc[rows].reset_index(drop=True)
    tie = len(at)
    held = 2 + tie - 1  # the last rows by time down to the tie's second row
    train, test = leakage.temporal_split(part, test_size=held / len(part))
    assert len(test) == 2 + tie and (part.iloc[test] >= tied).all() and (part.iloc[train] < tied).all()
    train, test = leakage.temporal_split(part, until=tied.isoformat())  # the same rule: time < until trains
    assert len(test) == 2 + tie


def test_train_until_trains_on_the_days_before_it(cicids):
    train, test = cicids.split_index(seed=42, mode="temporal", until="2017-07-06")
    days = cicids.times.dt.strftime("%m-%d")
    assert set(days.iloc[train]) == {"07-03", "07-04", "07-05"} and set(days.iloc[test]) == {"07-06", "07-07"}
    assert not {"DDoS", "Portscan", "Botnet"} & set(cicids.labels.iloc[train])
    same = cicids.split_index(seed=42, mode="temporal", until="2017-07-06T02:00:00+02:00")  # an offset: UTC
    assert np.array_equal(same[1], test)


@pytest.mark.parametrize("until, side", [("2017-07-01", "train on"), (FIRST, "train on"), ("2017-07-08", "hold out"),
                                         ("2017-07-07T20:02:40", "hold out")])
def test_a_boundary_that_leaves_a_side_empty_is_refused_naming_the_range(cicids, until, side):
    with pytest.raises(ConfigError) as refused:
        cicids.split_index(seed=42, mode="temporal", until=until)
    message = str(refused.value)
    assert "\n" not in message and f"--train-until {until} leaves no rows to {side}" in message
    assert f"runs from {FIRST} to {LAST}" in message
    train, test = cicids.split_index(seed=42, mode="temporal", until=LAST)  # the last flow alone is held out
    assert len(test) == 1


@pytest.mark.parametrize("name", ["nsl-kdd", "netml", "csv-sample"])
def test_data_without_times_is_refused_naming_the_fix(samples, name):
    assert samples[name].times is None
    with pytest.raises(ConfigError, match="has no flow times, so it cannot be split by time: use --split-mode grouped "
                                          "or random, or data with a Timestamp column"):
        samples[name].split_index(seed=42, mode="temporal")


def test_train_refuses_a_temporal_split_of_nsl_kdd_in_one_line(tmp_path, cli, one_line_error):
    proc = cli("-q", "train", "-d", "nsl-kdd", "-m", "decision-tree", "--split-mode", "temporal", "--models-dir",
               str(tmp_path))
    one_line_error(proc, "datasets/nsl-kdd has no flow times", "use --split-mode grouped or random")
    # --train-until with the temporal split of the environment passes the usage check, to the same refusal
    proc = cli("-q", "train", "-d", "nsl-kdd", "-m", "decision-tree", "--train-until", "2017-07-06", "--models-dir",
               str(tmp_path), env={"KSTREAM_SPLIT_MODE": "temporal"})
    one_line_error(proc, "datasets/nsl-kdd has no flow times")
    assert not list(tmp_path.iterdir())


def test_train_until_needs_the_temporal_split_and_an_iso_time():
    with pytest.raises(ConfigError, match="not an ISO date or datetime"):
        Settings(train_until="Thursday")
    with pytest.raises(ConfigError, match="train_until is the boundary of a temporal split: set split_mode temporal"):
        Settings(train_until="2017-07-06", split_mode="grouped").model_ref()
    ref = Settings(train_until="2017-07-06", split_mode="temporal").model_ref()
    assert ref.train_command().endswith("--split-mode temporal --train-until 2017-07-06")


@pytest.fixture(scope="module")
def until_thursday(tmp_path_factory, cicids):
    """A multi-class decision tree trained on the flows before 07-06."""
    ref = ModelRef("cicids2017", "multi_class", "decision-tree", models_dir=tmp_path_factory.mktemp("temporal"),
                   split_mode="temporal", train_until="2017-07-06")
    return training.train(ref, cicids)


def test_the_card_records_the_mode_the_boundary_each_sides_times_and_the_unseen_classes(until_thursday, cicids):
    card = json.loads((until_thursday.path / "model.json").read_text())
    assert card["split_mode"] == "temporal" and card["train_until"] == "2017-07-06T00:00:00"
    (train_first, train_last), (test_first, test_last) = card["time_range"]["train"], card["time_range"]["test"]
    assert train_first == FIRST and train_last < "2017-07-06" <= test_first and test_last == LAST
    held = cicids.times >= pd.Timestamp("2017-07-06")
    assert card["test_rows"] == held.sum() and card["train_rows"] == (~held).sum()
    expected = cicids.labels[held].value_counts()
    expected = expected[~expected.index.isin(set(cicids.labels[~held]))]
    absent = card["metrics"]["classes_absent_from_training"]
    assert absent == {str(k): int(v) for k, v in expected.items()}
    assert {"DDoS", "Portscan", "Botnet", "Infiltration", "Web Attack - XSS"} <= set(absent)
    per_class = card["metrics"]["per_class"]
    for name, rows in absent.items():  # scored, and never right: the model cannot name them
        assert per_class[name]["support"] == rows and per_class[name]["recall"] == 0
    assert set(absent) <= set(card["metrics"]["classes"]) and not set(absent) & set(card["classes"])
    assert "before 2017-07-06T00:00:00" in card["split_note"] and "8 held-out class(es)" in card["split_note"]


def test_a_temporal_model_is_scored_on_its_later_rows_and_checked_against_another_boundary(until_thursday, cicids):
    models_dir = until_thursday.path.parents[2]
    settings = Settings(task="multi_class", model="decision-tree", models_dir=models_dir)
    scores, frame = app.evaluate(settings)
    held = cicids.ids[cicids.times >= pd.Timestamp("2017-07-06")]
    assert sorted(frame["record_id"]) == sorted(held)
    assert scores["classes_absent_from_training"] == until_thursday.card.metrics["classes_absent_from_training"]
    assert scores["accuracy"] == pytest.approx(until_thursday.card.metrics["accuracy"])
    with pytest.raises(ModelError, match="trained on the flows before 2017-07-06T00:00:00, not before 2017-07-05"):
        app.evaluate(settings.replace(split_mode="temporal", train_until="2017-07-05"))
    with pytest.raises(ModelError, match="trained on a temporal split, not a grouped one"):
        app.evaluate(settings.replace(split_mode="grouped"))


def test_a_default_temporal_card_reproduces_its_split(tmp_path, cicids):
    ref = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=tmp_path, split_mode="temporal")
    model = training.train(ref, cicids)
    train, test = cicids.split_index(seed=42, mode="temporal")
    assert model.card.train_until == model.card.time_range["test"][0]  # the first held-out flow's time
    assert np.array_equal(model.held_out(cicids).ids, cicids.ids.iloc[test])
    assert model.card.metrics["classes_absent_from_training"] == {"DDoS": 2500}  # Friday evening's DDoS
    assert "DDoS" in model.card.split_note and "flags them as attacks only as far as" in model.card.split_note
    again = artifacts.load(ref)
    assert again.card.train_until == model.card.train_until and again.card.time_range == model.card.time_range


def test_a_grouped_card_keeps_each_sides_time_range_and_no_boundary(models_dir):
    card = artifacts.load(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir)).card
    assert card.split_mode == "grouped" and card.train_until == "" and card.split_note == ""
    for first, last in card.time_range.values():  # a grouped split spans the whole week on both sides
        assert first.startswith("2017-07-03") and last.startswith("2017-07-07")
    assert card.metrics["classes_absent_from_training"] == {}


@pytest.mark.kafka
def test_run_streams_a_temporal_models_later_rows_in_time_order(settings, tmp_path, cicids):
    settings = settings.replace(models_dir=tmp_path / "models", split_mode="temporal", train_until="2017-07-07",
                                store_url="", records=600)
    result = app.run(settings, run_dir=tmp_path / "run", progress=False)  # trains the model, then streams
    s = result.summary
    assert s["records"] == s["evaluated"] == 600 and s["seen_in_training"] == 0
    assert s["settings"]["split_mode"] == "temporal" and s["settings"]["train_until"] == "2017-07-07T00:00:00"
    assert s["settings"]["order"] == "time"
    with open_store("sqlite", str(tmp_path / "run" / "predictions.sqlite")) as store:
        streamed = store.frame()["record_id"]
    times = cicids.times.set_axis(cicids.ids)
    friday = times[times >= pd.Timestamp("2017-07-07")].sort_values(kind="stable")
    assert sorted(streamed) == sorted(friday.index[:600])  # the first 600 flows after the boundary
