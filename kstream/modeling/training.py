"""Training: fit a model of the zoo on a dataset's training split, score the held-out split, save both.

:func:`train` takes a resolved :class:`~kstream.modeling.artifacts.ModelRef` and a loaded
:class:`~kstream.data.datasets.Dataset`, so the names were checked once at the edge and the data was
read once; it returns the trained model it saved (callers use it as it is, they need not load it
again). :func:`train_grid` trains every dataset x task x model, reading each dataset once.

Every held-out score comes with its leakage report (:func:`kstream.modeling.quality.scores_with_leakage`):
how many scored rows carry a feature vector of a training row, the scores of the others, and the
accuracy ceiling the scored rows' label conflicts allow. With a learning curve, the model is also
fitted on nested stratified subsamples of its training rows (:func:`subsample`) and scored on the
same held-out rows, so the card says how the score grows with the data.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import multiprocessing
import platform
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from tqdm.auto import tqdm

from kstream.data import datasets, leakage
from kstream.data.datasets import Dataset
from kstream.data.formats.times import describe_time
from kstream.drift.reference import FeatureReference
from kstream.errors import ConfigError
from kstream.modeling import zoo
from kstream.modeling.artifacts import ModelCard, ModelRef, TrainedModel, save
from kstream.modeling.quality import HEADLINE, score, scores_with_leakage

__all__ = ["LEARNING_FRACTIONS", "train", "train_grid", "grid", "subsample", "drift_reference"]

log = logging.getLogger(__name__)

#: The shares of the training rows a learning curve fits on (the last is the model itself).
LEARNING_FRACTIONS = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def train(
    ref: ModelRef,
    ds: Dataset,
    params: dict[str, Any] | None = None,
    class_weight: str = "balanced",
    test_size: float = 0.2,
    learning_curve: bool | Sequence[float] = False,
) -> TrainedModel:
    """Fit ``ref``'s model on ``ds``'s training split, score the held-out split, save the files.

    ``ds`` must be ``ref``'s dataset; its labels are taken at ``ref.level`` (multi-class). The
    split is ``ref``'s seed and mode (grouped unless ``ref.split_mode`` says random or temporal; a
    temporal split at ``ref.train_until``, else with the last ``test_size`` of the rows by time held
    out). The held-out scores count every held-out class, those training never saw too
    (``classes_absent_from_training``, at the data's label level); the card records the flows' time
    range on each side and, for a temporal split, its boundary and what it does to the scores. ``params``
    set classifier hyperparameters; ``class_weight`` is one of :data:`~kstream.modeling.zoo.CLASS_WEIGHTS`
    (see :func:`~kstream.modeling.zoo.sample_weights`). ``learning_curve`` (True: :data:`LEARNING_FRACTIONS`,
    or the fractions to use) also scores the model fitted on shares of the training rows.
    """
    if ds.name != ref.dataset:
        raise ConfigError(f"cannot train {ref.name} on {ds.name} data")
    seed = ref.split_seed
    zoo.build_pipeline(ref.model, params, seed, class_weight=class_weight)  # bad hyperparameters fail first
    if ref.task == "multi_class" and ds.level != ref.level:
        ds = ds.with_level(ref.level)
    fractions = _fractions(learning_curve)
    y = ds.target(ref.task).to_numpy()
    mode = ref.train_split_mode
    train_rows, test_rows = ds.split_index(seed=seed, test_size=test_size, mode=mode, until=ref.train_until)
    x = ds.features.to_numpy(dtype=np.float64)
    hashes = ds.vector_hashes
    train_vectors = leakage.distinct(hashes[train_rows])
    log.info("training %s on %d rows of %s (%s split)", ref.name, len(train_rows), ds.source or ds.name, mode)
    pipeline = _fit(ref, params, seed, ds.feature_names, class_weight, x, y, train_rows)
    classes = [str(c) for c in pipeline.classes_]
    predicted = pipeline.predict(x[test_rows])
    seen = leakage.seen_in(hashes[test_rows], train_vectors)
    scored = classes + sorted(set(y[test_rows].astype(str)) - set(classes))  # held-out classes training never saw
    metrics = scores_with_leakage(y[test_rows], predicted, scored, ref.task, hashes[test_rows], seen)
    labels = ds.labels.to_numpy()
    metrics["classes_absent_from_training"] = leakage.absent_classes(labels[test_rows], labels[train_rows])
    until, time_range, note = _time_split(ds, ref, mode, train_rows, test_rows, metrics)
    reference = drift_reference(pipeline, ds, x, train_rows, test_rows)
    selection = pipeline.named_steps["select"].report()
    selection["excluded_by_loader"] = dict(ds.feature_notes)
    card = ModelCard(
        dataset=ds.name,
        task=ref.task,
        model=ref.model,
        features=ds.feature_names,
        classes=classes,
        metrics=metrics,
        train_rows=len(train_rows),
        test_rows=len(test_rows),
        params={**pipeline.named_steps["classifier"].get_params(), "class_weighting": class_weight},
        seed=seed,
        test_size=test_size,
        split_mode=mode,
        train_until=until,
        time_range=time_range,
        split_note=note,
        level=ref.level,
        feature_selection=selection,
        data_source=ds.source,
        citation=ds.spec.citation,
        versions={
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "joblib": joblib.__version__,
        },
        conflicts=leakage.conflicts(hashes, y),
        drift_reference=reference.to_dict(),
    )
    for fraction in fractions:
        if fraction == 1.0:
            card.learning_curve.append(_curve_point(1.0, len(train_rows), metrics))
            continue
        rows = train_rows[subsample(y[train_rows], fraction, seed)]
        fitted = _fit(ref, params, seed, ds.feature_names, class_weight, x, y, rows)
        seen_here = leakage.seen_in(hashes[test_rows], leakage.distinct(hashes[rows]))
        point = score(y[test_rows], fitted.predict(x[test_rows]), classes, ref.task)
        point["seen_in_training"] = int(seen_here.sum())
        card.learning_curve.append(_curve_point(fraction, len(rows), point))
        log.info("learning curve: %d training rows, held-out macro-F1 %.4f", len(rows), point["macro_f1"])
    save(pipeline, card, ref.directory, train_vectors=train_vectors)
    log.info("saved %s: held-out accuracy %.4f, macro-F1 %.4f (%d of %d held-out rows seen in training)",
             ref.directory, metrics["accuracy"], metrics["macro_f1"], metrics["seen_in_training"], len(test_rows))
    return TrainedModel(pipeline, card, ref.directory, train_vectors)


def _time_split(ds: Dataset, ref: ModelRef, mode: str, train_rows: np.ndarray, test_rows: np.ndarray,
                metrics: dict[str, Any]) -> tuple[str, dict[str, list[str]], str]:
    """What a card records of the flows' times: a temporal split's boundary (ISO), the first and last
    time on each side (any split of data with times), and a note on what a temporal split does to
    the held-out scores."""
    if ds.times is None:
        return "", {}, ""
    sides = {"train": ds.take(train_rows).time_range(), "test": ds.take(test_rows).time_range()}
    time_range = {side: list(span) for side, span in sides.items() if span is not None}
    if mode != "temporal":
        return "", time_range, ""
    until = ref.train_until
    boundary = describe_time(leakage.parse_until(until) if until else ds.times.iloc[test_rows].min())
    absent = metrics["classes_absent_from_training"]
    note = (f"temporal split: trained on the flows before {boundary}, scored on the later ones, as a detector "
            f"deployed at {boundary} would meet them; the scores measure how the model carries over in time and "
            "are lower than a grouped or random split's where the later flows hold what training never saw. ")
    if not absent:
        return boundary, time_range, note + "Every held-out class appears in training."
    what = (f"{len(absent)} held-out class(es), {sum(absent.values())} of {len(test_rows)} rows, never appear in "
            f"training ({', '.join(absent)}): ")
    if ref.task == "binary_class":
        what += "the model flags them as attacks only as far as they resemble the attacks it learnt."
    else:
        what += "the model cannot name them, so they count as errors (recall 0 in per_class)."
    return boundary, time_range, note + what


def drift_reference(pipeline: Any, ds: Dataset, x: np.ndarray, train_rows: np.ndarray,
                    test_rows: np.ndarray) -> FeatureReference:
    """The drift reference a model card keeps: its features binned over the training rows, and its
    scores and attack rate over the held-out rows (scores on rows a model learnt from are higher
    than on any live flow, so they would read as drift; the held-out rows are what it has not seen).

    >>> ds = datasets.load("nsl-kdd")
    >>> x, rows = ds.features.to_numpy(dtype=np.float64), np.arange(len(ds))
    >>> pipeline = zoo.build_pipeline("decision-tree", feature_names=ds.feature_names)
    >>> pipeline = pipeline.fit(x[rows[::2]], ds.target("binary_class").to_numpy()[rows[::2]])
    >>> ref = drift_reference(pipeline, ds, x, rows[::2], rows[1::2])
    >>> ref.names == ds.feature_names, ref.score_rows == len(rows[1::2]), 0 < ref.attack_rate < 1
    (True, True, True)
    """
    proba = pipeline.predict_proba(x[test_rows]) if len(test_rows) else np.empty((0, len(pipeline.classes_)))
    best = proba.argmax(axis=1)
    labels = np.asarray(pipeline.classes_)[best]
    scores = proba[np.arange(len(best)), best]
    benign = sorted({*ds.spec.benign_labels, datasets.BENIGN}) if ds.spec.benign_labels else []
    return FeatureReference.fit(x[train_rows], ds.feature_names, scores=scores if len(scores) else None,
                                labels=labels if len(labels) else None, benign_labels=benign)


def _fit(ref: ModelRef, params: dict[str, Any] | None, seed: int, features: list[str], class_weight: str,
         x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> Any:
    pipeline = zoo.build_pipeline(ref.model, params, seed, features, class_weight)
    weights = zoo.sample_weights(y[rows], class_weight)
    fit_params = {} if weights is None else {"classifier__sample_weight": weights}
    return pipeline.fit(x[rows], y[rows], **fit_params)


def _fractions(learning_curve: bool | Sequence[float]) -> list[float]:
    if learning_curve is True:
        return list(LEARNING_FRACTIONS)
    if not learning_curve:
        return []
    fractions = sorted({float(f) for f in learning_curve})
    if fractions[0] <= 0 or fractions[-1] > 1:
        raise ConfigError(f"learning-curve fractions must be in (0, 1], not {fractions}")
    return fractions if fractions[-1] == 1.0 else [*fractions, 1.0]


def _curve_point(fraction: float, rows: int, scores: dict[str, Any]) -> dict[str, Any]:
    point: dict[str, Any] = {"fraction": fraction, "train_rows": rows}
    point.update({k: scores[k] for k in HEADLINE if k in scores})
    point["seen_in_training"] = scores.get("seen_in_training")
    return point


def subsample(y: np.ndarray | Sequence[Any], fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of a stratified share of the rows of labels ``y``: per class, the first
    ``ceil(fraction * n_class)`` rows of a permutation seeded by ``seed`` (one row at least), so a
    smaller share is always part of a larger one and every class stays present.

    >>> y = np.array(["a"] * 10 + ["b"] * 3)
    >>> small, large = subsample(y, 0.2, seed=1), subsample(y, 0.6, seed=1)
    >>> len(small), len(large), set(small) <= set(large), sorted(set(y[small].tolist()))
    (3, 8, True, ['a', 'b'])
    """
    y = np.asarray(y).astype(str)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    picked = []
    for cls in np.unique(y):
        mine = order[y[order] == cls]
        picked.append(mine[: max(1, int(np.ceil(fraction * len(mine) - 1e-9)))])
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=int)


