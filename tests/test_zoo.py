"""Contract tests over the whole model zoo: every registered dataset x task x model.

The grid is trained once per session on the bundled samples (as `kstream train --all`
does); each combination is then checked on its own.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from kstream.data import datasets
from kstream.data.datasets import TASKS
from kstream.errors import ConfigError
from kstream.modeling import artifacts, training, zoo
from kstream.modeling.artifacts import ModelRef

GRID = list(itertools.product(datasets.available(), TASKS, zoo.MODELS))
DEFINED = [g for g in GRID if g[1] in datasets.spec(g[0]).tasks]
UNDEFINED = [g for g in GRID if g[1] not in datasets.spec(g[0]).tasks]


@pytest.fixture(scope="session")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    refs, skipped = training.grid(models_dir=root)
    rows = training.train_grid(refs, progress=False, jobs=2)  # in two processes, as `kstream train --all --jobs 2`
    return root, {(r["dataset"], r["task"], r["model"]): r for r in rows}, skipped


@pytest.fixture(scope="session")
def loaded(samples):
    return samples


def test_the_grid_covers_every_dataset_and_model():
    assert {d for d, _, _ in DEFINED} == set(datasets.available())
    assert {m for _, _, m in DEFINED} == set(zoo.MODELS)


@pytest.mark.parametrize("dataset, task, model", DEFINED)
def test_defined_combination_trains_round_trips_and_predicts_its_classes(grid, loaded, dataset, task, model):
    root, rows, _ = grid
    assert rows[(dataset, task, model)]["status"] == "trained"
    trained = artifacts.load(ModelRef(dataset, task, model, models_dir=root))  # checks the sha256 against the card
    card = trained.card
    ds = loaded[dataset]
    assert card.features == ds.feature_names
    assert set(card.classes) == set(ds.target(task))
    _, test = ds.split_index(seed=card.seed, mode=card.split_mode)
    x = ds.features.to_numpy()[test]
    labels, scores = trained.predict(x)
    assert set(labels) <= set(card.classes)
    assert ((scores > 0) & (scores <= 1 + 1e-9)).all()
    assert (labels == trained.pipeline.predict(x)).all()
    m = card.metrics
    assert m["rows"] == len(test) == card.test_rows
    assert card.split_mode == "grouped"
    if ds.test_mask is None:
        assert m["seen_in_training"] == 0  # the grouped split: no held-out row repeats a training row's vector
    else:  # NSL-KDD's official files share a few vectors: reported, not hidden
        assert 0 < m["seen_in_training"] < 0.01 * m["rows"] and m["unseen"]["rows"] == m["rows"] - m["seen_in_training"]
    assert m["accuracy"] <= m["ceiling"] + 1e-12 and card.conflicts["rows"] == len(ds)
    assert np.array(m["confusion_matrix"]).sum() == len(test)
    if task == "binary_class":
        assert 0 <= m["far"] <= 1 and 0 <= m["tpr"] <= 1
        assert m["netml_overall"] == pytest.approx(m["tpr"] * (1 - m["far"]))
    else:
        assert m["netml_overall"] == pytest.approx(m["netml_f1"] * m["netml_map"])
    y_test = ds.target(task).to_numpy()[test]
    majority = pd.Series(y_test).mode()[0]
    trivial = f1_score(y_test, np.full(len(y_test), majority), average="macro", zero_division=0)
    assert m["macro_f1"] > trivial + 0.05, "every model must beat always answering the majority class"


@pytest.mark.parametrize("dataset, task, model", DEFINED)
def test_no_leaky_column_is_ever_a_feature(grid, dataset, task, model):
    root, _, _ = grid
    card = artifacts.load(ModelRef(dataset, task, model, models_dir=root)).card
    for name in card.features:
        assert not datasets.is_leaky(name), f"{name} must never reach a model"
    selection = card.feature_selection
    assert selection["input"] == len(card.features)
    assert selection["kept"] + len(selection["dropped"]["constant"]) + len(selection["dropped"]["duplicate"]) == len(
        card.features
    )
    assert selection["excluded_by_loader"], "the card must say which source columns were left out and why"


@pytest.mark.parametrize("dataset, task, model", UNDEFINED)
def test_undefined_combination_is_left_out_of_the_grid_and_cannot_be_named(dataset, task, model, grid):
    _, rows, skipped = grid
    assert (dataset, task, model) not in rows
    assert any(reason.startswith(f"{dataset} (") and "use -t multi_class" in reason for reason in skipped)
    with pytest.raises(ConfigError, match="use -t multi_class"):
        ModelRef(dataset, task, model)


def test_selection_drops_constant_and_duplicate_columns_inside_the_pipeline(tmp_path, loaded):
    ds = loaded["cicids2017"]
    trained = training.train(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=tmp_path), ds)
    dropped = trained.card.feature_selection["dropped"]
    train_rows, _ = ds.split_index(seed=trained.card.seed, mode=trained.card.split_mode)
    x = ds.features.iloc[train_rows]
    for name in dropped["constant"]:
        assert x[name].nunique(dropna=True) <= 1
    for name, twin in dropped["duplicate"].items():
        assert x[name].equals(x[twin])
    assert dropped["constant"], "the bundled CICIDS2017 sample has constant columns (e.g. the bulk-rate ones)"
    # the saved Pipeline takes the full card feature list and drops the same columns itself
    assert trained.pipeline.named_steps["select"].n_features_in_ == len(trained.card.features)


@pytest.mark.parametrize("model", zoo.MODELS)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # few iterations: determinism is asked
def test_same_seed_gives_the_same_predictions(model, tmp_path, loaded):
    ds = loaded["nsl-kdd"]
    x = ds.features.to_numpy()[:2000]
    a = training.train(ModelRef("nsl-kdd", "multi_class", model, models_dir=tmp_path / "a"), ds, _small(model))
    b = training.train(ModelRef("nsl-kdd", "multi_class", model, models_dir=tmp_path / "b"), ds, _small(model))
    assert (a.pipeline.predict(x) == b.pipeline.predict(x)).all()
    assert json.dumps(a.card.metrics, sort_keys=True) == json.dumps(b.card.metrics, sort_keys=True)


def _small(model: str) -> dict:
    return {"random-forest": {"n_estimators": 20}, "hist-gradient-boosting": {"max_iter": 30},
            "logistic-regressor": {"max_iter": 100}}.get(model, {})


@pytest.fixture(scope="module")
def balanced_netml(loaded, tmp_path_factory):
    """The default-weighted multi-class logistic regressor on NetML: trained once for both comparisons."""
    ref = ModelRef("netml", "multi_class", "logistic-regressor", models_dir=tmp_path_factory.mktemp("balanced"))
    return training.train(ref, loaded["netml"])


@pytest.mark.parametrize("weighting", ["sqrt", "none"])
def test_class_weighting_choices_change_the_fit_and_are_recorded(weighting, tmp_path, loaded, balanced_netml):
    ds, base = loaded["netml"], balanced_netml
    other = training.train(ModelRef("netml", "multi_class", "logistic-regressor", models_dir=tmp_path / "o"), ds,
                           class_weight=weighting)
    assert base.card.params["class_weighting"] == "balanced" and base.card.params["class_weight"] == "balanced"
    assert other.card.params["class_weighting"] == weighting and other.card.params["class_weight"] is None
    _, test = ds.split_index(seed=base.card.seed, mode=base.card.split_mode)
    x = ds.features.to_numpy()[test]
    # balanced weighting pulls predictions towards rare classes; the milder choices predict them less
    rare = ds.target("multi_class").value_counts().index[-3:]
    assert np.isin(base.pipeline.predict(x), rare).sum() > np.isin(other.pipeline.predict(x), rare).sum()


def test_unknown_class_weighting_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="balanced, sqrt, none"):
        training.train(ModelRef("netml", "multi_class", "decision-tree", models_dir=tmp_path), datasets.load("netml"),
                       class_weight="inverse")
