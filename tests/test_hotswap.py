"""Model hot-swap: writing a version atomically, noticing it in the folder, and the swap at a batch boundary
(plain fakes for the detector's I/O), then a swap in the middle of a stream through a real broker."""

import dataclasses
import json
import logging
import os
import shutil
import threading
import time

import numpy as np
import pytest

from kstream.clients import Message
from kstream.detector.hotswap import ModelWatcher, SwapCheck, fingerprint
from kstream.detector.loop import Detector
from kstream.drift.monitor import DriftMonitor
from kstream.errors import ModelError
from kstream.generator import generate
from kstream.messages.wire import SEND_TIME_HEADER, encode_flow
from kstream.modeling import artifacts, training
from kstream.modeling.artifacts import ModelRef
from kstream.settings import Settings
from kstream.stores.sqlite import open_store

FOLDER = ("cicids2017", "binary_class", "decision-tree")


class FakeConsumer:
    """Hands out the batches it holds, one a poll (empty polls wait a little, as a real poll does)."""

    topics = ["flows"]

    def __init__(self, batches):
        self.batches = list(batches)

    def poll(self, max_records, timeout_ms):
        if self.batches:
            return self.batches.pop(0)
        time.sleep(0.005)
        return []

    def commit(self, offsets, deadline_s=None):
        return True

    def assigned(self):
        return True

    def caught_up(self):
        return not self.batches


class FakeProducer:
    def __init__(self):
        self.sent = []

    def publish(self, records, deadline_s=None):
        self.sent.extend((r.topic, r.value) for r in records)


class FakeStore:
    """Keeps each write's rows apart."""

    def __init__(self):
        self.writes, self.windows = [], []

    @property
    def rows(self):
        return [r for rows in self.writes for r in rows]

    def write(self, rows):
        self.writes.append(list(rows))

    def write_windows(self, rows):
        self.windows.extend(rows)


@pytest.fixture(scope="module")
def shallow(tmp_path_factory, cicids):
    """Another version of the session's binary decision tree: two levels deep (it disagrees on some rows)."""
    ref = ModelRef(*FOLDER, models_dir=tmp_path_factory.mktemp("shallow"))
    return training.train(ref, cicids, params={"max_depth": 2})


@pytest.fixture
def served(models_dir, tmp_path):
    """A models folder of its own holding a copy of the session's binary decision tree, and that model loaded."""
    root = tmp_path / "models"
    shutil.copytree(models_dir / "/".join(FOLDER), root / "/".join(FOLDER))
    return artifacts.load(ModelRef(*FOLDER, models_dir=root))


@pytest.fixture(scope="module")
def rows(models_dir, cicids):
    model = artifacts.load(ModelRef(*FOLDER, models_dir=models_dir))
    return model.held_out(cicids).in_order()  # as `kstream generate` sends them, and the ledger's sent_ids expects


def _copy_version(model, directory, tamper=False):
    """Write ``model``'s files into ``directory`` as a user's copy would (the card first); ``tamper`` flips a byte
    of the artifact after its card was written (a bad sha256)."""
    staging = directory.parent / f".staging-{time.time_ns()}"
    artifacts.save(model.pipeline, dataclasses.replace(model.card), staging)
    if tamper:
        data = bytearray((staging / "model.joblib").read_bytes())
        data[-1] ^= 0xFF
        (staging / "model.joblib").write_bytes(bytes(data))
    for name in ("model.json", "model.joblib"):
        shutil.copyfile(staging / name, directory / name)
    shutil.rmtree(staging)


def _looked(watcher, times=2):
    """What ``times`` looks hand over (a whole version at the first look; a refusal once it held still)."""
    return [watcher.look() for _ in range(times)]


# --- writing and reading a version -------------------------------------------------------------------


def test_a_save_that_fails_leaves_the_folder_as_it_was_and_no_temporary_file(served):
    before = {p.name: p.read_bytes() for p in served.path.iterdir()}
    with pytest.raises(Exception):  # noqa: B017 - whatever pickling raises for a lambda
        artifacts.save(lambda x: x, served.card, served.path)  # joblib cannot pickle a lambda
    assert {p.name: p.read_bytes() for p in served.path.iterdir()} == before
    assert artifacts.load_dir(served.path).card.model_id == served.card.model_id


