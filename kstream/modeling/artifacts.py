"""Trained models on disk: which model (:class:`ModelRef`), its card, and hash-checked loading.

A model lives in ``models/<dataset>/<task>/<model>/`` as ``model.joblib`` (the whole Pipeline)
beside its card ``model.json`` (dataset, task, label level, features, classes, held-out scores,
split seed and mode (and a temporal split's boundary and time ranges), library versions, data
source and citation, and the joblib file's sha256)
and ``train-vectors.npy``, the distinct hashes of its training rows' feature vectors, so that any
data it scores can be checked for vectors it was trained on (:mod:`kstream.data.leakage`).
:func:`load` refuses an artifact whose hash does not match its card, because a joblib file is a
pickle and loading an untrusted one runs code. :func:`mismatches` says why a model must not
score a given dataset (features it lacks, another label level, classes it never learnt).

>>> ref = ModelRef("SELECTED_NET", "multi_class", "decision-tree", level="fine")
>>> ref.dataset, ref.level, ref.directory.relative_to(ref.models_dir).as_posix()
('netml', 'fine', 'netml/multi_class-fine/decision-tree')
>>> ModelRef("cicids2017", "binary_class", "random-forest", level="grouped").level  # binary: no level
''
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.pipeline import Pipeline

from kstream.data import datasets, leakage
from kstream.data.datasets import Dataset
from kstream.drift.reference import FeatureReference
from kstream.errors import ConfigError, ModelError
from kstream.modeling import zoo
from kstream.modeling.scorer import Scorer
from kstream.modeling.trust import Trust
from kstream.paths import MODELS_DIR

__all__ = ["ModelRef", "ModelCard", "TrainedModel", "TRAIN_VECTORS", "save", "load", "load_dir", "list_cards",
           "mismatches", "missing_features", "read_train_vectors", "sha256_file", "check_train_until"]

log = logging.getLogger(__name__)

TRAIN_VECTORS = "train-vectors.npy"  # beside model.joblib: distinct hashes of the training rows' vectors


@dataclass(frozen=True)
class ModelRef:
    """Which model: dataset, task, label level, model name, models folder, split seed, mode and boundary.

    Built once at the edge (CLI, notebook, job) and passed whole; every name is checked on
    creation by the one function that owns it. ``level`` is the multi-class label level (the
    dataset's default when empty; always empty for the binary task, whose labels do not depend
    on it). ``seed`` is the split seed to train with; None means the default for training and
    "whatever the card says" for scoring; ``split_mode`` likewise (empty: ``grouped`` to train,
    the card's to score). ``train_until`` is the boundary of a temporal split (an ISO date or
    datetime; empty: the last 20% of the rows by time are held out, or the card's boundary to score).

    >>> ModelRef("cicids2017", "binary_class", "random-forest", train_until="2017-07-06")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: train_until is the boundary of a temporal split: set split_mode temporal too ...
    """

    dataset: str
    task: str
    model: str
    level: str = ""
    models_dir: Path = MODELS_DIR
    seed: int | None = None
    split_mode: str = ""
    train_until: str = ""

    def __post_init__(self) -> None:
        if self.split_mode:
            leakage.check_split_mode(self.split_mode)
        check_train_until(self.train_until, self.split_mode)
        spec = datasets.spec(self.dataset)
        object.__setattr__(self, "dataset", spec.name)
        spec.check_task(self.task)
        zoo.check_model(self.model)
        level = "" if self.task == "binary_class" else spec.check_level(self.level or spec.default_level)
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "models_dir", Path(self.models_dir).expanduser())

    @property
    def task_dir(self) -> str:
        """``multi_class`` at the dataset's default level, ``multi_class-<level>`` at another one."""
        if self.task == "binary_class" or self.level == datasets.spec(self.dataset).default_level:
            return self.task
        return f"{self.task}-{self.level}"

    @property
    def directory(self) -> Path:
        """``<models_dir>/<dataset>/<task>[-<level>]/<model>/``: the only place this path is computed."""
        return self.models_dir / self.dataset / self.task_dir / self.model

    @property
    def name(self) -> str:
        """``dataset/task[-level]/model``, for messages."""
        return f"{self.dataset}/{self.task_dir}/{self.model}"

    @property
    def trained(self) -> bool:
        """Whether both files of the artifact exist."""
        return all((self.directory / n).exists() for n in ("model.joblib", "model.json"))

    @property
    def split_seed(self) -> int:
        """The seed a training run splits with."""
        return datasets.DEFAULT_SEED if self.seed is None else self.seed

    @property
    def train_split_mode(self) -> str:
        """The split mode a training run splits with."""
        return self.split_mode or leakage.DEFAULT_SPLIT_MODE

    def replace(self, **changes: Any) -> ModelRef:
        """A copy with some fields changed, checked again."""
        return dataclasses.replace(self, **changes)

    def train_command(self) -> str:
        """The ``kstream train`` command line that makes this model.

        >>> ModelRef("nsl-kdd", "multi_class", "random-forest", level="attack").train_command()
        'kstream train -d nsl-kdd -t multi_class -m random-forest --level attack'
        """
        parts = ["kstream train", f"-d {self.dataset}", f"-t {self.task}", f"-m {self.model}"]
        if self.task_dir != self.task:
            parts.append(f"--level {self.level}")
        if self.models_dir.resolve() != MODELS_DIR.resolve():
            parts.append(f"--models-dir {self.models_dir}")
        if self.seed is not None:
            parts.append(f"--seed {self.seed}")
        if self.split_mode:
            parts.append(f"--split-mode {self.split_mode}")
        if self.train_until:
            parts.append(f"--train-until {self.train_until}")
        return " ".join(parts)


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
    seed: int  # the split's seed (and the classifier's random_state)
    test_size: float = 0.2
    split_mode: str = "random"  # grouped, random or temporal; cards written before split modes existed split at random
    train_until: str = ""  # temporal split: rows before this time (ISO) trained, the others were held out
    time_range: dict[str, list[str]] = field(default_factory=dict)  # train/test: [first, last] flow time (ISO)
    split_note: str = ""  # what the split does to the held-out scores (a temporal split: classes training never saw)
    level: str = ""
    feature_selection: dict[str, Any] = field(default_factory=dict)
    missing_values: str = zoo.MISSING_POLICY
    data_source: str = ""
    citation: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    sha256: str = ""
    train_vectors_sha256: str = ""  # of train-vectors.npy; empty for cards written before it existed
    conflicts: dict[str, Any] = field(default_factory=dict)  # leakage.conflicts of all its data, at its labels
    learning_curve: list[dict[str, Any]] = field(default_factory=list)  # scores at growing training sizes
    drift_reference: dict[str, Any] = field(default_factory=dict)  # FeatureReference.to_dict(); empty on older cards
    signature: str = ""  # HMAC of the card with KSTREAM_MODEL_KEY, when one was set at training

    @property
    def label_classes(self) -> list[str]:
        """The classes ground truth may name: those the model predicts, then those of its held-out rows it
        never trained on (a temporal split holds out later days, with attacks training never saw: their
        labels are true, and a prediction's miss on them is what a prequential score must count).

        >>> card = ModelCard("cicids2017", "multi_class", "random-forest", [], ["BENIGN", "DoS"], {}, 1, 1, {}, 42)
        >>> card.metrics["classes"] = ["BENIGN", "DoS", "DDoS"]
        >>> card.label_classes
        ['BENIGN', 'DoS', 'DDoS']
        """
        scored = [str(c) for c in self.metrics.get("classes", [])]
        return list(self.classes) + [c for c in scored if c not in self.classes]

    @property
    def model_id(self) -> str:
        return f"{self.dataset}/{self.task}/{self.model}@{self.sha256[:12]}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False, default=str) + "\n"

    def rows(self, ds: Dataset, split: str) -> Dataset:
        """The ``train``, ``test`` or ``all`` rows of ``ds`` in this model's split: its seed, test
        share and mode, a grouped split hashing the model's features (those ``ds`` has), a temporal
        split at its ``train_until``."""
        if split == "all":
            return ds
        if split not in datasets.SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(datasets.SPLITS)}")
        have = set(ds.feature_names)
        shared = [f for f in self.features if f in have]
        view = ds.restrict(shared) if self.split_mode == "grouped" and shared and shared != ds.feature_names else ds
        train, test = view.split_index(seed=self.seed, test_size=self.test_size, mode=self.split_mode,
                                       until=self.train_until if self.split_mode == "temporal" else "")
        return ds.take(train if split == "train" else test)

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        """The card in ``path``; an unreadable one is a ModelError naming the fix."""
        return cls.from_dict(_card_dict(path), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | str = "model.json") -> ModelCard:
        """The card a parsed ``model.json`` holds (fields it does not know are ignored); ``path`` for messages."""
        try:
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as err:
            raise ModelError(f"model card {path} is unreadable ({err}); retrain the model") from None


