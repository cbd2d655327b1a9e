"""Inference with a fitted Pipeline: :class:`Scorer` gives its ``predict_proba`` with less fixed cost per call.

A random forest's ``predict_proba`` in scikit-learn hands each tree to joblib, even with
``n_jobs=1``: about 8 ms per call on a 100-tree forest however few rows it scores, which is most
of the cost of a small batch and sets the detector's latency floor. For a forest that runs its
trees one after another (``n_jobs`` None or 1), :class:`Scorer` runs the Pipeline's preprocessing
steps, checks the input once as the forest does, then has each fitted tree (its ``tree_``) predict
in the forest's order and sums their probabilities into one array, as scikit-learn's sequential
path does, and divides by the number of trees. Same trees, same float32 input, same order of
additions: the result is bit for bit scikit-learn's (the tests check it on real and crafted rows).
Rows that are not all finite once in float32 (a missing value the trees route, or an infinity
scikit-learn refuses) and any other final step are left to scikit-learn itself.

The preprocessing steps run one after another as the Pipeline runs them. A fitted ``SimpleImputer``
that fills NaN from its statistics (no indicator, default output) fills a float64 array without
its input checks, which cost about 0.15 ms a call: the same statistics written into the same
places. An array it would refuse or convert (another dtype, another width, an infinity) goes to its
own ``transform``.

>>> import numpy as np
>>> from sklearn.ensemble import RandomForestClassifier
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> x = np.arange(40, dtype=float).reshape(20, 2)
>>> pipe = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0))
>>> pipe = pipe.fit(x, [0] * 10 + [1] * 10)
>>> scorer = Scorer(pipe)
>>> scorer.summed, np.array_equal(scorer.predict_proba(x), pipe.predict_proba(x))
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sklearn
from sklearn.ensemble._forest import ForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

__all__ = ["Scorer"]


class Scorer:
    """``predict_proba`` of ``pipeline``; a forest's trees are summed in a plain loop (see the module docstring).

    ``summed`` says whether that loop is used (False: the Pipeline scores, unchanged).
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        steps = len(pipeline) if isinstance(pipeline, Pipeline) else 1
        final = pipeline[-1] if isinstance(pipeline, Pipeline) else pipeline
        self._forest: Any = final if _sequential_forest(final) else None
        # the preprocessing steps, run as the Pipeline runs them (None and "passthrough" do nothing)
        before = pipeline.steps[:-1] if self._forest is not None and steps > 1 else []
        self._before = [(step, _fill_values(step)) for _, step in before if step not in (None, "passthrough")]
        self._trees = [tree.tree_ for tree in final.estimators_] if self._forest is not None else []

    @property
    def summed(self) -> bool:
        """Whether the forest's trees are summed here (False: the Pipeline scores)."""
        return self._forest is not None

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities of each row of ``x``, in the order of the Pipeline's ``classes_``."""
        forest = self._forest
        if forest is None:
            return self.pipeline.predict_proba(x)
        for step, fill in self._before:
            x = _filled(x, fill) if fill is not None and _fillable(x, fill) else step.transform(x)
        # what the forest's own input check gives its trees: C-ordered float32, the width it was fitted on
        with np.errstate(over="ignore"):
            x32 = np.ascontiguousarray(x, dtype=np.float32)
        if x32.ndim != 2 or x32.shape[1] != forest.n_features_in_:
            raise ValueError(f"X has {x32.shape[-1] if x32.ndim else 0} features, but {type(forest).__name__} "
                             f"is expecting {forest.n_features_in_} features as input")
        if not np.isfinite(x32).all():
            return forest.predict_proba(x)  # scikit-learn decides: it routes a missing value or refuses infinity
        classes = forest.n_classes_
        total = np.zeros((x32.shape[0], classes), dtype=np.float64)
        for tree in self._trees:  # what each tree's predict_proba returns, without its per-call checks
            total += tree.predict(x32)[:, :classes]
        total /= len(forest.estimators_)
        return total


def _sequential_forest(step: Any) -> bool:
    """A fitted single-output forest classifier whose trees scikit-learn runs one after another."""
    return (isinstance(step, ForestClassifier) and hasattr(step, "estimators_")
            and getattr(step, "n_outputs_", 0) == 1 and step.n_jobs in (None, 1)
            and all(type(tree).predict_proba is DecisionTreeClassifier.predict_proba for tree in step.estimators_))


def _fill_values(step: Any) -> np.ndarray | None:
    """A fitted SimpleImputer's value for each column when it only writes them over NaN, else None."""
    if type(step) is not SimpleImputer or not hasattr(step, "statistics_") or step.add_indicator:
        return None
    missing = step.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)) or getattr(step, "_sklearn_output_config", {}):
        return None
    stats = np.asarray(step.statistics_)
    if stats.dtype != np.float64 or stats.ndim != 1 or getattr(step, "_fill_dtype", None) != np.float64 \
            or (np.isnan(stats).any() and not step.keep_empty_features):
        return None  # columns it would drop, or values of another type: its own transform decides
    return stats


def _fillable(x: Any, fill: np.ndarray) -> bool:
    """Whether the imputer's own checks would pass ``x`` through as it is (float64, its width, no infinity) and
    it would return an array (no ``transform_output`` set for all of scikit-learn)."""
    return (type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == 2 and x.shape[1] == len(fill)
            and not np.isinf(x).any() and sklearn.get_config()["transform_output"] == "default")


def _filled(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``x`` with each NaN replaced by its column's value (a new array, as the imputer's copy)."""
    return np.where(np.isnan(x), fill, x)
