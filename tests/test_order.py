"""The order records are sent in: time (the default for data with timestamps), a seeded shuffle (the
default without), or the file's; and what `kstream generate` sends with no order flag, read back
from a real broker.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kstream import app
from kstream.data.order import order_positions
from kstream.errors import ConfigError
from kstream.modeling import artifacts
from kstream.modeling.artifacts import ModelRef
from kstream.settings import Settings


def _runs(labels) -> int:
    """How many runs of one label the sequence has (one per class when sent class after class)."""
    labels = np.asarray(labels)
    return 1 + int((labels[1:] != labels[:-1]).sum())


def test_time_order_is_non_decreasing_and_keeps_file_order_among_equal_times(cicids):
    sent = cicids.in_order("time")
    assert sent.times.is_monotonic_increasing and sorted(sent.ids) == sorted(cicids.ids)
    positions = order_positions(len(cicids), "time", cicids.times, seed=42)
    times = cicids.times.to_numpy()[positions]
    tied = times[1:] == times[:-1]
    assert tied.any() and (np.diff(positions)[tied] > 0).all()  # the sample has flows of one time: file order
    # every row keeps its own time, labels and features
    by_id = cicids.times.set_axis(cicids.ids)
    assert (sent.times.to_numpy() == by_id.loc[sent.ids].to_numpy()).all()
    assert (sent.labels.to_numpy() == cicids.labels.set_axis(cicids.ids).loc[sent.ids].to_numpy()).all()


def test_shuffle_is_seeded_reproducible_and_not_the_file_order(samples):
    ds = samples["nsl-kdd"]
    first, again, other = (ds.in_order("shuffle", seed).ids.tolist() for seed in (42, 42, 7))
    assert first == again != other
    assert first != ds.ids.tolist() and sorted(first) == sorted(ds.ids)
    assert ds.in_order().ids.tolist() == first  # no order and no seed: a shuffle seeded 42


def test_file_order_is_the_file_order(cicids):
    assert cicids.in_order("file").ids.tolist() == cicids.ids.tolist()
    assert _runs(cicids.labels) == cicids.labels.nunique()  # the bundled sample: one class after another


def test_the_default_is_time_with_timestamps_else_shuffle_and_time_without_them_is_refused(cicids, samples):
    assert app.order_of(cicids, Settings()) == "time"
    assert cicids.in_order().ids.tolist() == cicids.in_order("time").ids.tolist()
    nsl = samples["nsl-kdd"]
    assert app.order_of(nsl, Settings(dataset="nsl-kdd")) == "shuffle"
    seeded = app.in_order(nsl, Settings(dataset="nsl-kdd", seed=7))
    assert seeded.ids.tolist() == nsl.in_order("shuffle", 7).ids.tolist()
    with pytest.raises(ConfigError, match="datasets/nsl-kdd has no flow times, so it cannot be sent in time order: "
                                          "use --order shuffle or file"):
        nsl.in_order("time")
    with pytest.raises(ConfigError, match="unknown order 'by-class'; choose one of: time, shuffle, file"):
        Settings(order="by-class")
    assert Settings.resolve({}, env={"KSTREAM_ORDER": "file"}).order == "file"


@pytest.fixture(scope="module")
def held_out(models_dir, cicids):
    """The held-out split of the default model (binary random forest, grouped split), in file order."""
    forest = artifacts.load(ModelRef("cicids2017", "binary_class", "random-forest", models_dir=models_dir))
    return forest.held_out(cicids)


def test_generate_with_no_order_flag_does_not_send_class_after_class(held_out):
    sent = app.in_order(held_out, Settings())  # what `kstream generate` sends with no order flag
    classes = held_out.labels.nunique()
    assert _runs(held_out.labels) == classes  # the file order: one run per class
    assert _runs(sent.labels) > 10 * classes  # time order: the classes of a day interleave with benign flows
    assert sent.labels.iloc[:1000].nunique() > 1
    assert sent.times.is_monotonic_increasing


def test_loop_repeats_the_same_order(held_out):
    from kstream.generator import generate

    class Keys:  # what generate hands its producer, in order
        def __init__(self):
            self.keys = []

        def send(self, topic, value, key=None, headers=None):
            self.keys.append(key.decode())

        def flush(self, deadline_s=300):
            pass

    rows = app.in_order(held_out.take(np.arange(50)), Settings())
    producer = Keys()
    generate(rows, producer, "flows", limit=120, loop=True, progress=False)
    base = [k.split("#")[0] for k in producer.keys]
    assert base[:50] == base[50:100] == rows.ids.tolist() and base[100:] == rows.ids.tolist()[:20]


@pytest.mark.kafka
def test_kstream_generate_sends_the_held_out_split_in_time_order_by_default(models_dir, kafka_bootstrap, names, cli,
                                                                          held_out, read_topic):
    proc = cli("-q", "generate", "--records", "1000", "--models-dir", str(models_dir), "--bootstrap", kafka_bootstrap,
               "--topic", names["topic"])
    assert proc.returncode == 0, proc.stderr
    keys = [m.key.decode() for m in read_topic(kafka_bootstrap, names["topic"], 1000)]
    assert len(keys) == 1000
    assert keys == app.in_order(held_out, Settings()).ids.tolist()[:1000]
    labels = held_out.labels.set_axis(held_out.ids).loc[keys]
    assert labels.nunique() > 1 and _runs(labels) > labels.nunique()  # not all one class, not sorted by class
    times = held_out.times.set_axis(held_out.ids).loc[keys]
    assert times.is_monotonic_increasing and times.iloc[0] == held_out.times.min()
    assert pd.Timestamp(times.iloc[-1]) < held_out.times.max()  # the first 1,000 flows of the week, in order