@dataclass
class TrainedModel:
    """A Pipeline with its card; :meth:`predict` gives labels and scores in one call.

    ``train_vectors`` are the distinct hashes of its training rows' feature vectors (None for a
    model saved before kstream kept them).
    """

    pipeline: Pipeline
    card: ModelCard
    path: Path
    train_vectors: np.ndarray | None = None
    _scorer: Scorer | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def features(self) -> list[str]:
        return self.card.features

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted label and its probability for each row of a feature matrix (scikit-learn's numbers,
        with less fixed cost per call: :class:`~kstream.modeling.scorer.Scorer`)."""
        if self._scorer is None or self._scorer.pipeline is not self.pipeline:
            self._scorer = Scorer(self.pipeline)
        proba = self._scorer.predict_proba(x)
        best = proba.argmax(axis=1)
        classes = self.pipeline.classes_
        return classes[best], proba[np.arange(len(best)), best]

    def reference(self) -> FeatureReference:
        """The drift reference its card keeps; a card written before kstream kept one is a ModelError
        naming the command that retrains the model."""
        if not self.card.drift_reference:
            raise ModelError(f"model {self.path} has no drift reference (trained before kstream kept one); "
                             f"retrain it with `{self.train_command()}` to monitor drift")
        return FeatureReference.from_dict(self.card.drift_reference)

    def train_command(self) -> str:
        """The ``kstream train`` command line that makes this model again, in its models folder."""
        c = self.card
        ref = ModelRef(c.dataset, c.task, c.model, level=c.level, models_dir=self.path.parent.parent.parent,
                       seed=c.seed, split_mode=c.split_mode,
                       train_until=c.train_until if c.split_mode == "temporal" else "")
        return ref.train_command()

    def held_out(self, ds: Dataset) -> Dataset:
        """The rows of ``ds`` this model was not trained on: the test part of the card's split."""
        return self.card.rows(ds, "test")

    def seen_in_training(self, rows: Dataset, data: Dataset | None = None) -> np.ndarray | None:
        """Per row of ``rows``: whether a training row had the same feature vector (over the model's
        features). None when that cannot be known: a model saved without ``train-vectors.npy``,
        unless ``data`` is the data it was trained on (its training rows are then re-derived).
        """
        training = self.train_vectors
        if training is None and data is not None and data.source == self.card.data_source:
            train = self.card.rows(data, "train")
            training = leakage.distinct(leakage.vector_hashes(train.features, self.features))
        if training is None:
            return None
        return leakage.seen_in(leakage.vector_hashes(rows.features, self.features), training)


