"""Online learners: classifiers that go on learning from labels after their first fit, one micro-batch at a time.

Each is a scikit-learn classifier with ``partial_fit`` beside ``fit``, the last step of a Pipeline built by
:func:`kstream.modeling.zoo.build_pipeline` like every model of the zoo: the Pipeline's selection,
clean-up, imputation (and, for the linear model, scaling) are fitted once, on the training split, and stay
as they are; only the classifier learns from the labels that come later (:func:`learn`). So what was
trained and then updated is exactly what streams.

- ``hoeffding-adaptive-tree`` and ``adaptive-random-forest``: River's Hoeffding Adaptive Tree and Adaptive
  Random Forest (each with ADWIN drift detectors inside), through :class:`RiverClassifier`. River learns
  and predicts one row at a time, in Python: a micro-batch is one call here, but the cost per row stays
  River's (docs/performance.md measures it). A class first seen in a label is learned like any other.
- ``sgd-classifier``: scikit-learn's ``SGDClassifier`` (logistic loss) through :class:`SGDLearner`, vectorised.
  Its classes are the training split's; a label of another class cannot be learned by it and is skipped.

>>> import numpy as np
>>> y = np.array(["benign", "attack"] * 300)
>>> x = np.random.default_rng(0).normal(size=(600, 2)) + 3 * (y == "attack")[:, None]
>>> clf = RiverClassifier("hoeffding-adaptive-tree").fit(x, y)
>>> clf.classes_.tolist(), clf.predict(x[:4]).tolist()
(['attack', 'benign'], ['benign', 'attack', 'benign', 'attack'])
>>> clf.partial_fit(np.array([[5.0, 5.0]]), np.array(["dos"])).classes_.tolist()
['attack', 'benign', 'dos']
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_class_weight

__all__ = ["LEARNERS", "RiverClassifier", "SGDLearner", "build_learner", "learn", "is_online"]

#: The online learners of the zoo, by name.
LEARNERS = ("hoeffding-adaptive-tree", "adaptive-random-forest", "sgd-classifier")


def is_online(pipeline: Pipeline) -> bool:
    """True when the Pipeline's classifier can go on learning (:func:`learn`)."""
    return hasattr(pipeline.steps[-1][1], "partial_fit")


def build_learner(name: str, seed: int, class_weight: str = "balanced") -> Any:
    """The unfitted classifier of online learner ``name`` (a Pipeline's last step)."""
    if name == "sgd-classifier":
        return SGDLearner(class_weight=class_weight, seed=seed)
    return RiverClassifier(name, seed=seed)


def learn(pipeline: Pipeline, x: np.ndarray, y: np.ndarray) -> int:
    """Update the fitted Pipeline's classifier with labelled rows ``x`` (raw features, the card's order), in
    order; the steps before it transform them as they were fitted. Returns how many rows it learned (an
    ``sgd-classifier`` skips the rows of classes it was not trained on).

    >>> from kstream.modeling import zoo
    >>> x = np.array([[0.0, 1.0], [1.0, 0.0]] * 20)
    >>> y = np.array(["benign", "attack"] * 20)
    >>> pipe = zoo.build_pipeline("sgd-classifier").fit(x, y)
    >>> learn(pipe, x[:4], y[:4]), learn(pipe, x[:1], np.array(["dos"]))
    (4, 0)
    """
    if len(x) == 0:
        return 0
    rows = pipeline[:-1].transform(x)
    return pipeline.steps[-1][1].learn(rows, np.asarray(y))


class _Learns:
    """``partial_fit`` for a classifier with ``fit`` and ``learn``: the first call fits, later ones learn."""

    def partial_fit(self, x: np.ndarray, y: np.ndarray, classes: Any = None) -> Any:
        if not hasattr(self, "model_"):
            return self.fit(x, y)  # type: ignore[attr-defined]
        self.learn(x, y)  # type: ignore[attr-defined]
        return self


