"""Train, save and load the classifiers, each a whole scikit-learn Pipeline.

What was trained is exactly what streams: the saved object is the Pipeline,
with the clean-up of real CICFlowMeter rows (inf -> NaN, median imputation)
inside it, so the detector feeds it raw feature values in the card's order.
Beside every ``model.joblib`` lies its card, ``model.json``: dataset, task,
features, classes, held-out metrics, library versions and the file's sha256.
:func:`load` refuses an artifact whose hash does not match its card, because
a joblib file is a pickle and loading an untrusted one runs code.

>>> build_pipeline("decision-tree").steps[-1][0]
'classifier'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from kstream import datasets
from kstream.config import MODELS_DIR
from kstream.errors import ConfigError, ModelError

__all__ = [
    "MODELS",
    "ModelCard",
    "TrainedModel",
    "build_pipeline",
    "resolve_model_name",
    "artifact_dir",
    "train",
    "save",
    "load",
    "sha256_file",
]

log = logging.getLogger(__name__)

MODELS = ("logistic-regressor", "decision-tree", "random-forest")
SEED = 42
MISSING_POLICY = "null, NaN, +inf and -inf are imputed with the training median of the feature"


def finite_or_nan(x: np.ndarray) -> np.ndarray:
    """Replace +/-inf by NaN so the imputer treats them as missing.

    >>> finite_or_nan(np.array([[1.0, np.inf, -np.inf]])).tolist()
    [[1.0, nan, nan]]
    """
    x = np.array(x, dtype=np.float64)  # copy: never modify the caller's batch
    x[~np.isfinite(x)] = np.nan
    return x


def resolve_model_name(name: str) -> str:
    """Check a model name against the registry.

    >>> resolve_model_name("random-forest")
    'random-forest'
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return name