def test_a_save_replaces_each_file_whole_with_the_card_last(served, shallow, monkeypatch):
    renamed = []
    real = type(served.path).replace

    def replace(self, target):
        renamed.append(type(served.path)(target).name)
        return real(self, target)

    monkeypatch.setattr(type(served.path), "replace", replace)
    artifacts.save(shallow.pipeline, shallow.card, served.path, train_vectors=np.arange(5, dtype=np.uint64))
    assert renamed == ["model.joblib", artifacts.TRAIN_VECTORS, "model.json"]
    assert not [p.name for p in served.path.iterdir() if p.name.endswith(".tmp")]
    assert artifacts.load_dir(served.path).card.model_id == shallow.card.model_id


def test_a_card_that_is_no_json_object_is_a_model_error(served):
    (served.path / "model.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="not a JSON object"):
        artifacts.load_dir(served.path)


# --- what a new version must match -------------------------------------------------------------------


def test_the_swap_check_follows_the_stream_and_names_every_problem(served, cicids):
    check = SwapCheck.of(served, cicids, drift=True)
    assert check.features == frozenset(cicids.feature_names) and check.classes == {"attack", "benign"}
    card = artifacts.ModelCard(**{**served.card.__dict__, "features": served.card.features + ["Not A Feature"],
                                  "classes": ["attack", "benign", "other"], "drift_reference": {}, "sha256": ""})
    assert check.problems(card) == [
        "it needs 1 feature(s) the stream does not give: Not A Feature",
        "its classes are ['attack', 'benign', 'other'], the stream's ['attack', 'benign']",
        "it has no drift reference, and this detector monitors drift",
        "its card has no sha256 (save it with kstream.modeling.artifacts.save first)",
    ]
    assert check.problems(artifacts.ModelCard(**{**served.card.__dict__, "task": "multi_class"})) == [
        "it is a multi_class model, the stream is scored binary_class"]
    fewer = artifacts.ModelCard(**{**served.card.__dict__, "features": served.card.features[:5]})
    assert check.problems(fewer) == []  # a subset of what the stream gives is fine
    reseeded = artifacts.ModelCard(**{**served.card.__dict__, "seed": 7})
    assert check.problems(reseeded) == []
    problems = SwapCheck.of(served, cicids, held_out=True).problems(reseeded)  # a run of the held-out rows
    assert len(problems) == 1 and problems[0].startswith("it was trained on another split (seed 7, grouped")


# --- the folder watcher ------------------------------------------------------------------------------


def _watcher(served, offered):
    current = [served.card]

    def offer(model):
        offered.append(model.card.model_id)
        current[0] = model.card

    return ModelWatcher(served.path, offer, lambda: current[0], interval_s=60)


def test_a_new_version_is_handed_over_at_the_first_look_that_sees_it(served, shallow):
    offered: list[str] = []
    watcher = _watcher(served, offered)
    assert _looked(watcher, 3) == [None] * 3 and offered == []  # the version served: read once, never loaded
    os.utime(served.path / "model.json")
    assert _looked(watcher) == [None, None] and offered == []  # touched, same version
    artifacts.save(shallow.pipeline, shallow.card, served.path)
    first, second = _looked(watcher)
    assert first.card.model_id == shallow.card.model_id and second is None
    assert offered == [shallow.card.model_id] and _looked(watcher, 3) == [None] * 3


def test_versions_saved_faster_than_the_looks_are_each_taken_whole(served, shallow):
    """An online learner saves a version more often than the folder holds still between two looks: each look
    takes the version it finds, whole (its sha256 against its card), never a mix of two."""
    offered: list[str] = []
    watcher = _watcher(served, offered)
    saved, taken = [], []
    for model in (shallow, served, shallow):
        saved.append(artifacts.save(model.pipeline, dataclasses.replace(model.card), served.path).sha256)
        taken.append(watcher.look())
    assert [m.card.sha256 for m in taken] == saved and len(offered) == 3 and watcher.refused == 0


def test_a_tampered_version_is_refused_once_and_a_good_one_after_it_is_taken(served, shallow, caplog):
    offered: list[str] = []
    watcher = _watcher(served, offered)
    _copy_version(shallow, served.path, tamper=True)
    with caplog.at_level(logging.INFO, logger="kstream.detector.hotswap"):
        assert _looked(watcher, 4) == [None] * 4
    refusals = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refusals) == 1 and watcher.refused == 1 and offered == []
    line = refusals[0].getMessage()
    assert "refused the new model in" in line and "does not match the sha256 in its card" in line
    assert line.endswith(f"still serving {served.card.model_id}") and "\n" not in line
    _copy_version(shallow, served.path)  # the folder changes again: looked at again
    copied = artifacts.ModelCard.read(served.path / "model.json").model_id
    assert _looked(watcher)[0].card.model_id == copied != served.card.model_id and watcher.refused == 1


