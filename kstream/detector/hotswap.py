"""Model hot-swap: a new version of the served model takes over at a batch boundary, the stream never stops.

A detector serves the model of one folder (``models/<dataset>/<task>/<model>/``). A new version can
come two ways, and both end in :meth:`kstream.detector.loop.Detector.swap`:

- from disk: :class:`ModelWatcher` looks at the folder every ``model_check_s`` seconds, on a thread of
  its own, with a few ``stat`` calls (:func:`fingerprint`; never a load per batch). Once the files have
  changed, it reads the card; a version other than the one served (or about to be) is loaded with the
  checks of a start (:func:`~kstream.modeling.artifacts.load_dir`: the sha256 on the card, ``KSTREAM_MODEL_KEY``,
  ``KSTREAM_TRUSTED_MODELS``) and handed over, at the first look that sees it (an online learner saves
  versions more often than a folder would hold still between two looks). A version that fails is refused
  only once the folder has held still from one look to the next (a copy in progress is read again, not
  refused): one WARNING line naming the reason and the fix, the old model keeps serving, and the folder
  is tried again when it next changes (or the allowlist does);
- from code: a caller holding a :class:`~kstream.modeling.artifacts.TrainedModel` (a retrainer) calls
  ``detector.swap(model)``.

Either way the detector checks the model fits the stream (:class:`SwapCheck`) and serves it from its
next batch: every batch is scored by exactly one version, and every prediction row, drift window and
alert names the version that scored it (``model_id``). Nothing else changes: delivery, offsets and the
store's idempotence are the same before and after a swap, so no record is lost or scored twice.

>>> check = SwapCheck("cicids2017", "binary_class", "", frozenset({"a", "b"}), frozenset({"attack", "benign"}))
>>> card = ModelCard("cicids2017", "binary_class", "decision-tree", ["a", "c"], ["attack", "benign"], {}, 1, 1, {},
...                  42, sha256="ab" * 32)
>>> check.problems(card)
['it needs 1 feature(s) the stream does not give: c']
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kstream.data.datasets import Dataset
from kstream.errors import KstreamError
from kstream.modeling import artifacts
from kstream.modeling.artifacts import TRAIN_VECTORS, ModelCard, TrainedModel

__all__ = ["SwapCheck", "ModelWatcher", "fingerprint", "split_of", "Fingerprint", "WATCHED_FILES"]

log = logging.getLogger(__name__)

#: The files of a model folder whose change means a new version may be there (the card is the one that says which).
WATCHED_FILES = ("model.json", "model.joblib", TRAIN_VECTORS)

#: One file's (inode, size, modification time in ns), or None when it is not there.
Fingerprint = tuple[tuple[int, int, int] | None, ...]


def fingerprint(paths: list[Path] | tuple[Path, ...]) -> Fingerprint:
    """What ``stat`` says of each path: a new version written or copied in changes it, a look costs no read.

    >>> fingerprint([Path("no-such-file")])
    (None,)
    """
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass(frozen=True)
class SwapCheck:
    """What a model must match to take over a stream: the served model's dataset, task and label level,
    only features the stream gives (``features``), classes its labels name (``classes``: exactly them for a
    binary task, at least one of them for a multi-class one), a drift reference when drift is monitored,
    a sha256 on its card (the version its predictions name), and, when ``split`` names one (a stream of
    one model's held-out rows), that same split of the same data: another split may have trained on them."""

    dataset: str
    task: str
    level: str
    features: frozenset[str]
    classes: frozenset[str]
    drift: bool = False
    split: str = ""

    @classmethod
    def of(cls, model: TrainedModel, data: Dataset | None = None, drift: bool = False,
           held_out: bool = False) -> SwapCheck:
        """The check for the stream ``model`` serves: its features (and the columns of ``data``, the data it
        streams, when known) and its classes (and the labels of ``data`` at its level); with ``held_out``
        (the stream is the rows ``model`` held out of ``data``), its split too."""
        card = model.card
        features = set(card.features) | set(data.feature_names if data is not None else ())
        classes = set(card.classes)
        if data is not None and data.labelled and card.task == "multi_class" and card.level in data.levels:
            classes |= {str(c) for c in data.levels[card.level].unique()}
        return cls(card.dataset, card.task, card.level, frozenset(features), frozenset(classes), drift,
                   split_of(card) if held_out else "")

    def problems(self, card: ModelCard) -> list[str]:
        """Why the model of ``card`` must not take over this stream (empty when it may)."""
        if card.dataset != self.dataset:
            return [f"it was trained on {card.dataset}, the stream is {self.dataset}"]
        if card.task != self.task:
            return [f"it is a {card.task} model, the stream is scored {self.task}"]
        problems: list[str] = []
        if card.level != self.level:
            problems.append(f"its classes are at label level {card.level!r}, the stream's at {self.level!r}")
        missing = [f for f in card.features if f not in self.features]
        if missing:
            shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            problems.append(f"it needs {len(missing)} feature(s) the stream does not give: {shown}")
        classes = set(card.classes)
        if self.task == "binary_class" and classes != self.classes:
            problems.append(f"its classes are {sorted(classes)}, the stream's {sorted(self.classes)}")
        elif self.task != "binary_class" and not classes & self.classes:
            problems.append(f"it learnt none of the stream's classes ({', '.join(sorted(self.classes)[:5])})")
        if self.drift and not card.drift_reference:
            problems.append("it has no drift reference, and this detector monitors drift")
        if not card.sha256:
            problems.append("its card has no sha256 (save it with kstream.modeling.artifacts.save first)")
        if self.split and split_of(card) != self.split:
            problems.append(f"it was trained on another split ({split_of(card)}) than the one whose held-out rows "
                            f"this stream sends ({self.split}), so it may have trained on them")
        return problems


def split_of(card: ModelCard) -> str:
    """The split a model was trained on, in words.

    >>> split_of(ModelCard("nsl-kdd", "binary_class", "decision-tree", [], [], {}, 1, 1, {}, 7, data_source="d"))
    'seed 7, random, test share 0.2 of d'
    """
    until = f" until {card.train_until}" if card.split_mode == "temporal" and card.train_until else ""
    return f"seed {card.seed}, {card.split_mode}{until}, test share {card.test_size:g} of {card.data_source}"


class ModelWatcher:
    """Looks at a model folder every ``interval_s`` seconds and hands each new, loadable version to ``offer``.

    ``current()`` is the card of the version served or about to be (the one a folder holding it again
    needs no load for); ``offer(model)`` hands a loaded version over and raises a
    :class:`~kstream.errors.KstreamError` when the detector refuses it; ``on_refused()`` is called for
    each version refused. :meth:`look` is one look (what the thread does each time; tests call it
    directly); ``refused`` counts the versions refused.
    """

    def __init__(self, directory: Path, offer: Callable[[TrainedModel], None], current: Callable[[], ModelCard],
                 interval_s: float, on_refused: Callable[[], None] | None = None) -> None:
        self.directory = Path(directory)
        self.offer, self.current, self.interval_s = offer, current, float(interval_s)
        self.on_refused = on_refused
        self.paths = [self.directory / name for name in WATCHED_FILES]
        allowlist = os.environ.get("KSTREAM_TRUSTED_MODELS", "")
        if allowlist:  # a version refused for want of a listing is tried again once the list changes
            self.paths.append(Path(allowlist).expanduser())
        self.refused = 0
        self._seen: Fingerprint | None = None  # the folder as last judged (served, handed over or refused)
        self._changed: Fingerprint | None = None  # the folder as last seen changing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kstream-model-watcher", daemon=True)

    def start(self) -> ModelWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop looking (a load in progress finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.look()
            except Exception:  # noqa: BLE001 - watching must never stop detection
                log.exception("looking for a new model in %s failed; looking again in %.1fs", self.directory,
                              self.interval_s)

    def look(self) -> TrainedModel | None:
        """Look at the folder once; returns the version handed over, if any."""
        now = fingerprint(self.paths)
        if now == self._seen:
            return None
        settled, self._changed = now == self._changed, now  # held still since the last look, or not
        try:
            card = ModelCard.read(self.directory / "model.json")
            if card.sha256 and card.sha256 == self.current().sha256:
                self._seen = now  # the version already served (a touch, or the same files copied again)
                return None
            # its sha256 checked against its card, read once: whole and consistent even if the folder moves on
            model = artifacts.load_dir(self.directory)
            self.offer(model)
        except Exception as err:  # noqa: BLE001 - a bad version is refused, never raised into the detector
            if not settled or fingerprint(self.paths) != now:
                return None  # maybe read while it was being written: not refused before it holds still
            self._seen = now
            self.refused += 1
            if self.on_refused is not None:
                self.on_refused()
            reason = str(err) if isinstance(err, KstreamError) else f"{type(err).__name__}: {err}"
            log.warning("refused the new model in %s: %s; still serving %s", self.directory, reason.rstrip("."),
                        self.current().model_id)
            return None
        self._seen = now
        log.info("loaded %s from %s; it takes over at the next batch", model.card.model_id, self.directory)
        return model
