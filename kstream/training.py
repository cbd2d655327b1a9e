"""Training: fit a model of the zoo on a dataset's training split, score the held-out split, save both.

:func:`train` takes a resolved :class:`~kstream.artifacts.ModelRef` and a loaded
:class:`~kstream.datasets.Dataset`, so the names were checked once at the edge and the data was
read once; it returns the trained model it saved (callers use it as it is, they need not load it
again). :func:`train_grid` trains every dataset x task x model, reading each dataset once.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from tqdm.auto import tqdm

from kstream import datasets, zoo
from kstream.artifacts import ModelCard, ModelRef, TrainedModel, save
from kstream.datasets import Dataset
from kstream.errors import ConfigError
from kstream.scoring import score

__all__ = ["train", "train_grid"]

log = logging.getLogger(__name__)


def train(
    ref: ModelRef,
    ds: Dataset,
    params: dict[str, Any] | None = None,
    class_weight: str = "balanced",
    test_size: float = 0.2,
) -> TrainedModel:
    """Fit ``ref``'s model on ``ds``'s training split, score the held-out split, save both files.

    ``ds`` must be ``ref``'s dataset; its labels are taken at ``ref.level`` (multi-class).
    ``params`` set classifier hyperparameters; ``class_weight`` is one of
    :data:`~kstream.zoo.CLASS_WEIGHTS` (see :func:`~kstream.zoo.sample_weights`).
    """
    if ds.name != ref.dataset:
        raise ConfigError(f"cannot train {ref.name} on {ds.name} data")
    seed = ref.split_seed
    zoo.build_pipeline(ref.model, params, seed, class_weight=class_weight)  # bad hyperparameters fail first
    if ref.task == "multi_class" and ds.level != ref.level:
        ds = ds.with_level(ref.level)
    y = ds.target(ref.task).to_numpy()
    train_rows, test_rows = ds.split_index(seed=seed, test_size=test_size)
    x = ds.features.to_numpy(dtype=np.float64)
    pipeline = zoo.build_pipeline(ref.model, params, seed, ds.feature_names, class_weight)
    log.info("training %s on %d rows of %s", ref.name, len(train_rows), ds.source or ds.name)
    weights = zoo.sample_weights(y[train_rows], class_weight)
    fit_params = {} if weights is None else {"classifier__sample_weight": weights}
    pipeline.fit(x[train_rows], y[train_rows], **fit_params)
    classes = [str(c) for c in pipeline.classes_]
    predicted = pipeline.predict(x[test_rows])
    selection = pipeline.named_steps["select"].report()
    selection["excluded_by_loader"] = dict(ds.feature_notes)
    card = ModelCard(
        dataset=ds.name,
        task=ref.task,
        model=ref.model,
        features=ds.feature_names,
        classes=classes,
        metrics=score(y[test_rows], predicted, classes, ref.task),
        train_rows=len(train_rows),
        test_rows=len(test_rows),
        params={**pipeline.named_steps["classifier"].get_params(), "class_weighting": class_weight},
        seed=seed,
        test_size=test_size,
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
    )
    save(pipeline, card, ref.directory)
    log.info("saved %s: held-out accuracy %.4f, macro-F1 %.4f", ref.directory, card.metrics["accuracy"],
             card.metrics["macro_f1"])
    return TrainedModel(pipeline, card, ref.directory)


def train_grid(
    refs: list[ModelRef],
    progress: bool = True,
    class_weight: str = "balanced",
) -> list[dict[str, Any]]:
    """Train every model of ``refs`` (each dataset read once); one row per model with its scores and seconds."""
    rows: list[dict[str, Any]] = []
    loaded: dict[str, Dataset] = {}
    with tqdm(total=len(refs), unit="model", desc="train grid", disable=not progress) as bar:
        for ref in refs:
            bar.set_postfix_str(ref.name)
            if ref.dataset not in loaded:
                loaded = {ref.dataset: datasets.load(ref.dataset)}  # one dataset in memory at a time
            start = dt.datetime.now()
            trained = train(ref, loaded[ref.dataset], class_weight=class_weight)
            m = trained.card.metrics
            rows.append(
                {
                    "dataset": ref.dataset,
                    "task": ref.task_dir,
                    "model": ref.model,
                    "status": "trained",
                    "accuracy": m["accuracy"],
                    "macro_f1": m["macro_f1"],
                    "netml_overall": m["netml_overall"],
                    "seconds": (dt.datetime.now() - start).total_seconds(),
                }
            )
            bar.update()
    return rows


def grid(
    dataset_names: list[str] | None = None,
    tasks: list[str] | None = None,
    models: list[str] | None = None,
    models_dir: Any = None,
    seed: int | None = None,
) -> tuple[list[ModelRef], list[str]]:
    """The models of a grid (every dataset x task x model by default) and why some were left out.

    A task a dataset does not define (binary on netml) is left out with the reason; an unknown
    name fails.

    >>> refs, skipped = grid(["netml"], None, ["decision-tree"])
    >>> [r.name for r in refs], skipped
    (['netml/multi_class/decision-tree'], ['netml (ISCX-VPN-nonVPN2016 application classes) has no benign/attack split; use -t multi_class'])
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
            refs.extend(ModelRef(spec.name, task, model, seed=seed, **extra) for model in models or zoo.MODELS)
    return refs, list(dict.fromkeys(skipped))


def _reason(spec: datasets.DatasetSpec, task: str) -> str:
    try:
        spec.check_task(task)
    except ConfigError as err:
        return str(err)
    return ""