def test_a_version_read_while_it_is_written_is_not_refused_but_read_again(served, shallow, caplog):
    offered: list[str] = []
    writes = iter([True])

    def offer(model):  # the folder changes while this version is handed over: as a copy still under way
        if next(writes, False):
            os.utime(served.path / "model.json", ns=(1, 1))
            raise ModelError("half-written")
        offered.append(model.card.model_id)

    watcher = ModelWatcher(served.path, offer, lambda: served.card, interval_s=60)
    artifacts.save(shallow.pipeline, shallow.card, served.path)
    with caplog.at_level(logging.WARNING, logger="kstream.detector.hotswap"):
        assert watcher.look() is None  # the folder changed while it was handed over: not refused
        assert watcher.refused == 0 and not caplog.records
        assert watcher.look().card.model_id == shallow.card.model_id
    assert offered == [shallow.card.model_id]


def test_a_card_copied_before_its_artifact_is_taken_once_the_artifact_arrives(served, shallow, caplog):
    offered: list[str] = []
    watcher = _watcher(served, offered)
    staging = served.path.parent / "staging"
    artifacts.save(shallow.pipeline, shallow.card, staging)
    shutil.copyfile(staging / "model.json", served.path / "model.json")  # the copy has written the card only
    with caplog.at_level(logging.WARNING, logger="kstream.detector.hotswap"):
        _looked(watcher)
    shutil.copyfile(staging / "model.joblib", served.path / "model.joblib")
    assert _looked(watcher)[0].card.model_id == shallow.card.model_id
    assert offered == [shallow.card.model_id] and len(caplog.records) <= 1  # refused at most once, then taken


def test_a_changed_allowlist_is_a_change_of_the_folder(served, shallow, tmp_path, monkeypatch):
    allowlist = tmp_path / "trusted.txt"
    allowlist.write_text(served.card.sha256 + "\n")
    monkeypatch.setenv("KSTREAM_TRUSTED_MODELS", str(allowlist))
    offered: list[str] = []
    watcher = _watcher(served, offered)
    artifacts.save(shallow.pipeline, shallow.card, served.path)
    assert _looked(watcher, 3) == [None] * 3 and watcher.refused == 1  # not listed
    allowlist.write_text(f"{served.card.sha256}\n{shallow.card.sha256}  # reviewed\n")
    assert _looked(watcher)[0] is not None and offered == [shallow.card.model_id]


def test_fingerprints_are_stat_calls_only(served):
    paths = [served.path / "model.json", served.path / "nothing-here"]
    first = fingerprint(paths)
    assert first[1] is None and first == fingerprint(paths)


# --- the swap at a batch boundary --------------------------------------------------------------------


def _batches(rows, sizes):
    names, x = rows.feature_names, rows.features.to_numpy()
    out, start = [], 0
    for size in sizes:
        out.append([Message("flows", 0, i, f"r{i}".encode(), encode_flow(names, x[i]), {SEND_TIME_HEADER: b"1"})
                    for i in range(start, start + size)])
        start += size
    return out


def _detector(model, batches, **kwargs):
    return Detector(model, FakeConsumer(batches), FakeProducer(), FakeStore(), "preds", "dlq", **kwargs)