class RiverClassifier(_Learns, ClassifierMixin, BaseEstimator):
    """A River classifier (``kind``: ``hoeffding-adaptive-tree`` or ``adaptive-random-forest``) as a
    scikit-learn one: ``fit`` learns the rows one by one in order, ``partial_fit`` goes on, ``predict_proba``
    has a column per class of ``classes_`` (sorted; it grows when a new class is learned)."""

    def __init__(self, kind: str = "hoeffding-adaptive-tree", seed: int = 42, n_models: int = 10) -> None:
        self.kind = kind
        self.seed = seed
        self.n_models = n_models

    def _new(self) -> Any:
        from river import forest, tree  # imported on use: the batch models never pay for it

        if self.kind == "hoeffding-adaptive-tree":
            return tree.HoeffdingAdaptiveTreeClassifier(seed=self.seed)
        if self.kind == "adaptive-random-forest":
            return forest.ARFClassifier(n_models=self.n_models, seed=self.seed)
        raise ValueError(f"unknown River learner {self.kind!r}; choose hoeffding-adaptive-tree or "
                         "adaptive-random-forest")

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> RiverClassifier:
        self.model_ = self._new()
        self.classes_ = np.array([], dtype=object)
        self.learn(x, y)
        return self

    def learn(self, x: np.ndarray, y: np.ndarray) -> int:
        """Learn the rows in order; returns how many (all of them)."""
        y = np.asarray(y)
        new = np.setdiff1d(np.unique(y.astype(str)), self.classes_.astype(str))
        if len(new):
            self.classes_ = np.array(sorted({*self.classes_.tolist(), *new.tolist()}), dtype=object)
        model = self.model_
        for row, label in zip(np.asarray(x, dtype=np.float64).tolist(), y.tolist()):
            model.learn_one(dict(enumerate(row)), label)
        return len(y)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        out = np.zeros((len(x), len(index)))
        model = self.model_
        for i, row in enumerate(np.asarray(x, dtype=np.float64).tolist()):
            for label, p in model.predict_proba_one(dict(enumerate(row))).items():
                j = index.get(label)
                if j is not None:
                    out[i, j] = p
        sums = out.sum(axis=1, keepdims=True)
        return np.divide(out, sums, out=np.full_like(out, 1 / max(1, len(index))), where=sums > 0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(x), axis=1)]


class SGDLearner(_Learns, ClassifierMixin, BaseEstimator):
    """scikit-learn's ``SGDClassifier`` with logistic loss, fitted on the training split and then updated one
    pass per micro-batch, rows in order (no shuffle). ``class_weight="balanced"`` weighs each class by the training
    split's counts, fixed at ``fit`` (``partial_fit`` cannot recount them); ``sqrt`` by their square root."""

    def __init__(self, class_weight: str = "balanced", seed: int = 42, alpha: float = 1e-4) -> None:
        self.class_weight = class_weight
        self.seed = seed
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> SGDLearner:
        y = np.asarray(y)
        classes = np.unique(y)
        weights = np.ones(len(classes))
        if self.class_weight in ("balanced", "sqrt"):
            weights = compute_class_weight("balanced", classes=classes, y=y)
            if self.class_weight == "sqrt":
                weights = np.sqrt(weights)
        self.weights_ = dict(zip(classes.tolist(), weights.tolist()))
        self.model_ = SGDClassifier(loss="log_loss", alpha=self.alpha, shuffle=False, random_state=self.seed,
                                    max_iter=50, tol=1e-4)
        self.model_.fit(x, y, sample_weight=self._weights(y))
        self.classes_ = self.model_.classes_
        return self

    def _weights(self, y: np.ndarray) -> np.ndarray:
        return np.array([self.weights_.get(label, 1.0) for label in y.tolist()])

    def learn(self, x: np.ndarray, y: np.ndarray) -> int:
        """One pass over the rows of known classes, in order; returns how many it learned."""
        y = np.asarray(y)
        known = np.isin(y, self.classes_)
        if known.any():
            self.model_.partial_fit(np.asarray(x)[known], y[known], sample_weight=self._weights(y[known]))
        return int(known.sum())

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict(x)