def train_grid(
    refs: list[ModelRef],
    progress: bool = True,
    class_weight: str = "balanced",
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Train every model of ``refs``; one row per model, in the order of ``refs``, with its scores, the
    held-out rows seen in training and the unseen rows' scores, the ceiling, and seconds.

    With ``jobs`` 1 the models train in turn, each dataset read once; with more, in that many processes at
    once (each reads the datasets it trains on once), which divides the time by up to ``jobs`` on as many
    cores (the zoo's models fit on one core each).
    """
    if jobs < 1:
        raise ConfigError(f"training runs at least 1 job at once, not {jobs}")
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(refs), unit="model", desc="train grid", disable=not progress) as bar:
        if jobs == 1:
            for ref in refs:
                bar.set_postfix_str(ref.name)
                rows.append(_grid_row(ref, class_weight))
                bar.update()
            return rows
        # spawn: a forked child would inherit the caller's threads' locks (a broker's log readers, say)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_grid_row, ref, class_weight) for ref in refs]
            for future in as_completed(futures):
                future.result()  # a failure shows now, not after the rest
                bar.update()
            return [f.result() for f in futures]


@functools.lru_cache(maxsize=1)  # one dataset in memory at a time; refs come grouped by dataset
def _dataset(name: str) -> Dataset:
    return datasets.load(name)


def _grid_row(ref: ModelRef, class_weight: str) -> dict[str, Any]:
    """Train one model of a grid; its row (:func:`train_grid`)."""
    start = dt.datetime.now()
    trained = train(ref, _dataset(ref.dataset), class_weight=class_weight)
    m = trained.card.metrics
    return {
        "dataset": ref.dataset,
        "task": ref.task_dir,
        "model": ref.model,
        "status": "trained",
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "netml_overall": m["netml_overall"],
        "seen_in_training": m["seen_in_training"],
        "unseen_accuracy": (m["unseen"] or {}).get("accuracy"),
        "unseen_macro_f1": (m["unseen"] or {}).get("macro_f1"),
        "unseen_netml_overall": (m["unseen"] or {}).get("netml_overall"),
        "ceiling": m["ceiling"],
        "conflicts": trained.card.conflicts,
        "seconds": (dt.datetime.now() - start).total_seconds(),
    }


def grid(
    dataset_names: list[str] | None = None,
    tasks: list[str] | None = None,
    models: list[str] | None = None,
    models_dir: Any = None,
    seed: int | None = None,
    split_mode: str = "",
    train_until: str = "",
) -> tuple[list[ModelRef], list[str]]:
    """The models of a grid (every dataset x task x model by default) and why some were left out.

    A task a dataset does not define (binary on netml) is left out with the reason; an unknown
    name fails.

    >>> refs, skipped = grid(["netml"], None, ["decision-tree"])
    >>> [r.name for r in refs], skipped  # doctest: +NORMALIZE_WHITESPACE
    (['netml/multi_class/decision-tree'], ['netml (ISCX-VPN-nonVPN2016 application classes) has no benign/attack split;
        use -t multi_class'])
    """
    refs: list[ModelRef] = []
    skipped: list[str] = []
    extra = {} if models_dir is None else {"models_dir": models_dir}
    for name in dataset_names or datasets.available():
        spec = datasets.spec(name)
        for task in tasks or datasets.TASKS:
            if task in datasets.TASKS and task not in spec.tasks:
                skipped.append(str(_reason(spec, task)))
                continue
            refs.extend(ModelRef(spec.name, task, model, seed=seed, split_mode=split_mode, train_until=train_until,
                                 **extra)
                        for model in models or zoo.MODELS)
    return refs, list(dict.fromkeys(skipped))


def _reason(spec: datasets.DatasetSpec, task: str) -> str:
    try:
        spec.check_task(task)
    except ConfigError as err:
        return str(err)
    return ""
