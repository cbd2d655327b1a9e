import json

import numpy as np
import pytest

from kstream import datasets, modeling
from kstream.errors import ConfigError, ModelError


def test_card_describes_the_artifact(models_dir):
    trained = modeling.load("cicids2017", "multi_class", "decision-tree", models_dir)
    card = trained.card
    assert card.features == datasets.load("cicids2017").feature_names
    assert set(card.classes) == set(datasets.load("cicids2017").labels)
    assert card.sha256 == modeling.sha256_file(trained.path / "model.joblib")
    assert 0.5 < card.metrics["accuracy"] <= 1 and 0 < card.metrics["macro_f1"] <= 1
    assert card.train_rows + card.test_rows == 25127
    assert card.versions["scikit-learn"]
    cm = np.array(card.metrics["confusion_matrix"])
    assert cm.shape == (len(card.classes),) * 2 and cm.sum() == card.test_rows


def test_load_refuses_a_tampered_artifact(models_dir, tmp_path):
    src = modeling.artifact_dir("cicids2017", "binary_class", "decision-tree", models_dir)
    dst = tmp_path / "m"
    dst.mkdir()
    (dst / "model.json").write_text((src / "model.json").read_text())
    (dst / "model.joblib").write_bytes((src / "model.joblib").read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match the sha256"):
        modeling.load_dir(dst)


def test_missing_model_names_the_train_command(tmp_path):
    with pytest.raises(ModelError, match="kstream train -d cicids2017 -t binary_class -m random-forest"):
        modeling.load("cicids2017", "binary_class", "random-forest", tmp_path)


def test_pipeline_scores_inf_and_nan_rows(models_dir):
    trained = modeling.load("cicids2017", "binary_class", "random-forest", models_dir)
    x = np.full((3, len(trained.features)), np.nan)
    x[1, :] = np.inf
    x[2, :] = -np.inf
    labels, scores = trained.predict(x)
    assert len(labels) == 3 and set(labels) <= {"benign", "attack"}
    assert ((scores > 0) & (scores <= 1)).all()


def test_predict_matches_the_pipeline(models_dir):
    trained = modeling.load("cicids2017", "multi_class", "decision-tree", models_dir)
    x = datasets.load("cicids2017").subset("test").features.to_numpy()[:300]
    labels, _ = trained.predict(x)
    assert (labels == trained.pipeline.predict(x)).all()


def test_same_seed_same_predictions(tmp_path):
    x = datasets.load("cicids2017").subset("test").features.to_numpy()
    a = modeling.train("cicids2017", "binary_class", "logistic-regressor", tmp_path / "a")
    b = modeling.train("cicids2017", "binary_class", "logistic-regressor", tmp_path / "b")
    assert (a.pipeline.predict(x) == b.pipeline.predict(x)).all()
    assert json.loads((a.path / "model.json").read_text())["metrics"] == b.card.metrics


def test_hyperparameters_override_and_bad_ones_fail():
    assert modeling.build_pipeline("decision-tree", {"max_depth": 3})[-1].max_depth == 3
    with pytest.raises(ConfigError, match="bad hyperparameter"):
        modeling.build_pipeline("decision-tree", {"depth": 3})
