"""The model zoo: which classifiers kstream trains, each built as a whole scikit-learn Pipeline.

What was trained is exactly what streams: the Pipeline holds the feature selection, the clean-up
of real CICFlowMeter rows (inf -> NaN, finite values beyond float32 clipped, median imputation)
and, where the classifier needs it, scaling, so the detector feeds it raw feature values in the
model card's order. Every classifier has a fixed ``random_state`` and weighs classes against the
heavy imbalance of flow data (:data:`CLASS_WEIGHTS`).

>>> build_pipeline("decision-tree").steps[-1][0]
'classifier'
>>> check_model("svm")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
kstream.errors.ConfigError: unknown model 'svm'; choose one of: logistic-regressor, decision-tree, random-forest,
    hist-gradient-boosting, hoeffding-adaptive-tree, adaptive-random-forest, sgd-classifier
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from kstream.data.datasets import DEFAULT_SEED
from kstream.errors import ConfigError
from kstream.modeling.online import LEARNERS, build_learner
from kstream.modeling.selection import DropConstantAndDuplicate

__all__ = ["MODELS", "LEARNERS", "ALL_MODELS", "CLASS_WEIGHTS", "MISSING_POLICY", "check_model", "check_class_weight",
           "build_pipeline",
           "sample_weights", "finite_or_nan"]

MODELS = ("logistic-regressor", "decision-tree", "random-forest", "hist-gradient-boosting")
#: every name ``-m`` takes: the batch models, then the online learners (:mod:`kstream.modeling.online`)
ALL_MODELS = MODELS + LEARNERS
CLASS_WEIGHTS = ("balanced", "sqrt", "none")
MISSING_POLICY = "null, NaN, +inf and -inf are imputed with the training median of the feature"
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # trees cast to float32: larger finite values are clipped to this


def check_model(name: str) -> str:
    """``name`` if it is a model of the zoo, else a ConfigError naming the choices."""
    if name not in ALL_MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(ALL_MODELS)}")
    return name


def check_class_weight(name: str) -> str:
    """``name`` if it is a class weighting kstream knows, else a ConfigError naming the choices."""
    if name not in CLASS_WEIGHTS:
        raise ConfigError(f"unknown class weighting {name!r}; choose one of: {', '.join(CLASS_WEIGHTS)}")
    return name


def finite_or_nan(x: np.ndarray) -> np.ndarray:
    """Replace +/-inf by NaN so the imputer treats them as missing, and clip finite values to float32's range.

    scikit-learn's trees cast their input to float32 and refuse values beyond its range, so a
    flow holding 1e300 would fail to score; clipped to float32's largest value, it is scored
    as the extreme value it is (for every split it lies on the same side as 1e300 would).

    >>> finite_or_nan(np.array([[1.0, np.inf, -np.inf]])).tolist()
    [[1.0, nan, nan]]
    >>> finite_or_nan(np.array([[1e300, -1e39, np.nan]])).tolist()
    [[3.4028234663852886e+38, -3.4028234663852886e+38, nan]]
    """
    x = np.array(x, dtype=np.float64)  # copy: never modify the caller's batch
    x[~np.isfinite(x)] = np.nan
    np.clip(x, -_FLOAT32_MAX, _FLOAT32_MAX, out=x)  # NaN stays NaN
    return x


def build_pipeline(
    model: str,
    params: dict[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    feature_names: list[str] | None = None,
    class_weight: str = "balanced",
) -> Pipeline:
    """An unfitted Pipeline for ``model``: selection, clean-up, imputation, (scaling,) classifier.

    ``params`` override the classifier's hyperparameters, e.g. ``{"max_depth": 8}``. With
    ``class_weight`` other than ``balanced`` the classifier's own weighting is switched off
    (``sqrt`` then comes in as sample weights, see :func:`sample_weights`).
    """
    check_model(model)
    params = dict(params or {})
    if check_class_weight(class_weight) != "balanced":
        params["class_weight"] = None
    steps: list[tuple[str, Any]] = [
        ("select", DropConstantAndDuplicate(feature_names)),
        ("finite", FunctionTransformer(finite_or_nan)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
    ]
    if model in LEARNERS:  # fitted on the training split, then updated from labels (kstream.modeling.online)
        if model == "sgd-classifier":
            steps.append(("scale", StandardScaler()))
        clf = build_learner(model, seed, class_weight)
        params.pop("class_weight", None)  # the learner takes the weighting itself
    elif model == "logistic-regressor":
        steps.append(("scale", StandardScaler()))
        clf = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    elif model == "decision-tree":
        clf = DecisionTreeClassifier(class_weight="balanced", random_state=seed)
    elif model == "random-forest":
        # n_jobs=1: predicting a micro-batch on threads costs more than it saves.
        clf = RandomForestClassifier(
            n_estimators=100, class_weight="balanced_subsample", n_jobs=1, random_state=seed
        )
    else:
        clf = HistGradientBoostingClassifier(max_iter=200, class_weight="balanced", random_state=seed)
    try:
        clf.set_params(**params)
    except ValueError as err:
        raise ConfigError(f"bad hyperparameter for {model}: {err}") from None
    steps.append(("classifier", clf))
    return Pipeline(steps)


def sample_weights(y: np.ndarray, class_weight: str) -> np.ndarray | None:
    """Per-row training weights for ``class_weight`` (None when the classifier weighs itself).

    ``balanced`` weighs each class by n / (k * n_class) inside the classifier; ``sqrt`` by the
    square root of that (rare classes still count more, without swamping the common ones);
    ``none`` leaves rows equal.

    >>> sample_weights(np.array(["a", "a", "a", "b"]), "sqrt").round(3).tolist()
    [0.816, 0.816, 0.816, 1.414]
    """
    if check_class_weight(class_weight) != "sqrt":
        return None
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    weight = np.sqrt(len(y) / (len(classes) * counts))
    return weight[inverse]
