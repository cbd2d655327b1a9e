"""Registered network-flow datasets: loading, label levels, record ids and the split.

A dataset loads into a :class:`Dataset`: one stable record id per row, the numeric feature
columns that may reach a model (float64, never ids, addresses, timestamps or anything derived
from the label), and the class label at one of the dataset's label *levels* (e.g. NSL-KDD's
``category`` or ``attack``). The binary task maps every label to ``benign`` or ``attack`` (for
datasets that have such a split); the multi-class task keeps the class. All tasks and levels share
one deterministic split per seed, stratified on the default level, so "the test records" of a seed
are the same rows whatever the task or level. Task and level names are checked here and nowhere
else (:meth:`DatasetSpec.check_task`, :meth:`DatasetSpec.check_level`). How each format is parsed
lives in :mod:`kstream.data.formats`.

>>> ds = load("SELECTED_CICIDS")
>>> ds.name, len(ds) > 20000, ds.ids.is_unique, ds.level
('cicids2017', True, True, 'label')
>>> sorted(ds.target("binary_class").unique())
['attack', 'benign']
>>> sorted(ds.with_level("grouped").labels.unique())
['BENIGN', 'Bot', 'BruteForce', 'DoS', 'Infiltration', 'PortScan', 'WebAttack']
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kstream.data import leakage
from kstream.data.formats import CHUNK_ROWS, Table, read_cicflowmeter, read_netml, read_nsl_kdd
from kstream.data.formats.cicflowmeter import CICIDS_DROPPED, read_feature_names
from kstream.data.formats.kdd import NSL_KDD_DROPPED
from kstream.data.formats.netml import NETML_DROPPED
from kstream.data.formats.pcap import is_capture
from kstream.data.formats.times import describe_time
from kstream.data.formats.vocabulary import LEAKY, canonical_name, is_leaky
from kstream.data.order import order_positions
from kstream.errors import ConfigError, DataError
from kstream.paths import DATASETS_DIR, PROJECT_ROOT

__all__ = [
    "TASKS",
    "BENIGN",
    "ATTACK",
    "DEFAULT_SEED",
    "Dataset",
    "DatasetSpec",
    "REGISTRY",
    "SPLITS",
    "SPLIT_MODES",
    "LEAKY",
    "is_leaky",
    "available",
    "resolve_name",
    "spec",
    "is_capture",
    "load",
]

log = logging.getLogger(__name__)

TASKS = ("binary_class", "multi_class")
BENIGN, ATTACK = "benign", "attack"
SPLITS = ("train", "test", "all")
DEFAULT_SEED = 42  # the split's (and the models') seed unless one is given
SPLIT_MODES = leakage.SPLIT_MODES

@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: ids, features and labels aligned row by row.

    ``features`` holds the columns the source really has. ``labels`` holds the level named
    ``level``; ``levels`` holds every level the source has. ``default_level`` is the level the
    split is stratified on and the binary task reads, so neither depends on the level chosen.
    ``test_mask``, when set, is an official test split (NSL-KDD's KDDTest+ rows) that
    :meth:`split_index` returns instead of its own. ``times``, when the source has a timestamp
    column, is each flow's time (datetime64[ns], as the file gives it): never a feature, it orders
    a stream (:meth:`in_order`) and places a temporal split; None for sources without one.
    """

    name: str
    ids: pd.Series  # str, unique
    features: pd.DataFrame  # float64, may hold NaN and inf as the sources do
    labels: pd.Series  # class per row at `level`
    levels: dict[str, pd.Series] = field(default_factory=dict)
    level: str = ""
    default_level: str = ""
    feature_notes: dict[str, str] = field(default_factory=dict)  # column group -> what was done and why
    source: str = ""
    test_mask: np.ndarray | None = None
    labelled: bool = True  # False for flows from a packet capture: features, no ground truth
    times: pd.Series | None = None  # datetime64[ns] per row, aligned with ids; None: the source has no times

    def __post_init__(self) -> None:
        if not self.level:
            object.__setattr__(self, "level", self.spec.default_level)
        if not self.levels:
            object.__setattr__(self, "levels", {self.level: self.labels})
        if not self.default_level:
            object.__setattr__(self, "default_level", self.level)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def spec(self) -> DatasetSpec:
        """The registry entry of this dataset."""
        return REGISTRY[self.name]

    @property
    def feature_names(self) -> list[str]:
        return list(self.features.columns)

    @property
    def data_option(self) -> str:
        """The ``--data`` option that reads this data again (empty for the default bundled sample).

        >>> load("cicids2017", "csv-sample").data_option
        '--data csv-sample'
        """
        if self.source == _describe_source(self.spec.bundled):
            return ""
        sample = next((name for name, path in self.spec.samples.items() if _describe_source(path) == self.source), None)
        return f"--data {sample or self.source}"

    def with_level(self, level: str) -> Dataset:
        """The same rows with ``labels`` at another level (the split does not change).

        >>> load("nsl-kdd").with_level("attack").labels.iloc[0]
        'neptune'
        """
        if level not in self.levels:
            self.spec.check_level(level)  # an unknown name: ConfigError naming the choices
            raise DataError(
                f"{self.source or self.name} has no labels at level {level!r} (only {', '.join(self.levels)}); "
                f"pass --level {self.default_level} or data with {level!r} labels"
            )
        return dataclasses.replace(self, labels=self.levels[level].rename("label"), level=level)

    def target(self, task: str) -> pd.Series:
        """Class per row for ``task``: benign/attack, or the class at the current level."""
        self.spec.check_task(task)
        if not self.labelled:
            raise DataError(f"{self.source or self.name} holds flows from packets: it has no labels to train or "
                            "score with (a model for it trains on the bundled sample, restricted to its features)")
        if task == "binary_class" and self.spec.benign_labels is not None:  # check_task: binary has a split
            strata = self.levels[self.default_level]
            binary = np.where(strata.isin(self.spec.benign_labels), BENIGN, ATTACK)
            return pd.Series(binary, index=strata.index, dtype="str", name="target")
        return self.labels.rename("target")

    @functools.cached_property
    def vector_hashes(self) -> np.ndarray:
        """One hash per row of its feature vector (:func:`kstream.data.leakage.vector_hashes`), computed once."""
        return leakage.vector_hashes(self.features)

    def split_index(self, *, seed: int, test_size: float = 0.2, mode: str = leakage.DEFAULT_SPLIT_MODE,
                    until: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Row positions of the train and test parts for a split ``seed``.

        Stratified on the default level. ``mode`` ``grouped`` keeps the rows of one feature vector
        on one side (:func:`kstream.data.leakage.grouped_split`); ``random`` is the split of earlier
        kstream versions, over rows. Classes too small to stratify stay in the training part.
        ``temporal`` trains on the earliest rows by time and holds out the rest
        (:func:`kstream.data.leakage.temporal_split`: the last ``test_size`` of the rows, or those
        from ``until`` on); data without times is refused with a ConfigError naming the fix. A dataset
        with an official split (``test_mask``) returns that one for the other modes, and
        ``test_size``, ``seed`` and ``mode`` do not apply.

        >>> train, test = load("cicids2017").split_index(seed=42, mode="temporal", until="2017-07-07")
        >>> len(train) > len(test) > 0
        True
        """
        positions = np.arange(len(self))
        if leakage.check_split_mode(mode) == "temporal":
            if self.times is None:
                raise ConfigError(f"{self.source or self.name} has no flow times, so it cannot be split by time: use "
                                  "--split-mode grouped or random, or data with a Timestamp column")
            return leakage.temporal_split(self.times, test_size=test_size, until=until, what=self.source or self.name)
        if self.test_mask is not None:
            return positions[~self.test_mask], positions[self.test_mask]
        groups = self.vector_hashes if mode == "grouped" else None
        return leakage.split(self.levels[self.default_level], seed=seed, test_size=test_size, mode=mode,
                             groups=groups, what=self.name)

    def time_range(self) -> tuple[str, str] | None:
        """The first and last time of the rows as ISO text (None without times or rows).

        >>> load("cicids2017").time_range()
        ('2017-07-03T11:57:41.826651', '2017-07-07T20:02:39.567285')
        """
        if self.times is None or not len(self.times):
            return None
        return describe_time(self.times.min()), describe_time(self.times.max())

    def in_order(self, order: str = "", seed: int | None = None) -> Dataset:
        """The same rows in the order records are sent in (:func:`kstream.data.order.order_positions`):
        ``time`` (by time, ties in file order), ``shuffle`` (seeded: ``seed``, else
        :data:`DEFAULT_SEED`) or ``file``; empty means ``time`` when the data has times, else ``shuffle``.

        >>> ds = load("nsl-kdd")
        >>> ds.in_order().ids.tolist() == ds.in_order("shuffle", seed=42).ids.tolist() != ds.ids.tolist()
        True
        """
        return self.take(order_positions(len(self), order, self.times, DEFAULT_SEED if seed is None else seed,
                                         what=self.source or self.name))

    def subset(self, split: str, *, seed: int | None = None, test_size: float = 0.2,
               mode: str = leakage.DEFAULT_SPLIT_MODE, until: str = "") -> Dataset:
        """The ``train``, ``test`` or ``all`` rows as a dataset of their own (``seed``, ``mode`` and, for a
        temporal split, ``until`` name the split).

        >>> ds = load("cicids2017")
        >>> len(ds.subset("test", seed=7)) == len(ds.subset("test", seed=42)), len(ds.subset("all")) == len(ds)
        (True, True)
        """
        if split == "all":
            return self
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        if seed is None:
            raise ConfigError(f"the {split} split needs the split seed (the model card's `seed`)")
        train, test = self.split_index(seed=seed, test_size=test_size, mode=mode, until=until)
        return self.take(train if split == "train" else test)

    def restrict(self, features: Sequence[str], source: str = "") -> Dataset:
        """The same rows with only ``features`` (any spelling the format knows, kept in canonical order).

        A name the data has no column for is a DataError listing them; ``source`` (where the list
        came from) is noted in ``feature_notes`` and so on the model card.

        >>> ds = load("cicids2017").restrict(["Flow Duration", "tot_fwd_pkts", "Dst Port"], "a test")
        >>> ds.feature_names
        ['Dst Port', 'Flow Duration', 'Total Fwd Packet']
        """
        wanted = {self.spec.feature_name(f) for f in features}
        unknown = sorted(wanted - set(self.feature_names))
        if unknown:
            raise DataError(f"{len(unknown)} of the features asked for are not columns of {self.source or self.name}: "
                            f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}")
        if not wanted:
            raise DataError("no features left to train on: the list of features is empty")
        kept = [f for f in self.feature_names if f in wanted]
        notes = {**self.feature_notes, "restricted": f"restricted to the {len(kept)} features of {source or 'a list'}"}
        return dataclasses.replace(self, features=self.features[kept], feature_notes=notes)

    def take(self, rows: np.ndarray) -> Dataset:
        """The rows at positions ``rows``, every level, mask and time kept aligned."""

        def pick(series: pd.Series) -> pd.Series:
            return series.iloc[rows].reset_index(drop=True)

        return dataclasses.replace(
            self,
            ids=pick(self.ids),
            features=self.features.iloc[rows].reset_index(drop=True),
            labels=pick(self.labels),
            levels={name: pick(values) for name, values in self.levels.items()},
            test_mask=None if self.test_mask is None else self.test_mask[rows],
            times=None if self.times is None else pick(self.times),
        )

    def truth(self, task: str) -> pd.DataFrame:
        """Ground truth as a frame ``record_id, true_label`` for joining to predictions (empty when unlabelled)."""
        if not self.labelled:
            return pd.DataFrame({"record_id": pd.Series(dtype="str"), "true_label": pd.Series(dtype="str")})
        return pd.DataFrame({"record_id": self.ids.to_numpy(), "true_label": self.target(task).to_numpy()})


@dataclass(frozen=True)
class DatasetSpec:
    """What kstream knows about one dataset: names, label levels, samples, citation, its reader."""

    name: str
    aliases: tuple[str, ...]
    title: str  # what the classes are, in a few words
    description: str  # what --data must point at
    levels: tuple[str, ...]  # label levels, default first
    benign_labels: frozenset[str] | None  # the binary mapping; None: no benign/attack split
    bundled: Path  # the default bundled sample
    samples: Mapping[str, Path]  # every bundled sample, by name (also accepted as --data)
    citation: str  # whom to cite for the data (copied onto model cards and reports)
    dropped: Mapping[str, tuple[str, ...]]  # source columns that never become features, by reason
    reader: Callable[..., Table]  # reader(path, chunksize, label_column=None)
    names_reader: Callable[[Path], list[str]] | None = None  # the features a file holds, from its header only
    captures: bool = False  # packet captures (.pcap, .pcapng) read as flows of this dataset's features
    canonical: Callable[[str], str | None] | None = None  # another spelling of a feature -> its canonical name

    def feature_name(self, name: str) -> str:
        """The canonical name of a feature written any way this format knows (else ``name`` as given)."""
        return (self.canonical(name) if self.canonical else None) or str(name).strip()

    def feature_names_of(self, path: str | Path, label_column: str | None = None) -> list[str]:
        """The features the data at ``path`` holds (from file headers where the format allows)."""
        source = self.resolve_source(path)
        if not source.exists():
            raise DataError(f"no data at {source}; pass a file or folder of {self.description}")
        if self.names_reader is not None:
            return self.names_reader(source)
        return self.load(source, label_column=label_column).feature_names

    @property
    def default_level(self) -> str:
        return self.levels[0]

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks defined on this dataset (binary needs a benign/attack split)."""
        return TASKS if self.benign_labels is not None else ("multi_class",)

    def check_task(self, task: str) -> str:
        """``task`` if it is defined on this dataset, else a ConfigError naming the fix.

        >>> REGISTRY["netml"].check_task("binary_class")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        kstream.errors.ConfigError: netml (ISCX-VPN-nonVPN2016 application classes) has no benign/attack split; use -t
            multi_class
        """
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
        if task not in self.tasks:
            raise ConfigError(f"{self.name} ({self.title}) has no benign/attack split; use -t multi_class")
        return task

    def check_level(self, level: str) -> str:
        """``level`` if it is one of this dataset's label levels, else a ConfigError naming them.

        >>> REGISTRY["nsl-kdd"].check_level("fine")
        Traceback (most recent call last):
        ...
        kstream.errors.ConfigError: unknown label level 'fine' for nsl-kdd; choose one of: category, attack
        """
        if level not in self.levels:
            raise ConfigError(f"unknown label level {level!r} for {self.name}; choose one of: {', '.join(self.levels)}")
        return level

    @property
    def non_features(self) -> frozenset[str]:
        return frozenset(name for names in self.dropped.values() for name in names)

    def resolve_source(self, path: str | Path | None = None) -> Path:
        """The file or folder to read: the default sample, a bundled sample by name, or ``path``."""
        if path is None or str(path) == "":
            return self.bundled
        if str(path) in self.samples and not Path(path).exists():
            return self.samples[str(path)]
        return Path(path).expanduser()

    def load(self, path: str | Path | None = None, level: str | None = None, chunksize: int | None = None,
             label_column: str | None = None) -> Dataset:
        """Read the dataset from ``path`` (default: the bundled sample), labels at ``level``
        (``label_column``: the column holding the class, for CSVs that do not call it Label).

        Without ``level`` the labels are at the dataset's default level if the source has it,
        else at the first level it has (a file of grouped labels only loads at ``grouped``).
        """
        if level:
            self.check_level(level)
        source = self.resolve_source(path)
        if not source.exists():
            raise DataError(f"no data at {source}; pass --data with a file or folder of {self.description}")
        if self.captures and is_capture(source):
            return self._load_capture(source)
        table = self.reader(source, chunksize or CHUNK_ROWS, label_column or None)
        if not len(table.ids):
            raise DataError(f"{source} holds no {self.name} rows")
        if not table.ids.is_unique:
            dup = table.ids[table.ids.duplicated()].iloc[0]
            raise DataError(f"record ids are not unique in {source} (e.g. {dup!r}); is a file given twice?")
        default = next((name for name in self.levels if name in table.levels), None)
        if default is None:
            raise DataError(f"{source} holds none of the {self.name} label levels {', '.join(self.levels)}")
        ds = Dataset(
            name=self.name,
            ids=table.ids.rename("record_id"),
            features=table.features,
            labels=table.levels[default].rename("label"),
            levels=table.levels,
            level=default,
            default_level=default,
            feature_notes=table.notes,
            source=_describe_source(source),
            test_mask=table.test_mask,
            times=table.times,
        )
        log.info("loaded %d %s rows with %d features from %s", len(ds), self.name, ds.features.shape[1], ds.source)
        return ds.with_level(level) if level else ds

    def _load_capture(self, source: Path) -> Dataset:
        """The flows of a packet capture as an unlabelled dataset of this dataset's features."""
        from kstream.data.formats.capture import flows_from_pcap  # NFStream only when a capture is read

        ids, features = flows_from_pcap(source)
        if not len(ids):
            raise DataError(f"{source} holds no flow of two packets or more")
        return self.flows(ids, features, _describe_source(source))

    def flows(self, ids: pd.Series, features: pd.DataFrame, source: str) -> Dataset:
        """Flows metered from packets (:mod:`kstream.data.formats.capture`) as an unlabelled dataset of this
        dataset's features."""
        unknown = pd.Series("unlabelled", index=ids.index, dtype="str", name="label")
        return Dataset(
            name=self.name, ids=ids.rename("record_id").reset_index(drop=True),
            features=features.reset_index(drop=True),
            labels=unknown.reset_index(drop=True), levels={self.default_level: unknown.reset_index(drop=True)},
            level=self.default_level, default_level=self.default_level,
            feature_notes={"capture": f"flows metered from the packets of {source} (kstream.data.formats.capture): "
                           f"{features.shape[1]} CICFlowMeter features, no labels"},
            source=source, labelled=False,
        )


def _describe_source(source: Path) -> str:
    """The path read: relative to the checkout when inside it (bundled samples), else absolute."""
    resolved, root = source.resolve(), PROJECT_ROOT.resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


REGISTRY: dict[str, DatasetSpec] = {
    "cicids2017": DatasetSpec(
        name="cicids2017",
        aliases=("SELECTED_CICIDS",),
        title="CICIDS2017 benign and attack flows",
        description="CICIDS2017 CICFlowMeter CSVs (improved re-extraction, MachineLearningCVE, "
        "GeneratedLabelledFlows or the resampled CICIDS2017_sample.csv)",
        levels=("label", "grouped"),
        benign_labels=frozenset({"BENIGN"}),
        bundled=DATASETS_DIR / "cicids2017-improved-sample",
        samples={
            "improved-sample": DATASETS_DIR / "cicids2017-improved-sample",
            "csv-sample": DATASETS_DIR / "cicids2017-csv-sample",
        },
        citation="I. Sharafaldin, A. H. Lashkari, A. A. Ghorbani, \"Toward Generating a New Intrusion Detection "
        "Dataset and Intrusion Traffic Characterization\", ICISSP 2018; G. Engelen, V. Rimmer, W. Joosen, "
        "\"Troubleshooting an Intrusion Detection Dataset: the CICIDS2017 Case Study\", IEEE SPW 2021; "
        "L. Liu, G. Engelen, T. Lynar, D. Essam, W. Joosen, \"Error Prevalence in NIDS datasets: A Case Study "
        "on CIC-IDS-2017 and CSE-CIC-IDS-2018\", IEEE CNS 2022",
        dropped=CICIDS_DROPPED,
        reader=read_cicflowmeter,
        names_reader=read_feature_names,
        canonical=canonical_name,
        captures=True,
    ),
    "netml": DatasetSpec(
        name="netml",
        aliases=("SELECTED_NET",),
        title="ISCX-VPN-nonVPN2016 application classes",
        description="NetML-challenge flows (a *_set.json[.gz] JSON-lines file with its *_anno_top/mid/fine "
        "annotation files)",
        levels=("top", "mid", "fine"),
        benign_labels=None,
        bundled=DATASETS_DIR / "netml-iscx-vpn-nonvpn2016",
        samples={"iscx-vpn-nonvpn2016": DATASETS_DIR / "netml-iscx-vpn-nonvpn2016"},
        citation="O. Barut, Y. Luo, T. Zhang, W. Li, P. Li, \"NetML: A Challenge for Network Traffic Analytics\", "
        "arXiv:2004.13006, 2020; G. Draper-Gil, A. H. Lashkari, M. Mamun, A. A. Ghorbani, \"Characterization "
        "of Encrypted and VPN Traffic Using Time-related Features\", ICISSP 2016; O. Barut et al., "
        "\"Multi-Task Hierarchical Learning Based Network Traffic Analytics\", IEEE ICC 2021",
        dropped=NETML_DROPPED,
        reader=read_netml,
    ),
    "nsl-kdd": DatasetSpec(
        name="nsl-kdd",
        aliases=(),
        title="NSL-KDD normal and attack connections",
        description="NSL-KDD files in KDD format (KDDTrain+*.txt[.gz], KDDTest+.txt[.gz])",
        levels=("category", "attack"),
        benign_labels=frozenset({"normal"}),
        bundled=DATASETS_DIR / "nsl-kdd",
        samples={"nsl-kdd": DATASETS_DIR / "nsl-kdd"},
        citation="M. Tavallaee, E. Bagheri, W. Lu, A. A. Ghorbani, \"A Detailed Analysis of the KDD CUP 99 "
        "Data Set\", IEEE CISDA 2009",
        dropped=NSL_KDD_DROPPED,
        reader=read_nsl_kdd,
    ),
}


def available() -> list[str]:
    """Canonical names of the registered datasets.

    >>> available()
    ['cicids2017', 'netml', 'nsl-kdd']
    """
    return list(REGISTRY)


def resolve_name(name: str) -> str:
    """The canonical dataset name for a name or alias (case-insensitive).

    >>> resolve_name("selected_cicids"), resolve_name("NSL-KDD")
    ('cicids2017', 'nsl-kdd')
    """
    wanted = str(name).strip().lower()
    for spec in REGISTRY.values():
        if wanted == spec.name.lower() or wanted in (a.lower() for a in spec.aliases):
            return spec.name
    choices = ", ".join(
        f"{s.name} (alias {', '.join(s.aliases)})" if s.aliases else s.name for s in REGISTRY.values()
    )
    raise ConfigError(f"unknown dataset {name!r}; choose one of: {choices}")


def spec(name: str) -> DatasetSpec:
    """The registry entry for a dataset name or alias.

    >>> spec("SELECTED_NET").default_level
    'top'
    """
    return REGISTRY[resolve_name(name)]


def load(
    name: str, path: str | Path | None = None, level: str | None = None, *, chunksize: int | None = None,
    label_column: str | None = None,
) -> Dataset:
    """Load a registered dataset from its bundled sample, or from ``path``, labels at ``level``.

    ``path`` may also name a bundled sample (``DatasetSpec.samples``), e.g. ``"csv-sample"``.

    >>> ds = load("netml")
    >>> ds.level, ds.spec.tasks, len(ds)
    ('top', ('multi_class',), 18179)
    """
    return REGISTRY[resolve_name(name)].load(path, level, chunksize, label_column)