def build_pipeline(model: str, params: dict[str, Any] | None = None, seed: int = SEED) -> Pipeline:
    """An unfitted Pipeline for ``model``: clean-up, imputation, (scaling,) classifier.

    ``params`` override the classifier's hyperparameters, e.g. ``{"max_depth": 8}``.
    """
    resolve_model_name(model)
    params = dict(params or {})
    steps: list[tuple[str, Any]] = [
        ("finite", FunctionTransformer(finite_or_nan)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
    ]
    if model == "logistic-regressor":
        steps.append(("scale", StandardScaler()))
        clf = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    elif model == "decision-tree":
        clf = DecisionTreeClassifier(class_weight="balanced", random_state=seed)
    else:
        # n_jobs=1: predicting a micro-batch on threads costs more than it saves.
        clf = RandomForestClassifier(
            n_estimators=100, class_weight="balanced_subsample", n_jobs=1, random_state=seed
        )
    try:
        clf.set_params(**params)
    except ValueError as err:
        raise ConfigError(f"bad hyperparameter for {model}: {err}") from None
    steps.append(("classifier", clf))
    return Pipeline(steps)


@dataclass
class ModelCard:
    """What ``model.json`` holds next to each ``model.joblib``."""

    dataset: str
    task: str
    model: str
    features: list[str]
    classes: list[str]
    metrics: dict[str, Any]
    train_rows: int
    test_rows: int
    params: dict[str, Any]
    seed: int
    missing_values: str = MISSING_POLICY
    data_source: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    sha256: str = ""

    @property
    def model_id(self) -> str:
        return f"{self.dataset}/{self.task}/{self.model}@{self.sha256[:12]}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False, default=str) + "\n"


@dataclass
class TrainedModel:
    """A loaded Pipeline with its card; ``predict`` gives labels and scores in one call."""

    pipeline: Pipeline
    card: ModelCard
    path: Path

    @property
    def features(self) -> list[str]:
        return self.card.features

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted label and its probability for each row of a feature matrix."""
        proba = self.pipeline.predict_proba(x)
        best = proba.argmax(axis=1)
        classes = self.pipeline.classes_
        return classes[best], proba[np.arange(len(best)), best]


def artifact_dir(dataset: str, task: str, model: str, models_dir: Path | str = MODELS_DIR) -> Path:
    """``models/<dataset>/<task>/<model>/``, where a model and its card live."""
    return Path(models_dir) / datasets.resolve_name(dataset) / task / resolve_model_name(model)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluate(y_true: pd.Series | np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Held-out scores: accuracy, macro-F1, per-class report and confusion matrix."""
    report = classification_report(y_true, y_pred, labels=classes, output_dict=True, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "per_class": {c: {k: float(v) for k, v in report[c].items()} for c in classes},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }


def train(
    dataset: str,
    task: str,
    model: str,
    models_dir: Path | str = MODELS_DIR,
    data: str | Path | None = None,
    params: dict[str, Any] | None = None,
    seed: int = SEED,
) -> TrainedModel:
    """Fit ``model`` for ``task`` on the training split, score the held-out split, save both files."""
    if task not in ("binary_class", "multi_class"):
        raise ConfigError(f"unknown task {task!r}; choose one of: binary_class, multi_class")
    pipeline = build_pipeline(model, params, seed)  # bad hyperparameters fail before any data is read
    ds = datasets.load(dataset, data)
    train_rows, test_rows = ds.split_index(seed=seed)
    y = ds.target(task).to_numpy()
    x = ds.features.to_numpy(dtype=np.float64)
    log.info("training %s for %s on %d rows of %s", model, task, len(train_rows), ds.name)
    pipeline.fit(x[train_rows], y[train_rows])
    classes = [str(c) for c in pipeline.classes_]
    predicted = pipeline.predict(x[test_rows])
    card = ModelCard(
        dataset=ds.name,
        task=task,
        model=model,
        features=ds.feature_names,
        classes=classes,
        metrics=evaluate(y[test_rows], predicted, classes),
        train_rows=len(train_rows),
        test_rows=len(test_rows),
        params={k: v for k, v in pipeline.named_steps["classifier"].get_params().items()},
        seed=seed,
        data_source=str(data) if data is not None else "bundled sample",
        versions={
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "joblib": joblib.__version__,
        },
    )
    out = artifact_dir(ds.name, task, model, models_dir)
    save(pipeline, card, out)
    log.info(
        "saved %s: held-out accuracy %.4f, macro-F1 %.4f",
        out,
        card.metrics["accuracy"],
        card.metrics["macro_f1"],
    )
    return TrainedModel(pipeline, card, out)


def save(pipeline: Pipeline, card: ModelCard, directory: Path) -> ModelCard:
    """Write ``model.joblib`` and then ``model.json`` carrying the joblib file's sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    artifact = directory / "model.joblib"
    tmp = directory / "model.joblib.tmp"
    joblib.dump(pipeline, tmp)
    tmp.replace(artifact)
    card.sha256 = sha256_file(artifact)
    card.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    (directory / "model.json").write_text(card.to_json())
    return card


def load(
    dataset: str, task: str, model: str, models_dir: Path | str = MODELS_DIR
) -> TrainedModel:
    """Load a saved model after checking its sha256 against its card."""
    directory = artifact_dir(dataset, task, model, models_dir)
    return load_dir(directory)


def load_dir(directory: Path) -> TrainedModel:
    """Load ``model.joblib`` from ``directory`` if and only if its hash matches ``model.json``."""
    artifact, card_path = directory / "model.joblib", directory / "model.json"
    if not artifact.exists() or not card_path.exists():
        parts = directory.parts[-3:]
        hint = f"kstream train -d {parts[0]} -t {parts[1]} -m {parts[2]}" if len(parts) == 3 else "kstream train"
        raise ModelError(f"no trained model at {directory}; train it first with `{hint}`")
    try:
        card = ModelCard(**json.loads(card_path.read_text()))
    except (ValueError, TypeError) as err:
        raise ModelError(f"model card {card_path} is unreadable ({err}); retrain the model") from None
    actual = sha256_file(artifact)
    if actual != card.sha256:
        raise ModelError(
            f"{artifact} does not match the sha256 in its card (refusing to unpickle it); retrain the model"
        )
    pipeline = joblib.load(artifact)
    return TrainedModel(pipeline, card, directory)
