"""Model artifacts: the card, hash-checked loading, the model identity and the data checks."""

import dataclasses
import json

import numpy as np
import pytest

from kstream.data import datasets
from kstream.errors import ConfigError, DataError, ModelError
from kstream.modeling import artifacts, training, zoo
from kstream.modeling.artifacts import ModelRef


def ref(task="binary_class", model="decision-tree", root=None, **kw):
    if root:
        return ModelRef("cicids2017", task, model, models_dir=root, **kw)
    return ModelRef("cicids2017", task, model, **kw)


def test_card_describes_the_artifact(models_dir, cicids):
    trained = artifacts.load(ref("multi_class", root=models_dir))
    card = trained.card
    assert card.features == cicids.feature_names
    assert set(card.classes) == set(cicids.labels)
    assert card.sha256 == artifacts.sha256_file(trained.path / "model.joblib")
    assert 0.5 < card.metrics["accuracy"] <= 1 and 0 < card.metrics["macro_f1"] <= 1
    assert card.train_rows + card.test_rows == 25127
    assert card.versions["scikit-learn"] and card.seed == 42 and card.level == "label"
    assert card.data_source == "datasets/cicids2017-improved-sample" and "Sharafaldin" in card.citation
    cm = np.array(card.metrics["confusion_matrix"])
    assert cm.shape == (len(card.classes),) * 2 and cm.sum() == card.test_rows


