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
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    f1_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from tqdm.auto import tqdm

from kstream import datasets
from kstream.config import MODELS_DIR, TASKS
from kstream.features import DropConstantAndDuplicate
from kstream.errors import ConfigError, ModelError

__all__ = [
    "MODELS",
    "ModelCard",
    "TrainedModel",
    "build_pipeline",
    "resolve_model_name",
    "artifact_dir",
    "task_dir_name",
    "evaluate",
    "train",
    "train_grid",
    "defined",
    "save",
    "load",
    "load_dir",
    "list_cards",
    "sha256_file",
]

log = logging.getLogger(__name__)

MODELS = ("logistic-regressor", "decision-tree", "random-forest", "hist-gradient-boosting")
SEED = 42
CLASS_WEIGHTS = ("balanced", "sqrt", "none")
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


def build_pipeline(
    model: str, params: dict[str, Any] | None = None, seed: int = SEED, feature_names: list[str] | None = None
) -> Pipeline:
    """An unfitted Pipeline for ``model``: selection, clean-up, imputation, (scaling,) classifier.

    ``params`` override the classifier's hyperparameters, e.g. ``{"max_depth": 8}``.
    Every classifier weights classes against the heavy imbalance of flow data.
    """
    resolve_model_name(model)
    params = dict(params or {})
    steps: list[tuple[str, Any]] = [
        ("select", DropConstantAndDuplicate(feature_names)),
        ("finite", FunctionTransformer(finite_or_nan)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
    ]
    if model == "logistic-regressor":
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
    level: str = ""
    feature_selection: dict[str, Any] = field(default_factory=dict)
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


def task_dir_name(dataset: str, task: str, level: str | None = None) -> str:
    """``multi_class`` for a dataset's default label level, ``multi_class-<level>`` for another one.

    >>> task_dir_name("cicids2017", "multi_class"), task_dir_name("netml", "multi_class", "fine")
    ('multi_class', 'multi_class-fine')
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    spec = datasets.REGISTRY[datasets.resolve_name(dataset)]
    if task == "binary_class" or not level or level == spec.default_level:
        return task
    if level not in spec.levels:
        raise ConfigError(f"unknown label level {level!r} for {spec.name}; choose one of: {', '.join(spec.levels)}")
    return f"{task}-{level}"


def artifact_dir(
    dataset: str, task: str, model: str, models_dir: Path | str = MODELS_DIR, level: str | None = None
) -> Path:
    """``models/<dataset>/<task>/<model>/``, where a model and its card live."""
    name = datasets.resolve_name(dataset)
    return Path(models_dir) / name / task_dir_name(name, task, level) / resolve_model_name(model)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluate(
    y_true: pd.Series | np.ndarray, y_pred: np.ndarray, classes: list[str], task: str = "multi_class"
) -> dict[str, Any]:
    """Scores of predictions against the truth.

    Always: accuracy, macro-F1, per-class precision/recall/F1/support, the
    confusion matrix (rows = true class, columns = predicted, in ``classes``
    order). Binary: TPR (attacks detected), FAR (benign flows flagged) and the
    NetML challenge's overall score TPR x (1 - FAR). Multi-class: the NetML
    challenge's F1 (support-weighted), mAP (mean over classes of the average
    precision of the one-hot predictions) and overall score F1 x mAP, computed
    as the challenge's evaluation defined them (Barut et al. 2020, arXiv:2004.13006).

    >>> m = evaluate(["attack", "attack", "benign", "benign"], ["attack", "benign", "benign", "attack"],
    ...              ["attack", "benign"], task="binary_class")
    >>> m["tpr"], m["far"], m["netml_overall"]
    (0.5, 0.5, 0.25)
    """
    y_true = np.asarray(y_true).astype(str)
    y_pred = np.asarray(y_pred).astype(str)
    report = classification_report(y_true, y_pred, labels=classes, output_dict=True, zero_division=0)
    out: dict[str, Any] = {
        "rows": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "per_class": {c: {k: float(v) for k, v in report[c].items()} for c in classes},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
    if task == "binary_class" and set(classes) <= {datasets.BENIGN, datasets.ATTACK}:
        attack, benign = y_true == datasets.ATTACK, y_true == datasets.BENIGN
        flagged = y_pred == datasets.ATTACK
        tpr = float(flagged[attack].mean()) if attack.any() else float("nan")
        far = float(flagged[benign].mean()) if benign.any() else float("nan")
        out.update(tpr=tpr, far=far, netml_overall=tpr * (1 - far))
    else:
        present = [c for c in classes if (y_true == c).any()]
        ap = [average_precision_score(y_true == c, y_pred == c) for c in present]
        f1w = float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0))
        m_ap = float(np.mean(ap)) if ap else float("nan")
        out.update(netml_f1=f1w, netml_map=m_ap, netml_overall=f1w * m_ap)
    return out


def train(
    dataset: str,
    task: str,
    model: str,
    models_dir: Path | str = MODELS_DIR,
    data: str | Path | None = None,
    params: dict[str, Any] | None = None,
    seed: int = SEED,
    level: str | None = None,
    loaded: datasets.Dataset | None = None,
    class_weight: str = "balanced",
) -> TrainedModel:
    """Fit ``model`` for ``task`` on the training split, score the held-out split, save both files.

    ``level`` picks a multi-class label level (e.g. netml ``fine``); ``loaded``
    reuses an already loaded dataset (as :func:`train_grid` does).
    ``class_weight``: ``balanced`` weighs each class by n / (k * n_class) (the
    default), ``sqrt`` by the square root of that (milder: rare classes still
    count more, without swamping the common ones), ``none`` leaves rows equal.
    """
    if class_weight not in CLASS_WEIGHTS:
        raise ConfigError(f"unknown class weighting {class_weight!r}; choose one of: {', '.join(CLASS_WEIGHTS)}")
    if class_weight != "balanced":
        params = {**(params or {}), "class_weight": None}
    artifact_dir(dataset, task, model, models_dir, level)  # validates names before any work
    datasets.REGISTRY[datasets.resolve_name(dataset)].check_task(task)
    build_pipeline(model, params, seed)  # bad hyperparameters fail before any data is read
    ds = loaded if loaded is not None else datasets.load(dataset, data)
    if level:
        ds = ds.with_level(level)
    y = ds.target(task).to_numpy()  # a task the dataset does not define fails here, clearly
    # a source with only a coarser level (the grouped csv-sample) files its model under that level
    out = artifact_dir(dataset, task, model, models_dir, level or (ds.level if task == "multi_class" else None))
    train_rows, test_rows = ds.split_index(seed=seed)
    x = ds.features.to_numpy(dtype=np.float64)
    pipeline = build_pipeline(model, params, seed, ds.feature_names)
    log.info("training %s for %s on %d rows of %s", model, task, len(train_rows), ds.name)
    fit_params = {}
    if class_weight == "sqrt":
        classes_, counts = np.unique(y[train_rows], return_counts=True)
        weight = dict(zip(classes_, np.sqrt(len(train_rows) / (len(classes_) * counts))))
        fit_params["classifier__sample_weight"] = np.array([weight[v] for v in y[train_rows]])
    pipeline.fit(x[train_rows], y[train_rows], **fit_params)
    classes = [str(c) for c in pipeline.classes_]
    predicted = pipeline.predict(x[test_rows])
    selection = pipeline.named_steps["select"].report()
    selection["excluded_by_loader"] = dict(ds.feature_notes)
    card = ModelCard(
        dataset=ds.name,
        task=task,
        model=model,
        features=ds.feature_names,
        classes=classes,
        metrics=evaluate(y[test_rows], predicted, classes, task),
        train_rows=len(train_rows),
        test_rows=len(test_rows),
        params={**pipeline.named_steps["classifier"].get_params(), "class_weighting": class_weight},
        seed=seed,
        level="" if task == "binary_class" else ds.level,
        feature_selection=selection,
        versions={
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "joblib": joblib.__version__,
        },
        data_source=str(data) if data is not None else f"bundled sample ({ds.source})",
    )
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
    dataset: str, task: str, model: str, models_dir: Path | str = MODELS_DIR, level: str | None = None
) -> TrainedModel:
    """Load a saved model after checking its sha256 against its card."""
    directory = artifact_dir(dataset, task, model, models_dir, level)
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


def defined(dataset: str, task: str) -> bool:
    """Whether ``task`` is defined on ``dataset`` (netml has no benign/attack split).

    >>> defined("cicids2017", "binary_class")
    True
    """
    return task in datasets.REGISTRY[datasets.resolve_name(dataset)].tasks


def train_grid(
    dataset_names: list[str] | None = None,
    tasks: list[str] | None = None,
    models: list[str] | None = None,
    models_dir: Path | str = MODELS_DIR,
    seed: int = SEED,
    progress: bool = True,
    class_weight: str = "balanced",
) -> list[dict[str, Any]]:
    """Train every defined dataset x task x model; one row per combination (status, scores, seconds).

    Combinations a dataset does not define are listed as ``undefined`` with the reason.
    """
    dataset_names = [datasets.resolve_name(d) for d in (dataset_names or datasets.available())]
    tasks = list(tasks or TASKS)
    models = [resolve_model_name(m) for m in (models or MODELS)]
    rows: list[dict[str, Any]] = []
    total = len(dataset_names) * len(tasks) * len(models)
    with tqdm(total=total, unit="model", desc="train grid", disable=not progress) as bar:
        for name in dataset_names:
            loaded = datasets.load(name)
            for task in tasks:
                for model in models:
                    bar.set_postfix_str(f"{name}/{task}/{model}")
                    row: dict[str, Any] = {"dataset": name, "task": task, "model": model}
                    if not defined(name, task):
                        try:
                            loaded.target(task)
                        except ConfigError as err:
                            row.update(status="undefined", reason=str(err))
                    else:
                        start = dt.datetime.now()
                        trained = train(name, task, model, models_dir, seed=seed, loaded=loaded,
                                        class_weight=class_weight)
                        m = trained.card.metrics
                        row.update(
                            status="trained",
                            accuracy=m["accuracy"],
                            macro_f1=m["macro_f1"],
                            netml_overall=m["netml_overall"],
                            seconds=(dt.datetime.now() - start).total_seconds(),
                        )
                    rows.append(row)
                    bar.update()
    return rows


def list_cards(models_dir: Path | str = MODELS_DIR) -> list[dict[str, Any]]:
    """One row per saved model under ``models_dir``: names, features, scores, size, date."""
    rows = []
    for card_path in sorted(Path(models_dir).glob("*/*/*/model.json")):
        try:
            card = ModelCard(**json.loads(card_path.read_text()))
        except (ValueError, TypeError):
            rows.append({"path": str(card_path.parent), "status": "unreadable card"})
            continue
        artifact = card_path.parent / "model.joblib"
        rows.append(
            {
                "dataset": card.dataset,
                "task": card_path.parent.parent.name,
                "model": card.model,
                "features": len(card.features),
                "kept": card.feature_selection.get("kept", len(card.features)),
                "classes": len(card.classes),
                "accuracy": card.metrics.get("accuracy"),
                "macro_f1": card.metrics.get("macro_f1"),
                "netml_overall": card.metrics.get("netml_overall"),
                "size_kb": round(artifact.stat().st_size / 1024) if artifact.exists() else None,
                "created": card.created,
                "path": str(card_path.parent),
            }
        )
    return rows
