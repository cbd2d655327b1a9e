"""The jobs of kstream.app offline: one model identity per job, checked against the data it scores.

Two bugs of the earlier layout are pinned here: the split seed on a model card was never read
back (so "held-out" scores after training with another seed included training rows), and a
file with only grouped CICIDS2017 labels was scored by the model of the other label level.
"""

from __future__ import annotations

import pytest

from kstream import app
from kstream.data import datasets
from kstream.errors import ModelError
from kstream.modeling import artifacts
from kstream.settings import Settings


def test_scores_after_training_with_another_seed_are_on_rows_the_model_never_saw(tmp_path, cicids):
    trained = app.train(Settings(model="decision-tree", seed=7, models_dir=tmp_path))
    assert trained.card.seed == 7
    train_rows, _ = cicids.split_index(seed=7)
    seen = set(cicids.ids.iloc[train_rows])
    scores, frame = app.evaluate(Settings(model="decision-tree", models_dir=tmp_path))  # no seed: the card's
    assert len(frame) == trained.card.test_rows == scores["rows"]
    assert not seen & set(frame["record_id"]), "a scored row was a training row"
    assert scores["accuracy"] == pytest.approx(trained.card.metrics["accuracy"])  # the card's held-out score again


def test_a_seed_other_than_the_cards_is_refused_with_the_fix(tmp_path):
    app.train(Settings(model="decision-tree", seed=7, models_dir=tmp_path))
    with pytest.raises(ModelError, match=r"split of seed 7, not 42; train one with `kstream train -d cicids2017"):
        app.evaluate(Settings(model="decision-tree", seed=42, models_dir=tmp_path))


def test_a_split_mode_other_than_the_cards_is_refused_with_the_fix(csv_model):
    root = csv_model.path.parents[2]  # trained on the csv-sample's random split
    settings = Settings(task="multi_class", model="decision-tree", models_dir=root)
    with pytest.raises(ModelError, match=r"it was trained on a random split, not a grouped one; train one with "
                                         r"`kstream train -d cicids2017 -t multi_class -m decision-tree "
                                         r"--level grouped .*--split-mode grouped --data csv-sample`"):
        app.evaluate(settings.replace(split_mode="grouped"), data="csv-sample")
    scores, frame = app.evaluate(settings, data="csv-sample")  # no mode given: the card's
    assert scores["rows"] == csv_model.card.test_rows
    assert scores["seen_in_training"] == csv_model.card.metrics["seen_in_training"] == frame["seen_in_training"].sum()


def test_the_csv_sample_is_scored_by_its_own_grouped_model(tmp_path):
    settings = Settings(task="multi_class", model="decision-tree", models_dir=tmp_path)
    app.train(settings)  # the fine-level model of the improved sample, as after `make run`
    grouped = app.train(settings, data="csv-sample")
    assert grouped.card.level == "grouped" and grouped.path.parent.name == "multi_class-grouped"
    scores, frame = app.evaluate(settings, data="csv-sample")
    assert scores["rows"] == grouped.card.test_rows  # its own held-out split
    assert set(frame["true_label"]) <= set(grouped.card.classes)
    assert scores["accuracy"] > 0.9 and scores["macro_f1"] > 0.5


def test_a_model_missing_features_of_the_data_stops_with_one_line_naming_it(tmp_path):
    app.train(Settings(model="decision-tree", models_dir=tmp_path))  # improved features
    with pytest.raises(ModelError) as err:
        app.evaluate(Settings(model="decision-tree", models_dir=tmp_path), data="csv-sample")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("model cicids2017/binary_class/decision-tree does not fit datasets/cicids2017-csv-sample")
    assert "it needs 7 feature(s) the data lacks: Dst Port" in message
    assert "kstream train -d cicids2017 -t binary_class -m decision-tree" in message


def test_a_job_that_may_train_retrains_only_when_asked(tmp_path):
    ds = datasets.load("cicids2017", "csv-sample")
    settings = Settings(model="decision-tree", models_dir=tmp_path)
    app.train(settings)
    ref = settings.model_ref(ds)
    with pytest.raises(ModelError, match="retrain it with --retrain"):
        app.model_for(ref, ds, train_missing=True)
    retrained = app.model_for(ref, ds, train_missing=True, retrain=True)
    assert retrained.card.data_source == ds.source and artifacts.mismatches(retrained.card, ds) == []


def test_rows_a_model_never_saw(tmp_path, cicids):
    trained = app.train(Settings(model="decision-tree", models_dir=tmp_path))
    assert len(app.unseen_rows(trained, cicids)) == trained.card.test_rows
    other = datasets.load("cicids2017", "csv-sample")
    assert app.unseen_rows(trained, other) is other  # data it was not trained on: every row
