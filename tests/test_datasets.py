"""Contract tests over every registered dataset, on its bundled sample.

Format details (dialects, label folding, list-valued fields, chunked reading) are in
tests/test_formats.py.
"""

import numpy as np
import pandas as pd
import pytest

from kstream.data import datasets
from kstream.errors import ConfigError, DataError

NAMES = datasets.available()

#: Rows of each bundled default sample, counted in shared/datasets/PROVENANCE.md.
ROWS = {"cicids2017": 25127, "netml": 18179, "nsl-kdd": 25192 + 22544}


@pytest.fixture(scope="module")
def loaded(samples):
    return {name: samples[name] for name in NAMES}


@pytest.fixture(params=NAMES)
def ds(request, loaded):
    return loaded[request.param]


def test_every_registered_dataset_is_tested():
    assert set(ROWS) == set(NAMES)


def test_bundled_sample_has_every_row_with_unique_ids(ds):
    assert len(ds) == ROWS[ds.name]
    assert ds.ids.is_unique and ds.ids.notna().all()
    assert len(ds.features) == len(ds.labels) == len(ds)
    assert all(len(values) == len(ds) for values in ds.levels.values())


def test_features_are_float64_and_never_leaky(ds):
    assert ds.features.dtypes.eq(np.float64).all()
    assert ds.features.columns.is_unique
    names = set(ds.feature_names)
    assert not {n for n in names if datasets.is_leaky(n)}
    assert not names & ds.spec.non_features
    # no feature column is the record id in disguise
    numeric_ids = pd.to_numeric(ds.ids.str.rsplit("-", n=1).str[-1], errors="coerce").to_numpy()
    for name in ds.feature_names:
        assert not np.array_equal(ds.features[name].to_numpy(), numeric_ids, equal_nan=True), name


def test_no_feature_is_all_missing_in_the_default_sample(ds):
    all_missing = [n for n in ds.feature_names if ds.features[n].isna().all()]
    assert not all_missing  # the default sample of each dataset has a value in every column


def test_levels_and_tasks_are_as_declared(ds):
    spec = ds.spec
    assert tuple(ds.levels) == spec.levels
    assert ds.level == ds.default_level == spec.default_level
    assert ds.labels.equals(ds.levels[spec.default_level].rename("label"))
    for level in spec.levels:
        other = ds.with_level(level)
        assert other.level == level
        assert other.target("multi_class").tolist() == ds.levels[level].tolist()
        assert other.ids.equals(ds.ids) and other.features is ds.features


def test_binary_target_or_a_clear_refusal(ds):
    spec = ds.spec
    if spec.benign_labels is None:
        with pytest.raises(ConfigError, match=rf"^{ds.name} \(.+\) has no benign/attack split; use -t multi_class$"):
            ds.target("binary_class")
        assert "binary_class" not in spec.tasks
        return
    y = ds.target("binary_class")
    assert set(y) == {"benign", "attack"}
    assert (y == "benign").sum() == ds.labels.isin(spec.benign_labels).sum() > 0
    for level in ds.levels:  # binary does not depend on the level
        assert ds.with_level(level).target("binary_class").equals(y)


def test_unknown_level_names_the_valid_ones(ds):
    with pytest.raises(ConfigError, match=f"choose one of: {', '.join(ds.levels)}"):
        ds.with_level("no-such-level")
    with pytest.raises(ConfigError, match="unknown label level 'no-such-level'"):
        datasets.load(ds.name, level="no-such-level")


@pytest.mark.parametrize("mode", [m for m in datasets.SPLIT_MODES if m != "temporal"])  # by time: test_temporal
def test_split_is_deterministic_disjoint_and_stratified(ds, mode):
    train, test = ds.split_index(seed=42, mode=mode)
    train2, test2 = ds.split_index(seed=42, mode=mode)
    assert np.array_equal(test, test2) and np.array_equal(train, train2)
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(ds)
    if ds.test_mask is not None:  # an official split: the test file's rows, whatever the seed
        assert np.array_equal(test, np.flatnonzero(ds.test_mask))
        assert np.array_equal(test, ds.split_index(seed=7, mode=mode)[1])
        return
    strata = ds.levels[ds.default_level]
    counts = strata.value_counts()
    share = strata.iloc[test].value_counts().reindex(counts.index, fill_value=0) / counts
    assert share[counts >= 10].between(0.1, 0.3).all()
    assert not np.array_equal(test, ds.split_index(seed=7, mode=mode)[1])