def test_a_swap_takes_over_at_the_next_batch_and_each_row_names_its_version(served, shallow, rows):
    det = _detector(served, _batches(rows, [100, 100]))
    det.step()
    det.swap(shallow)
    assert det.model is served and det.next_card() is shallow.card  # nothing changes until the next batch
    det.step()
    stored = det.store.rows
    x = rows.features.to_numpy()[:200]
    assert [r["model_id"] for r in stored] == [served.card.model_id] * 100 + [shallow.card.model_id] * 100
    assert [r["predicted_label"] for r in stored[:100]] == list(served.pipeline.predict(x[:100]))
    assert [r["predicted_label"] for r in stored[100:]] == list(shallow.pipeline.predict(x[100:]))
    assert det.stats.swaps == 1 and det.stats.model_ids == [served.card.model_id, shallow.card.model_id]
    published = [json.loads(v)["model_id"] for t, v in det.producer.sent if t == "preds"]
    assert published == [r["model_id"] for r in stored]


def test_a_swap_that_arrives_while_a_batch_is_scored_waits_for_the_next_batch(served, shallow, rows):
    class Swapping:  # the served model, asking for a swap from inside its own scoring call
        def __init__(self, inner):
            self.inner, self.card, self.features, self.path = inner, inner.card, inner.features, inner.path

        def predict(self, x):
            det.swap(shallow)
            return self.inner.predict(x)

        def train_command(self):
            return self.inner.train_command()

    det = _detector(Swapping(served), _batches(rows, [50, 50]))
    det.step()
    det.step()
    assert [r["model_id"] for r in det.store.rows] == [served.card.model_id] * 50 + [shallow.card.model_id] * 50


def test_the_served_version_again_is_no_swap_and_a_misfit_is_refused(served, shallow, rows):
    det = _detector(served, _batches(rows, [10]))
    det.swap(artifacts.load_dir(served.path))
    assert det.next_card() is served.card
    det.swap_check = dataclasses.replace(det.swap_check, features=frozenset(served.features[:10]))  # a narrow stream
    with pytest.raises(ModelError, match=r"cannot take over this stream: it needs \d+ feature\(s\).*`kstream train"):
        det.swap(shallow)
    det.step()
    assert det.stats.swaps == 0 and {r["model_id"] for r in det.store.rows} == {served.card.model_id}


def test_a_drift_window_never_spans_a_swap(served, shallow, rows):
    monitor = DriftMonitor(served.reference(), window_records=1000, min_records=50)
    det = _detector(served, _batches(rows, [300, 300]), monitor=monitor, drift_topic="drift")
    det.step()
    det.swap(shallow)
    det.step()
    det.finish()
    windows = det.store.windows
    assert [(w["window"], w["records"], w["model_id"]) for w in windows] == [
        (0, 300, served.card.model_id), (1, 300, shallow.card.model_id)]
    assert det.monitor.reference.to_dict() == shallow.reference().to_dict()


def test_batches_of_two_versions_are_never_written_as_one(served, shallow, rows):
    det = _detector(served, _batches(rows, [10] * 6))
    calls = [0]
    real = det._serving

    def serving():  # the third poll finds a swap waiting
        calls[0] += 1
        if calls[0] == 3:
            det.swap(shallow)
        return real()

    det._serving = serving
    write = det.store.write

    def slow_write(rows):  # the read-ahead polls and scores the other batches meanwhile: they wait together
        time.sleep(0.2 if not det.store.writes else 0)
        write(rows)

    det.store.write = slow_write
    stats = det.run(max_records=60)
    assert stats.records == 60 and stats.swaps == 1
    assert len(det.store.writes) < 6  # batches that waited were written together
    assert all(len({r["model_id"] for r in rows}) == 1 for rows in det.store.writes)  # one version a write
    ids = [r["model_id"] for r in det.store.rows]
    assert ids == [served.card.model_id] * 20 + [shallow.card.model_id] * 40


