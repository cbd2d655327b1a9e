"""The Scorer gives scikit-learn's probabilities bit for bit, for forests it sums itself and for every other model."""

import numpy as np
import pytest
import sklearn
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

from kstream.modeling import artifacts
from kstream.modeling.artifacts import ModelRef
from kstream.modeling.scorer import Scorer


def crafted(width: int, rng: np.random.Generator) -> np.ndarray:
    """Rows a hostile or broken sender could produce: NaN, infinities, huge, tiny, negative and zero values."""
    specials = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 5e-324, -0.0, 0.0, 3.4e38, 3.5e38, -1.0])
    x = rng.choice(specials, size=(64, width))
    x[::2] = rng.normal(0, 1e6, size=(32, width))  # and plain rows between them
    return x


@pytest.mark.parametrize("model", ["random-forest", "decision-tree"])
def test_a_trained_model_scores_held_out_and_crafted_rows_exactly_as_its_pipeline(models_dir, cicids, model):
    trained = artifacts.load(ModelRef("cicids2017", "binary_class", model, models_dir=models_dir))
    scorer = Scorer(trained.pipeline)
    assert scorer.summed is (model == "random-forest")
    held_out = trained.held_out(cicids).features[trained.features].to_numpy()
    for x in (held_out, held_out[:1], crafted(held_out.shape[1], np.random.default_rng(7))):
        assert np.array_equal(scorer.predict_proba(x), trained.pipeline.predict_proba(x))
    labels, scores = trained.predict(held_out)
    proba = trained.pipeline.predict_proba(held_out)
    assert np.array_equal(labels, trained.pipeline.classes_[proba.argmax(axis=1)])
    assert np.array_equal(scores, proba.max(axis=1))


@pytest.mark.parametrize("forest", [RandomForestClassifier, ExtraTreesClassifier])
def test_a_multi_class_forest_with_missing_values_is_summed_exactly(forest):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 6))
    y = np.array(["dos", "benign", "scan", "bruteforce"])[(x[:, 0] > 0) + 2 * (x[:, 1] > 0.5)]
    x[rng.random(x.shape) < 0.1] = np.nan  # trees in scikit-learn route missing values themselves
    pipe = forest(n_estimators=25, max_features=3, random_state=0).fit(x, y)
    with_steps = make_pipeline(SimpleImputer(), forest(n_estimators=25, random_state=1)).fit(x, y)
    alone = make_pipeline(forest(n_estimators=25, random_state=2)).fit(x, y)  # a Pipeline of the forest only
    for fitted in (pipe, with_steps, alone):
        scorer = Scorer(fitted)
        assert scorer.summed
        for test in (rng.normal(size=(200, 6)), np.where(rng.random((50, 6)) < 0.2, np.nan, rng.normal(size=(50, 6)))):
            got = scorer.predict_proba(test)
            assert got.shape == (len(test), 4) and np.array_equal(got, fitted.predict_proba(test))
    for bad in (np.full((1, 6), np.inf), np.full((1, 6), 1e300)):  # infinite, or once in float32: refused as before
        with pytest.raises(ValueError, match="infinity"):
            Scorer(pipe).predict_proba(bad)


def test_a_forest_on_threads_or_of_several_outputs_is_left_to_scikit_learn():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 3)), rng.integers(0, 2, size=100)
    threaded = RandomForestClassifier(n_estimators=4, n_jobs=2, random_state=0).fit(x, y)
    two_outputs = RandomForestClassifier(n_estimators=4, random_state=0).fit(x, np.c_[y, 1 - y])
    for fitted in (threaded, two_outputs):
        assert not Scorer(fitted).summed
    assert np.array_equal(Scorer(threaded).predict_proba(x), threaded.predict_proba(x))


def test_rows_of_the_wrong_width_are_refused_before_any_tree_reads_them():
    rng = np.random.default_rng(0)
    fitted = RandomForestClassifier(n_estimators=3, random_state=0).fit(rng.normal(size=(50, 5)), [0, 1] * 25)
    for bad in (np.zeros((2, 4)), np.zeros((2, 6)), np.zeros(5)):
        with pytest.raises(ValueError, match="features"):
            Scorer(fitted).predict_proba(bad)


def test_an_imputer_fills_plain_arrays_itself_and_leaves_the_rest_to_scikit_learn(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 5))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[:, 3] = np.nan  # a column never seen: kept and filled (keep_empty_features), or dropped by the imputer
    y = (np.nan_to_num(x[:, 0]) > 0).astype(int)
    keeps = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                          RandomForestClassifier(n_estimators=10, random_state=0)).fit(x, y)
    drops = make_pipeline(SimpleImputer(), RandomForestClassifier(n_estimators=10, random_state=0)).fit(x, y)
    test = np.where(rng.random((80, 5)) < 0.3, np.nan, rng.normal(size=(80, 5)))
    for fitted in (keeps, drops):
        assert np.array_equal(Scorer(fitted).predict_proba(test), fitted.predict_proba(test))
        assert np.array_equal(Scorer(fitted).predict_proba(test.astype(np.float32)),
                              fitted.predict_proba(test.astype(np.float32)))
    with pytest.raises(ValueError, match="infinity"):  # the imputer's own check, as in the Pipeline
        Scorer(keeps).predict_proba(np.full((1, 5), np.inf))
    calls: list[np.dtype] = []
    real = SimpleImputer.transform
    monkeypatch.setattr(SimpleImputer, "transform", lambda self, a: calls.append(a.dtype) or real(self, a))
    scorer_keeps, scorer_drops = Scorer(keeps), Scorer(drops)
    scorer_keeps.predict_proba(test)  # float64 of its width: filled here
    scorer_keeps.predict_proba(test.astype(np.float32))  # another dtype: the imputer converts it itself
    scorer_drops.predict_proba(test)  # it drops a column: its own transform
    assert calls == [np.float32, np.float64]
    with sklearn.config_context(transform_output="pandas"):  # set for all of scikit-learn: the imputer's own output
        assert np.array_equal(scorer_keeps.predict_proba(test), keeps.predict_proba(test))
    assert calls[2:] == [np.float64, np.float64]
