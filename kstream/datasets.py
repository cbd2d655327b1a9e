"""Registered network-flow datasets: loading, labels, record ids and the split.

A dataset loads into a :class:`Dataset`: one stable record id per row, the
numeric feature columns that may reach a model, and the raw class label. The
binary task maps every label to ``benign`` or ``attack``; the multi-class task
keeps the attack type. Both tasks share one deterministic split, stratified on
the attack type, so "the test records" mean the same rows whatever the task.

>>> ds = load("SELECTED_CICIDS")
>>> ds.name, len(ds) > 20000, ds.ids.is_unique
('cicids2017', True, True)
>>> sorted(ds.target("binary_class").unique())
['attack', 'benign']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from kstream.config import DATASETS_DIR, TASKS
from kstream.errors import ConfigError, DataError

__all__ = ["Dataset", "DatasetSpec", "REGISTRY", "available", "resolve_name", "load"]

log = logging.getLogger(__name__)

BENIGN, ATTACK = "benign", "attack"
SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: ids, features and labels aligned row by row."""

    name: str
    ids: pd.Series  # str, unique
    features: pd.DataFrame  # float64, may hold NaN and inf as the sources do
    labels: pd.Series  # raw attack type per row
    benign_labels: frozenset[str]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features.columns)

    def target(self, task: str) -> pd.Series:
        """Class per row for ``task``: benign/attack, or the attack type."""
        if task == "binary_class":
            return self.labels.map(lambda v: BENIGN if v in self.benign_labels else ATTACK).rename("target")
        if task == "multi_class":
            return self.labels.rename("target")
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")

    def split_index(self, test_size: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of the train and test parts, stratified on the attack type.

        Classes too small to stratify (one row) stay in the training part.
        """
        counts = self.labels.map(self.labels.value_counts())
        positions = np.arange(len(self))
        small = positions[(counts < 2).to_numpy()]
        rest = positions[(counts >= 2).to_numpy()]
        train, test = train_test_split(
            rest, test_size=test_size, random_state=seed, stratify=self.labels.to_numpy()[rest]
        )
        return np.sort(np.concatenate([train, small])), np.sort(test)

    def subset(self, split: str = "test", test_size: float = 0.2, seed: int = 42) -> Dataset:
        """The ``train``, ``test`` or ``all`` rows as a dataset of their own."""
        if split == "all":
            return self
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        train, test = self.split_index(test_size, seed)
        rows = train if split == "train" else test
        return Dataset(
            self.name,
            self.ids.iloc[rows].reset_index(drop=True),
            self.features.iloc[rows].reset_index(drop=True),
            self.labels.iloc[rows].reset_index(drop=True),
            self.benign_labels,
        )

    def truth(self, task: str) -> pd.DataFrame:
        """Ground truth as a frame ``record_id, true_label`` for joining to predictions."""
        return pd.DataFrame({"record_id": self.ids.to_numpy(), "true_label": self.target(task).to_numpy()})

    def iter_records(self) -> Iterator[tuple[str, list[str], np.ndarray]]:
        """Yield ``(record_id, feature_names, values)`` per row without building a frame per row."""
        names = self.feature_names
        matrix = self.features.to_numpy(dtype=np.float64)
        for rid, row in zip(self.ids.to_numpy(), matrix):
            yield rid, names, row


@dataclass(frozen=True)
class DatasetSpec:
    """How to find and read one dataset."""

    name: str
    aliases: tuple[str, ...]
    description: str
    bundled: Path
    reader: Callable[[Path], Dataset]

    def load(self, path: Path | None = None) -> Dataset:
        source = Path(path) if path is not None else self.bundled
        if not source.exists():
            raise DataError(f"no data at {source}; pass --data with a file or folder of {self.description}")
        return self.reader(source)


# --- CICIDS2017, CICFlowMeter CSVs ------------------------------------------------------------

#: Columns that identify a flow or come from its label: never features.
CICIDS_NON_FEATURES = (
    "id",
    "Flow ID",
    "Src IP",
    "Src Port",
    "Dst IP",
    "Timestamp",
    "Label",
    "Attempted Category",
)
CICIDS_BENIGN = frozenset({"BENIGN"})


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    if not files:
        raise DataError(f"no .csv or .csv.gz files in {path}")
    return files


def _read_cicids2017(path: Path) -> Dataset:
    frames = []
    for file in _csv_files(path):
        try:
            frame = pd.read_csv(file, low_memory=False)
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise DataError(f"cannot read {file}: {err}") from err
        frame.columns = [str(c).strip() for c in frame.columns]
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    missing = {"id", "Timestamp", "Label"} - set(data.columns)
    if missing:
        raise DataError(f"{path} is not a CICFlowMeter CSV with id/Timestamp/Label columns (missing {sorted(missing)})")
    # `id` restarts per capture day; (day, id) is unique over the whole release.
    ids = data["Timestamp"].astype(str).str.slice(0, 10) + "-" + data["id"].astype(str)
    if not ids.is_unique:
        raise DataError(f"record ids (capture day + id) are not unique in {path}")
    feature_cols = [c for c in data.columns if c not in CICIDS_NON_FEATURES]
    features = data[feature_cols].apply(pd.to_numeric, errors="coerce").astype(np.float64)
    labels = data["Label"].astype(str).str.strip()
    log.info("loaded %d cicids2017 rows with %d features from %s", len(data), len(feature_cols), path)
    return Dataset("cicids2017", ids.rename("record_id"), features, labels.rename("label"), CICIDS_BENIGN)


REGISTRY: dict[str, DatasetSpec] = {
    "cicids2017": DatasetSpec(
        name="cicids2017",
        aliases=("SELECTED_CICIDS",),
        description="CICIDS2017 CICFlowMeter CSVs (id, Timestamp, flow features, Label)",
        bundled=DATASETS_DIR / "cicids2017-improved-sample",
        reader=_read_cicids2017,
    ),
}


def available() -> list[str]:
    """Canonical names of the registered datasets.

    >>> available()
    ['cicids2017']
    """
    return list(REGISTRY)


def resolve_name(name: str) -> str:
    """The canonical dataset name for a name or alias (case-insensitive).

    >>> resolve_name("selected_cicids")
    'cicids2017'
    """
    wanted = str(name).strip().lower()
    for spec in REGISTRY.values():
        if wanted == spec.name.lower() or wanted in (a.lower() for a in spec.aliases):
            return spec.name
    choices = ", ".join(
        f"{s.name} (alias {', '.join(s.aliases)})" if s.aliases else s.name for s in REGISTRY.values()
    )
    raise ConfigError(f"unknown dataset {name!r}; choose one of: {choices}")


def load(name: str, path: str | Path | None = None) -> Dataset:
    """Load a registered dataset from its bundled sample, or from ``path``."""
    return REGISTRY[resolve_name(name)].load(Path(path) if path is not None else None)