def check_train_until(train_until: str, split_mode: str) -> str:
    """``train_until`` if it is empty, or an ISO time (:func:`kstream.data.leakage.parse_until`) with
    ``split_mode`` temporal; else a ConfigError naming the fix.

    >>> check_train_until("2017-07-06", "temporal"), check_train_until("", "grouped")
    ('2017-07-06', '')
    """
    if not train_until:
        return train_until
    leakage.parse_until(train_until)
    if split_mode != "temporal":
        raise ConfigError("train_until is the boundary of a temporal split: set split_mode temporal too "
                          "(--split-mode temporal, KSTREAM_SPLIT_MODE=temporal), or leave train_until unset")
    return train_until


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(pipeline: Pipeline, card: ModelCard, directory: Path, trust: Trust | None = None,
         train_vectors: np.ndarray | None = None) -> ModelCard:
    """Write ``model.joblib``, ``train-vectors.npy`` (when given: the distinct hashes of the training
    rows' vectors) and ``model.json`` carrying both files' sha256 (and the card's signature when
    the trust policy has a key).

    Each file is written whole under a temporary name, and the three are renamed into place one
    after the other only then, the card last: a detector watching the folder for a new version
    (:mod:`kstream.detector.hotswap`) never reads a half-written file, and in the microseconds
    between the renames it sees a card that does not match the artifact and looks again later.
    """
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []  # (temporary file, final name), renamed in this order
    try:
        artifact = _staged(directory, "model.joblib", staged)
        joblib.dump(pipeline, artifact)
        card.sha256 = sha256_file(artifact)
        card.train_vectors_sha256 = ""
        if train_vectors is not None:
            vectors = _staged(directory, TRAIN_VECTORS, staged)
            with open(vectors, "wb") as fh:
                np.save(fh, leakage.distinct(train_vectors), allow_pickle=False)
            card.train_vectors_sha256 = sha256_file(vectors)
        card.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        card.signature = ""
        card.signature = (trust or Trust.from_env()).sign(asdict(card))
        _staged(directory, "model.json", staged).write_text(card.to_json())
        for tmp, final in staged:
            tmp.replace(final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return card


def _staged(directory: Path, name: str, staged: list[tuple[Path, Path]]) -> Path:
    """A temporary name beside ``directory / name`` (hidden, unique to this writer), noted in ``staged``."""
    path = directory / f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"  # created by its writer, default mode
    staged.append((path, directory / name))
    return path


def load(ref: ModelRef, trust: Trust | None = None) -> TrainedModel:
    """The model ``ref`` names, after checking its sha256 against its card (and the trust policy)."""
    if not ref.trained:
        raise ModelError(f"no trained model {ref.name} in {ref.models_dir}; "
                         f"train it first with `{ref.train_command()}`")
    return load_dir(ref.directory, trust)


def load_dir(directory: Path, trust: Trust | None = None) -> TrainedModel:
    """Load ``model.joblib`` from ``directory`` if and only if its hash matches ``model.json`` and the
    card passes the trust policy (default: ``Trust.from_env()``; see :mod:`kstream.modeling.trust`).

    The card is read once and the artifact is hashed and unpickled from one open file, so a file
    replaced while this runs (a new version being written into the folder) can never be unpickled
    after another file was checked.
    """
    artifact, card_path = directory / "model.joblib", directory / "model.json"
    if not artifact.exists() or not card_path.exists():
        raise ModelError(f"no trained model at {directory} (model.joblib and model.json); train it first")
    written = _card_dict(card_path)
    card = ModelCard.from_dict(written, card_path)
    try:
        with open(artifact, "rb") as fh:
            digest = hashlib.sha256()
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            if digest.hexdigest() != card.sha256:
                raise ModelError(
                    f"{artifact} does not match the sha256 in its card (refusing to unpickle it); retrain the model"
                )
            # the card as written, not as read: a card signed before a field existed stays signed after it
            (trust or Trust.from_env()).verify(written, str(directory))
            fh.seek(0)
            pipeline = joblib.load(fh)
    except OSError as err:
        raise ModelError(f"cannot read {artifact} ({err}); check the file, or retrain the model") from None
    return TrainedModel(pipeline, card, directory, read_train_vectors(directory, card))


def _card_dict(path: Path) -> dict[str, Any]:
    """The parsed ``model.json`` at ``path``; unreadable or not a JSON object: a ModelError naming the fix."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"model card {path} is unreadable ({err}); retrain the model") from None
    if not isinstance(data, dict):
        raise ModelError(f"model card {path} is unreadable (not a JSON object); retrain the model")
    return data


def read_train_vectors(directory: Path, card: ModelCard) -> np.ndarray | None:
    """The ``train-vectors.npy`` beside ``card`` once its sha256 matches the card's (None for a card
    written before kstream kept them); a missing or altered file is a ModelError."""
    if not card.train_vectors_sha256:
        return None
    path = directory / TRAIN_VECTORS
    if not path.exists() or sha256_file(path) != card.train_vectors_sha256:
        raise ModelError(f"{path} is missing or does not match the sha256 in its card; retrain the model")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ModelError(f"{path} is unreadable ({err}); retrain the model") from None


def missing_features(card: ModelCard, ds: Dataset) -> list[str]:
    """The features the model of ``card`` needs that ``ds`` has no column for, in the card's order."""
    have = set(ds.feature_names)
    return [f for f in card.features if f not in have]


