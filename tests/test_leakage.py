"""Identical feature vectors: the grouped split, the leakage counts, the ceiling and the learning curve.

The expectations are computed here without kstream.data.leakage: rows are compared through a text key of
their values (NaN as 'nan', -0.0 as 0.0), so a bug in the hashing cannot hide itself.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from kstream import app
from kstream.data import leakage
from kstream.errors import ConfigError, ModelError
from kstream.modeling import artifacts, training
from kstream.modeling.quality import score
from kstream.settings import Settings

SAMPLES = ["cicids2017", "csv-sample", "netml", "nsl-kdd"]


def keys(frame: pd.DataFrame) -> np.ndarray:
    """One text key per row of its values: equal keys, equal vectors."""
    values = frame.to_numpy(dtype=float) + 0.0
    return np.array(["|".join(map(repr, row)) for row in values.tolist()])


# --- pure logic on crafted data ------------------------------------------------------------------------


def test_hashes_are_equal_exactly_when_the_vectors_are():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.integers(0, 3, size=(400, 4)).astype(float), columns=list("abcd"))
    x.iloc[::7, 1] = np.nan
    x.iloc[::5, 2] = -0.0
    x.iloc[1::5, 2] = 0.0
    x.iloc[3, :] = [np.inf, -np.inf, np.nan, 1.0]
    x.iloc[9, :] = [np.inf, -np.inf, np.nan, 1.0]
    for columns in (None, ["c", "a"]):
        frame = x if columns is None else x[columns]
        h, k = leakage.vector_hashes(x, columns), keys(frame)
        same_hash = h[:, None] == h[None, :]
        assert np.array_equal(same_hash, k[:, None] == k[None, :])
    assert leakage.vector_hashes(x)[3] == leakage.vector_hashes(x)[9]
    assert not np.array_equal(leakage.vector_hashes(x, ["a", "c"]), leakage.vector_hashes(x, ["c", "a"]))


def test_conflict_counts_on_a_crafted_dataset_with_known_duplicates_and_conflicts():
    #        vector:  A    A    A    B    C    C    D    D    D    D    E
    x = pd.DataFrame({"f": [1.0, 1.0, 1.0, 2.0, 3.0, 3.0, np.nan, np.nan, np.nan, np.nan, 5.0],
                      "g": [0.0, -0.0, 0.0, 0.0, 1.0, 1.0, 4.0, 4.0, 4.0, 4.0, 4.0]})
    y = ["dos", "dos", "benign", "dos", "web", "web", "dos", "benign", "benign", "web", "benign"]
    found = leakage.conflicts(leakage.vector_hashes(x), y)
    assert found["rows"] == 11 and found["vectors"] == 5
    assert found["duplicate_rows"] == 3 + 2 + 4 and found["duplicate_share"] == pytest.approx(9 / 11)
    assert found["multi_label_vectors"] == 2 and found["multi_label_rows"] == 3 + 4  # A and D
    assert found["multi_label_share"] == pytest.approx(7 / 11)
    assert found["ceiling"] == pytest.approx((2 + 1 + 2 + 2 + 1) / 11)


def test_the_ceiling_on_a_hand_computed_case():
    hashes = np.array([1, 1, 1, 2, 3, 3, 3, 3], dtype=np.uint64)
    labels = ["x", "x", "y", "y", "x", "y", "y", "z"]
    # vector 1: x twice, y once -> 2; vector 2: 1; vector 3: y twice -> 2; (2 + 1 + 2) / 8
    assert leakage.ceiling(hashes, labels) == pytest.approx(5 / 8)
    assert leakage.ceiling(hashes, ["x"] * 8) == 1.0
    assert np.isnan(leakage.ceiling(np.array([], dtype=np.uint64), []))


def test_unknown_split_modes_fail_with_the_choices():
    with pytest.raises(ConfigError, match="choose one of: grouped, random"):
        Settings(split_mode="by-day")
    with pytest.raises(ConfigError, match="unknown split mode 'by-day'"):
        leakage.split(np.array(["a", "b"] * 5), seed=1, mode="by-day")


# --- the split on every bundled sample ----------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_the_grouped_split_keeps_each_vector_on_one_side_stratified_at_the_test_size(samples, name):
    ds = samples[name]
    strata = ds.levels[ds.default_level]
    if ds.test_mask is None:
        train, test = ds.split_index(seed=42)
    else:  # NSL-KDD keeps its official split; the grouped split is checked on its rows all the same
        train, test = leakage.split(strata, seed=42, groups=ds.vector_hashes)
    k = keys(ds.features)
    assert not set(k[train]) & set(k[test]), "a feature vector on both sides of the split"
    assert len(train) + len(test) == len(ds) and not set(train) & set(test)
    assert len(test) / len(ds) == pytest.approx(0.2, abs=0.005)
    counts = strata.value_counts()
    share = strata.iloc[test].value_counts().reindex(counts.index, fill_value=0) / counts
    assert share[counts >= 100].between(0.17, 0.23).all(), share[counts >= 100]
    assert share[counts >= 10].between(0.1, 0.3).all(), share[counts >= 10]
    assert (share[counts < 3] == 0).all()  # too small for a test row: training
    again = ds.split_index(seed=42) if ds.test_mask is None else leakage.split(strata, seed=42, groups=ds.vector_hashes)
    assert np.array_equal(again[1], test)
    other = ds.split_index(seed=7) if ds.test_mask is None else leakage.split(strata, seed=7, groups=ds.vector_hashes)
    assert not np.array_equal(other[1], test)


#: sha256 of the test ids (one a line), first 16 hex digits, of the split of seed 42 before split modes
#: existed (kstream at commit 6e44726): random mode must give exactly those rows.
SPLIT_BEFORE = {"cicids2017": "e129c8bc63ef034e", "csv-sample": "ab4bcafe05899cc2", "netml": "182507723b5f258b"}


@pytest.mark.parametrize("name", list(SPLIT_BEFORE))
def test_random_mode_is_the_split_from_before_grouping(samples, name):
    ds = samples[name]
    train, test = ds.split_index(seed=42, mode="random")
    digest = hashlib.sha256("\n".join(ds.ids.iloc[test]).encode()).hexdigest()[:16]
    assert digest == SPLIT_BEFORE[name]
    strata = ds.levels[ds.default_level].to_numpy()  # the earlier algorithm, restated
    counts = pd.Series(strata).map(pd.Series(strata).value_counts()).to_numpy()
    rest = np.flatnonzero(counts >= 2)
    old_train, old_test = train_test_split(rest, test_size=0.2, random_state=7, stratify=strata[rest])
    assert np.array_equal(ds.split_index(seed=7, mode="random")[1], np.sort(old_test))
    assert np.array_equal(ds.subset("test", seed=42, mode="random").ids, ds.ids.iloc[test])


def test_the_random_split_of_netml_repeats_held_out_vectors_and_the_grouped_one_does_not(samples):
    ds = samples["netml"]
    k = keys(ds.features)
    train, test = ds.split_index(seed=42, mode="random")
    assert np.isin(k[test], k[train]).sum() > 0.3 * len(test)  # about 4 in 10 held-out flows were seen
    train, test = ds.split_index(seed=42)
    assert not np.isin(k[test], k[train]).any()


# --- the leakage report of a model ----------------------------------------------------------------------


def test_a_random_split_model_reports_its_seen_rows_and_the_unseen_scores(csv_model, samples):
    card, ds = csv_model.card, samples["csv-sample"]
    assert card.split_mode == "random"
    train, test = card.rows(ds, "train"), card.rows(ds, "test")
    seen = np.isin(keys(test.features), keys(train.features))
    m = card.metrics
    assert m["seen_in_training"] == seen.sum() > 100  # a fifth of the csv-sample's rows repeat a vector
    predicted = csv_model.pipeline.predict(test.features.to_numpy())
    truth = test.target("multi_class").to_numpy()
    unseen = score(truth[~seen], predicted[~seen], task="multi_class")
    assert m["unseen"]["rows"] == (~seen).sum() == unseen["rows"]
    assert m["unseen"]["accuracy"] == pytest.approx(unseen["accuracy"])
    assert m["unseen"]["macro_f1"] == pytest.approx(unseen["macro_f1"])
    assert m["accuracy"] == pytest.approx((predicted == truth).mean())
    assert 0 < m["ceiling"] <= 1 and m["accuracy"] <= m["ceiling"] + 1e-12
    k, y = keys(ds.features), ds.target("multi_class").to_numpy()
    frame = pd.DataFrame({"k": k, "y": y})
    assert card.conflicts["duplicate_rows"] == frame["k"].duplicated(keep=False).sum()
    assert card.conflicts["multi_label_rows"] == frame.groupby("k")["y"].transform("nunique").gt(1).sum()


def test_a_grouped_split_model_has_no_seen_rows(models_dir, cicids):
    trained = artifacts.load(artifacts.ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir))
    m = trained.card.metrics
    assert trained.card.split_mode == "grouped" and m["seen_in_training"] == 0
    assert m["unseen"]["rows"] == m["rows"] and m["unseen"]["accuracy"] == pytest.approx(m["accuracy"])
    stored = np.load(trained.path / artifacts.TRAIN_VECTORS)
    assert stored.dtype == np.uint64 and np.all(np.diff(stored.astype(np.float64)) >= 0)  # sorted
    assert len(stored) == len(set(keys(trained.card.rows(cicids, "train").features)))  # one per distinct vector


def test_scoring_other_data_counts_the_rows_whose_vector_the_model_was_trained_on(models_dir, cicids, improved_rows,
                                                                               tmp_path, cli):
    rows = improved_rows(40)  # the first rows of seven classes of the bundled sample: most were training rows
    changed = rows.copy()
    changed["id"] = changed["id"] + 10**9
    changed["Flow Duration"] = changed["Flow Duration"] + 1  # vectors no training row has
    csv = tmp_path / "mixed.csv"
    pd.concat([rows, changed]).to_csv(csv, index=False)
    settings = Settings(model="decision-tree", models_dir=models_dir)
    scores, frame = app.evaluate(settings, data=str(csv))
    model = artifacts.load(settings.model_ref())
    other = app.load_data(settings, str(csv))
    trained_on = set(keys(model.card.rows(cicids, "train").features))
    expected = np.array([k in trained_on for k in keys(other.features)])
    assert scores["rows"] == len(other) == 2 * len(rows)
    assert scores["seen_in_training"] == expected.sum() and 0 < expected.sum() < len(rows)
    assert frame["seen_in_training"].tolist() == expected.tolist()
    assert scores["unseen"]["rows"] == len(other) - expected.sum()
    printed = cli("-q", "evaluate", "-m", "decision-tree", "--models-dir", str(models_dir), "--data", str(csv))
    assert printed.returncode == 0, printed.stderr
    assert f"seen in training: {expected.sum()} of {len(other)} rows" in printed.stdout
    assert f"unseen vectors: rows {len(other) - expected.sum()}   accuracy" in printed.stdout


def test_train_vectors_are_hash_checked_on_load(models_dir, tmp_path):
    src = artifacts.ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir).directory
    for damage in ("altered", "missing"):
        dst = tmp_path / damage
        dst.mkdir()
        for name in ("model.json", "model.joblib", artifacts.TRAIN_VECTORS):
            (dst / name).write_bytes((src / name).read_bytes())
        vectors = dst / artifacts.TRAIN_VECTORS
        if damage == "altered":
            array = np.load(vectors)
            np.save(vectors, np.append(array, np.uint64(12345)))
        else:
            vectors.unlink()
        with pytest.raises(ModelError, match="train-vectors.npy is missing or does not match the sha256"):
            artifacts.load_dir(dst)


def test_an_old_card_without_split_mode_means_random_and_still_reports_seen_rows(csv_model, samples, tmp_path):
    src = csv_model.path
    dst = tmp_path / "cicids2017" / "multi_class-grouped" / "decision-tree"
    dst.mkdir(parents=True)
    (dst / "model.joblib").write_bytes((src / "model.joblib").read_bytes())
    old = {k: v for k, v in json.loads((src / "model.json").read_text()).items()
           if k not in ("split_mode", "train_vectors_sha256", "conflicts", "learning_curve")}
    (dst / "model.json").write_text(json.dumps(old))
    loaded = artifacts.load_dir(dst)
    assert loaded.card.split_mode == "random" and loaded.train_vectors is None
    ds = samples["csv-sample"]
    assert np.array_equal(loaded.held_out(ds).ids, ds.subset("test", seed=42, mode="random").ids)
    settings = Settings(task="multi_class", model="decision-tree", models_dir=tmp_path)
    scores, _ = app.evaluate(settings, data="csv-sample")  # its own data: training rows re-derived
    assert scores["seen_in_training"] == csv_model.card.metrics["seen_in_training"]
    elsewhere, _ = app.evaluate(settings, data="csv-sample", split="all")
    assert elsewhere["seen_in_training"] > scores["seen_in_training"]  # every training row is seen


# --- learning curves ------------------------------------------------------------------------------------------


def test_learning_curve_sizes_grow_and_end_at_the_model(csv_model, samples):
    card = csv_model.card
    curve = pd.DataFrame(card.learning_curve)
    assert curve["fraction"].tolist() == list(training.LEARNING_FRACTIONS)
    assert curve["train_rows"].is_monotonic_increasing and curve["train_rows"].is_unique
    assert curve["train_rows"].iloc[-1] == card.train_rows
    last = curve.iloc[-1]
    assert last["accuracy"] == card.metrics["accuracy"] and last["macro_f1"] == card.metrics["macro_f1"]
    y = card.rows(samples["csv-sample"], "train").target("multi_class").to_numpy()
    per_class = pd.Series(y).value_counts()
    for fraction, rows in zip(curve["fraction"], curve["train_rows"]):
        assert rows == sum(max(1, int(np.ceil(fraction * n - 1e-9))) for n in per_class)
    assert curve[["accuracy", "macro_f1"]].apply(lambda s: s.between(0, 1)).all().all()
    seen = curve["seen_in_training"]
    assert seen.is_monotonic_increasing and seen.iloc[-1] == card.metrics["seen_in_training"]  # nested shares


def test_subsamples_are_nested_and_stratified():
    y = np.array(["a"] * 500 + ["b"] * 60 + ["c"] * 2)
    previous: set[int] = set()
    for fraction in training.LEARNING_FRACTIONS:
        rows = training.subsample(y, fraction, seed=3)
        assert previous <= set(rows)
        previous = set(rows)
        counts = pd.Series(y[rows]).value_counts()
        assert counts["a"] == int(np.ceil(fraction * 500)) and counts["c"] >= 1
    assert not np.array_equal(training.subsample(y, 0.2, seed=3), training.subsample(y, 0.2, seed=4))
    with pytest.raises(ConfigError, match="fractions must be in"):
        training._fractions([0.0, 0.5])