def test_the_watcher_swaps_a_version_saved_into_the_folder_while_the_detector_runs(served, shallow, rows):
    det = _detector(served, [], model_check_s=0.05)
    thread = threading.Thread(target=det.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        artifacts.save(shallow.pipeline, shallow.card, served.path)
        deadline = time.monotonic() + 10
        while det.next_card().model_id != shallow.card.model_id and time.monotonic() < deadline:
            time.sleep(0.02)
        assert det.next_card().model_id == shallow.card.model_id
        det.consumer.batches.extend(_batches(rows, [20]))
        deadline = time.monotonic() + 10
        while len(det.store.rows) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        det.stop()
        thread.join(10)
    assert {r["model_id"] for r in det.store.rows} == {shallow.card.model_id}
    assert det.stats.model_ids == [served.card.model_id, shallow.card.model_id]


def test_model_check_is_a_setting_with_a_flag():
    assert Settings.resolve({}, env={"KSTREAM_MODEL_CHECK_S": "0.5"}).model_check_s == 0.5
    assert Settings.resolve({"model_check_s": 0}, env={}).model_check_s == 0
    from kstream.errors import ConfigError

    with pytest.raises(ConfigError, match="model_check_s"):
        Settings(model_check_s=-1)


# --- through a real broker ---------------------------------------------------------------------------


def _stored(pipe):
    if not pipe.store.exists():
        return None
    with open_store("sqlite", str(pipe.store)) as store:
        return store.frame(pipe.topic)


def _wait(what, done, timeout_s, pipe):
    deadline = time.monotonic() + timeout_s
    while not done():
        proc = pipe.procs["detect"]
        if proc.poll() is not None:
            pytest.fail(f"the detector exited {proc.returncode} while waiting for {what}:\n{pipe.output('detect')}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout_s:.0f}s:\n{pipe.stacks('detect')[-4000:]}")
        time.sleep(0.05)


@pytest.mark.kafka
def test_a_new_version_takes_over_mid_stream_without_losing_or_repeating_a_record(
        kafka_bootstrap, pipeline, ledger, sent_ids, served, shallow, rows, tmp_path):
    pipe = pipeline(kafka_bootstrap, tmp_path / "pipe")
    pipe.models_dir = served.path.parent.parent.parent  # the detector serves this test's own folder
    pipe.create_topics()
    old = served.card.model_id
    # records sent (paced) while a new version is saved, then before a tampered version comes, and in all
    first, second, total = 800, 1000, 1200
    settings = Settings(bootstrap=kafka_bootstrap)
    tampered_log = "refused the new model in"
    try:
        pipe.detect("--model-check", "0.1", "--records", str(total), verbosity="")

        def send(start, stop, rate):
            with settings.kafka.Producer(kafka_bootstrap, {}).connect() as producer:
                generate(rows.take(np.arange(start, stop)), producer, pipe.topic, rate=rate, progress=False)

        _wait("a partition", lambda: "assignment 1:" in pipe.output("detect"), 60, pipe)
        # records flow at a paced rate; a new version is saved into the served folder while they do
        sender = threading.Thread(target=send, args=(0, first, 400))
        sender.start()
        pipe.wait_stored(200, timeout_s=60)
        saved = artifacts.save(shallow.pipeline, shallow.card, served.path)
        sender.join(60)
        pipe.wait_stored(first, timeout_s=60)
        _wait("swap", lambda: f"loaded {saved.model_id}" in pipe.output("detect"), 30, pipe)
        send(first, second, 0)
        pipe.wait_stored(second, timeout_s=60)
        # a tampered version (the first one's card, another artifact): refused in one line, the stream goes on
        _copy_version(served, served.path, tamper=True)
        _wait("refusal", lambda: tampered_log in pipe.output("detect"), 30, pipe)
        send(second, total, 0)
        output = pipe.finished("detect", 60)
    finally:
        pipe.kill_all()
    numbers = ledger(pipe, sent_ids(total))
    assert numbers["stored"] == total and numbers["lost"] == 0
    frame = _stored(pipe).sort_values("offset")
    ids = list(frame["model_id"])
    new = saved.model_id
    switch = ids.index(new)
    assert 200 <= switch <= first and ids == [old] * switch + [new] * (total - switch), "one switch, old then new"
    # each record's prediction is what its version predicts offline for that row
    models = {old: served, new: shallow}
    x = rows.features.reindex(columns=served.features).to_numpy(dtype="float64")[:total]
    by_id = dict(zip(rows.ids[:total], range(total)))
    position = frame["record_id"].map(by_id).to_numpy()
    for model_id, model in models.items():
        mine = (frame["model_id"] == model_id).to_numpy()
        assert list(frame["predicted_label"][mine]) == list(model.pipeline.predict(x[position[mine]]))
    refusals = [line for line in output.splitlines() if tampered_log in line]
    assert len(refusals) == 1 and "WARNING" in refusals[0] and "does not match the sha256" in refusals[0]
    assert f"still serving {new}" in refusals[0]
    assert f"models: {old} -> {new} (1 swap(s), 1 new version(s) refused" in output