def test_split_is_the_same_whatever_the_level(ds):
    _, test = ds.split_index(seed=42)
    for level in ds.levels:
        assert np.array_equal(ds.with_level(level).split_index(seed=42)[1], test)


def test_subset_keeps_rows_and_levels_aligned(ds):
    test = ds.subset("test", seed=42)
    _, idx = ds.split_index(seed=42)
    assert list(test.ids) == list(ds.ids.iloc[idx])
    assert np.array_equal(test.features.to_numpy(), ds.features.to_numpy()[idx], equal_nan=True)
    for level, values in ds.levels.items():
        assert list(test.levels[level]) == list(values.iloc[idx])
    assert test.level == ds.level and test.feature_notes == ds.feature_notes


def test_feature_notes_and_source_describe_the_load(ds):
    assert ds.feature_notes and all(isinstance(v, str) and v for v in ds.feature_notes.values())
    assert "label-derived" in ds.feature_notes or "identifiers" in ds.feature_notes
    assert ds.source == str(ds.spec.bundled.relative_to(datasets.PROJECT_ROOT))


def test_nsl_kdd_uses_the_official_train_and_test_files(loaded):
    ds = loaded["nsl-kdd"]
    train, test = ds.split_index(seed=42)
    assert ds.ids.iloc[test].str.startswith("KDDTest+-").all() and len(test) == 22544
    assert ds.ids.iloc[train].str.startswith("KDDTrain+_20Percent-").all()
    assert "unknown" not in set(ds.labels)  # every attack of both files has a category


def test_cicids_grouped_level_is_a_coarsening_of_the_labels(loaded):
    ds = loaded["cicids2017"]
    pairs = pd.crosstab(ds.levels["label"], ds.levels["grouped"])
    assert ((pairs > 0).sum(axis=1) == 1).all()  # each class falls into exactly one group
    assert set(ds.levels["grouped"]) == {"BENIGN", "Bot", "BruteForce", "DoS", "Infiltration", "PortScan", "WebAttack"}


def test_the_bundled_csv_sample_has_only_the_grouped_level():
    ds = datasets.load("SELECTED_CICIDS", "csv-sample")
    assert len(ds) == 6311 and ds.ids.is_unique
    assert ds.level == "grouped" and list(ds.levels) == ["grouped"]
    assert ds.labels.value_counts().to_dict() == {
        "WebAttack": 2180, "Bot": 1966, "DoS": 952, "BruteForce": 553, "PortScan": 397, "BENIGN": 227,
        "Infiltration": 36,
    }  # fmt: skip
    assert (ds.target("binary_class") == "benign").sum() == 227
    # the canonical names, in the canonical order; the columns the 2017 CSVs never had are absent
    canonical = datasets.load("cicids2017").feature_names
    assert ds.feature_names == [c for c in canonical if c in ds.feature_names]
    assert set(canonical) - set(ds.feature_names) == {
        "Dst Port", "Protocol", "Fwd RST Flags", "Bwd RST Flags", "ICMP Code", "ICMP Type", "Total TCP Flow Time"
    }
    with pytest.raises(DataError, match=r"no labels at level 'label' \(only grouped\)"):
        ds.with_level("label")


def test_names_and_aliases_resolve_case_insensitively():
    assert datasets.resolve_name("selected_cicids") == "cicids2017"
    assert datasets.resolve_name("Selected_Net") == "netml"
    assert datasets.resolve_name("NSL-KDD") == "nsl-kdd"
    assert datasets.available() == list(datasets.REGISTRY)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ConfigError) as err:
        datasets.load("NSL")
    assert str(err.value) == (
        "unknown dataset 'NSL'; choose one of: cicids2017 (alias SELECTED_CICIDS), netml (alias SELECTED_NET), nsl-kdd"
    )


def test_missing_data_path_says_what_to_pass(tmp_path):
    with pytest.raises(DataError, match="--data"):
        datasets.load("cicids2017", tmp_path / "nope.csv")


def test_a_folder_without_data_files_is_a_clear_error(tmp_path):
    for name in NAMES:
        with pytest.raises(DataError, match=str(tmp_path)):
            datasets.load(name, tmp_path)