def mismatches(card: ModelCard, ds: Dataset, allow_missing: bool = False) -> list[str]:
    """Why the model of ``card`` must not score ``ds`` (empty when it may).

    Checked: the dataset, the features the model needs (all of them must be columns of the
    data; with ``allow_missing`` some may be absent and are imputed, but not all), the label
    level of a multi-class model, and that the data's classes are ones the model learnt (some
    unknown ones are logged; none known at all is a mismatch).
    """
    problems: list[str] = []
    if card.dataset != ds.name:
        return [f"it was trained on {card.dataset}, the data is {ds.name}"]
    missing = missing_features(card, ds)
    if missing and allow_missing and len(missing) == len(card.features):
        problems.append("the data has none of its features")
    elif missing and not allow_missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        problems.append(f"it needs {len(missing)} feature(s) the data lacks: {shown} (--allow-missing imputes them)")
    if card.task == "multi_class" and ds.labelled:
        if card.level and card.level != ds.level:
            problems.append(f"its classes are at label level {card.level!r}, the data's labels at {ds.level!r}")
        else:
            classes = set(ds.target(card.task).unique())
            unknown = sorted(classes - set(card.classes))
            if unknown and len(unknown) == len(classes):
                problems.append(f"it learnt none of the data's classes ({', '.join(unknown[:5])})")
            elif unknown:
                log.warning("%d class(es) of %s are unknown to the model and will count as errors: %s",
                            len(unknown), ds.source or ds.name, ", ".join(unknown))
    return problems


def list_cards(models_dir: Path | str = MODELS_DIR) -> list[dict[str, Any]]:
    """One row per saved model under ``models_dir``: names, features, scores, size, date."""
    rows: list[dict[str, Any]] = []
    for card_path in sorted(Path(models_dir).glob("*/*/*/model.json")):
        try:
            card = ModelCard.read(card_path)
        except ModelError:
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
                "seed": card.seed,
                "split": card.split_mode,
                "accuracy": card.metrics.get("accuracy"),
                "macro_f1": card.metrics.get("macro_f1"),
                "netml_overall": card.metrics.get("netml_overall"),
                "size_kb": round(artifact.stat().st_size / 1024) if artifact.exists() else None,
                "created": card.created,
                "path": str(card_path.parent),
            }
        )
    return rows