def test_load_refuses_a_tampered_artifact(models_dir, tmp_path):
    src = ref(root=models_dir).directory
    dst = tmp_path / "m"
    dst.mkdir()
    (dst / "model.json").write_text((src / "model.json").read_text())
    (dst / "model.joblib").write_bytes((src / "model.joblib").read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match the sha256"):
        artifacts.load_dir(dst)


def test_missing_model_names_the_train_command(tmp_path):
    with pytest.raises(ModelError, match="kstream train -d cicids2017 -t binary_class -m random-forest --models-dir"):
        artifacts.load(ref(model="random-forest", root=tmp_path))


def test_the_identity_checks_every_name_once_and_computes_one_path(tmp_path):
    assert ModelRef("SELECTED_CICIDS", "multi_class", "decision-tree", "grouped", tmp_path).directory == (
        tmp_path / "cicids2017" / "multi_class-grouped" / "decision-tree")
    assert ref("multi_class", level="label", root=tmp_path).directory.parent.name == "multi_class"  # the default level
    for bad, words in [({"dataset": "kdd"}, "unknown dataset"), ({"task": "regression"}, "unknown task"),
                       ({"model": "svm"}, "unknown model"), ({"level": "fine"}, "unknown label level 'fine'")]:
        with pytest.raises(ConfigError, match=words):
            ModelRef(**{"dataset": "cicids2017", "task": "multi_class", "model": "decision-tree", **bad})
    with pytest.raises(ConfigError, match="no benign/attack split"):
        ModelRef("netml", "binary_class", "decision-tree")


def test_pipeline_scores_inf_and_nan_rows(models_dir):
    trained = artifacts.load(ref(model="random-forest", root=models_dir))
    x = np.full((3, len(trained.features)), np.nan)
    x[1, :] = np.inf
    x[2, :] = -np.inf
    labels, scores = trained.predict(x)
    assert len(labels) == 3 and set(labels) <= {"benign", "attack"}
    assert ((scores > 0) & (scores <= 1)).all()


def test_predict_matches_the_pipeline(models_dir, cicids):
    trained = artifacts.load(ref("multi_class", root=models_dir))
    x = trained.held_out(cicids).features.to_numpy()[:300]
    labels, _ = trained.predict(x)
    assert (labels == trained.pipeline.predict(x)).all()


def test_held_out_rows_are_the_cards_split(models_dir, cicids):
    trained = artifacts.load(ref(root=models_dir))
    _, test = cicids.split_index(seed=trained.card.seed, mode=trained.card.split_mode)
    assert list(trained.held_out(cicids).ids) == list(cicids.ids.iloc[test])
    assert len(trained.held_out(cicids)) == trained.card.test_rows


def test_same_seed_same_predictions(tmp_path, cicids):
    a = training.train(ref("binary_class", "logistic-regressor", tmp_path / "a"), cicids)
    b = training.train(ref("binary_class", "logistic-regressor", tmp_path / "b"), cicids)
    x = a.held_out(cicids).features.to_numpy()
    assert (a.pipeline.predict(x) == b.pipeline.predict(x)).all()
    assert json.loads((a.path / "model.json").read_text())["metrics"] == b.card.metrics


def test_hyperparameters_override_and_bad_ones_fail():
    assert zoo.build_pipeline("decision-tree", {"max_depth": 3})[-1].max_depth == 3
    with pytest.raises(ConfigError, match="bad hyperparameter"):
        zoo.build_pipeline("decision-tree", {"depth": 3})


# --- a model never scores data it does not match -----------------------------------------------------


def test_a_model_matches_its_own_data(models_dir, cicids):
    for task in ("binary_class", "multi_class"):
        card = artifacts.load(ref(task, root=models_dir)).card
        assert artifacts.mismatches(card, cicids) == []


def test_mismatches_name_the_missing_features_the_level_and_the_dataset(models_dir, cicids):
    grouped_only = datasets.load("cicids2017", "csv-sample")  # 2017 columns, grouped labels
    binary = artifacts.load(ref(root=models_dir)).card
    [features] = artifacts.mismatches(binary, grouped_only)
    assert features.startswith("it needs 7 feature(s) the data lacks: Dst Port, Protocol, Fwd RST Flags")
    multi = artifacts.load(ref("multi_class", root=models_dir)).card
    problems = artifacts.mismatches(multi, grouped_only)
    assert problems[1] == "its classes are at label level 'label', the data's labels at 'grouped'"
    assert artifacts.mismatches(multi, datasets.load("nsl-kdd")) == [
        "it was trained on cicids2017, the data is nsl-kdd"]


def test_data_whose_classes_the_model_never_learnt_is_refused(models_dir, cicids):
    card = artifacts.load(ref("multi_class", root=models_dir)).card
    head = cicids.take(np.arange(50))
    zeroday = head.labels.map(lambda _: "Zeroday")
    renamed = dataclasses.replace(head, labels=zeroday, levels={**head.levels, "label": zeroday})
    assert artifacts.mismatches(card, renamed) == ["it learnt none of the data's classes (Zeroday)"]


def test_a_level_the_data_lacks_is_a_data_error_naming_the_ones_it_has():
    with pytest.raises(DataError, match=r"has no labels at level 'label' \(only grouped\); pass --level grouped"):
        datasets.load("cicids2017", "csv-sample", level="label")


def test_card_keeps_a_drift_reference_of_its_training_rows_and_held_out_scores(models_dir, cicids):
    trained = artifacts.load(ref(root=models_dir))
    reference = trained.reference()
    assert reference.names == trained.features and reference.rows == trained.card.train_rows
    assert reference.score_rows == trained.card.test_rows and 0.5 <= reference.score_mean <= 1
    # the held-out attack rate is the share of held-out rows predicted as attacks
    labels, _ = trained.predict(trained.held_out(cicids).features.to_numpy(dtype=np.float64))
    assert reference.attack_rate == pytest.approx(np.mean(labels == "attack"))
    assert reference.benign_labels == ["BENIGN", "benign"]


def test_an_older_card_without_a_reference_loads_and_drift_names_the_retrain_command(models_dir, tmp_path):
    src = ref(root=models_dir).directory
    dst = tmp_path / "cicids2017" / "binary_class" / "decision-tree"
    dst.mkdir(parents=True)
    card = json.loads((src / "model.json").read_text())
    del card["drift_reference"]
    (dst / "model.json").write_text(json.dumps(card))
    for name in ("model.joblib", artifacts.TRAIN_VECTORS):
        (dst / name).write_bytes((src / name).read_bytes())
    old = artifacts.load(ref(root=tmp_path))  # loads as before
    with pytest.raises(ModelError, match="no drift reference") as err:
        old.reference()
    assert f"kstream train -d cicids2017 -t binary_class -m decision-tree --models-dir {tmp_path}" in str(err.value)
    assert "\n" not in str(err.value)
