import numpy as np
import pytest

from kstream import datasets
from kstream.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def ds():
    return datasets.load("cicids2017")


def test_bundled_sample_has_every_row_with_unique_ids(ds):
    assert len(ds) == 25127  # PROVENANCE.md: 16 files, 25,127 rows
    assert ds.ids.is_unique
    assert ds.labels.value_counts()["BENIGN"] == 2500


def test_no_identifier_address_time_or_label_column_is_a_feature(ds):
    banned = {"id", "flow id", "src ip", "dst ip", "src port", "timestamp", "label", "attempted category"}
    assert not banned & {c.lower() for c in ds.feature_names}
    assert ds.features.dtypes.eq(np.float64).all()


def test_binary_target_maps_only_benign_to_benign(ds):
    y = ds.target("binary_class")
    assert (y == "benign").sum() == (ds.labels == "BENIGN").sum()
    assert set(y) == {"benign", "attack"}


def test_split_is_deterministic_disjoint_and_stratified(ds):
    train, test = ds.split_index(seed=42)
    train2, test2 = ds.split_index(seed=42)
    assert np.array_equal(test, test2) and np.array_equal(train, train2)
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(ds)
    share = ds.labels.iloc[test].value_counts() / ds.labels.value_counts()
    assert share.between(0.1, 0.3).all()  # every class, even Heartbleed (11 rows), lands in test
    assert not np.array_equal(test, ds.split_index(seed=7)[1])


def test_subset_keeps_rows_aligned(ds):
    test = ds.subset("test")
    _, idx = ds.split_index()
    assert list(test.ids) == list(ds.ids.iloc[idx])
    assert np.array_equal(test.features.to_numpy(), ds.features.to_numpy()[idx], equal_nan=True)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ConfigError, match="choose one of: cicids2017"):
        datasets.load("NSL")


def test_missing_data_path_says_what_to_pass(tmp_path):
    with pytest.raises(DataError, match="--data"):
        datasets.load("cicids2017", tmp_path / "nope.csv")
