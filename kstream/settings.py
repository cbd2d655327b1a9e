"""Settings: one typed object, one precedence rule, checked at the edge.

Every run of kstream is described by one :class:`Settings`. Values come from three places and
the first that has one wins: command-line options, then the environment, then the defaults
below. Validation happens here, at the edge, so bad configuration fails at start with one line
naming the valid choices; names are checked by the modules that own them (datasets, tasks and
levels by :mod:`kstream.data.datasets`, models by :mod:`kstream.modeling.zoo`).

kstream's environment names start with ``KSTREAM_`` (:data:`ENV_NAMES`); a docker-compose
setup's short names are read too: ``DATASET``, ``MODEL``, ``TASK_TYPE``, ``MODELS_CHECKPOINT``,
``KAFKA_BROKER_URL``, ``DB_URL``, ``DB_NAME`` (the MongoDB database) and ``DATABASE`` (the store kind).
The results store follows its URL (``sqlite:``/a path or ``mongodb://``); a store kind set
as well must agree with it. The Kafka client library is
``kafka-python`` (the default) or ``confluent`` (librdkafka), ``--client`` / ``KSTREAM_CLIENT``,
resolved here once (:attr:`Settings.kafka` is the backend module the jobs use). Any client option
(SASL, SSL, tuning) of the chosen backend passes through as ``KSTREAM_KAFKA_<OPTION>`` or
``--kafka-option option=value``, named as that library names it (``linger_ms`` / ``linger.ms``).

>>> s = Settings.resolve({"model": "decision-tree"}, env={"TASK_TYPE": "multi_class"})
>>> (s.dataset, s.task, s.model)
('cicids2017', 'multi_class', 'decision-tree')
>>> s.model_ref().name
'cicids2017/multi_class/decision-tree'
"""

from __future__ import annotations

import dataclasses
import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kstream import clients, logs
from kstream.data import datasets, leakage
from kstream.data.datasets import Dataset
from kstream.data.order import check_order
from kstream.drift.alerts import AlertRule, parse_rules
from kstream.drift.monitor import DriftMonitor
from kstream.drift.reference import FeatureReference
from kstream.errors import ConfigError
from kstream.generator import LabelDelay, parse_label_delay
from kstream.learning.retrain import RetrainPolicy
from kstream.messages.wire import check_value_format
from kstream.modeling import zoo
from kstream.modeling.artifacts import ModelRef
from kstream.paths import MODELS_DIR, RUNS_DIR
from kstream.stores import sqlite

__all__ = ["Settings", "ENV_NAMES", "DRIFT_MIN_RECORDS", "LEARN_MODES", "DEFAULT_LEARNER", "parse_value",
           "parse_assignments", "parse_kafka_options",
           "redact"]

_SECRET_WORDS = ("password", "secret", "token", "key")

#: setting name -> its environment names, the first set wins
ENV_NAMES: dict[str, tuple[str, ...]] = {
    "dataset": ("KSTREAM_DATASET", "DATASET"),
    "task": ("KSTREAM_TASK", "TASK_TYPE"),
    "model": ("KSTREAM_MODEL", "MODEL"),
    "level": ("KSTREAM_LEVEL",),
    "models_dir": ("KSTREAM_MODELS_DIR", "MODELS_CHECKPOINT"),
    "seed": ("KSTREAM_SEED",),
    "split_mode": ("KSTREAM_SPLIT_MODE",),
    "train_until": ("KSTREAM_TRAIN_UNTIL",),
    "label_column": ("KSTREAM_LABEL_COLUMN",),
    "bootstrap": ("KSTREAM_BOOTSTRAP", "KAFKA_BROKER_URL"),
    "topic": ("KSTREAM_TOPIC",),
    "predictions_topic": ("KSTREAM_PREDICTIONS_TOPIC",),
    "dlq_topic": ("KSTREAM_DLQ_TOPIC",),
    "group": ("KSTREAM_GROUP",),
    "partitions": ("KSTREAM_PARTITIONS",),
    "store": ("KSTREAM_STORE", "DATABASE"),
    "store_url": ("KSTREAM_STORE_URL", "DB_URL"),
    "store_table": ("KSTREAM_STORE_TABLE",),
    "store_database": ("KSTREAM_STORE_DATABASE", "DB_NAME"),
    "records": ("KSTREAM_RECORDS",),
    "order": ("KSTREAM_ORDER",),
    "batch_size": ("KSTREAM_BATCH_SIZE",),
    "poll_timeout_ms": ("KSTREAM_POLL_TIMEOUT_MS",),
    "outage_timeout_s": ("KSTREAM_OUTAGE_TIMEOUT_S",),
    "model_check_s": ("KSTREAM_MODEL_CHECK_S",),
    "drift": ("KSTREAM_DRIFT",),
    "drift_topic": ("KSTREAM_DRIFT_TOPIC",),
    "alerts_topic": ("KSTREAM_ALERTS_TOPIC",),
    "drift_window": ("KSTREAM_DRIFT_WINDOW",),
    "drift_window_s": ("KSTREAM_DRIFT_WINDOW_S",),
    "drift_psi": ("KSTREAM_DRIFT_PSI",),
    "drift_share": ("KSTREAM_DRIFT_SHARE",),
    "alerts": ("KSTREAM_ALERTS",),
    "client": ("KSTREAM_CLIENT",),
    "value_format": ("KSTREAM_VALUE_FORMAT",),
    "labels": ("KSTREAM_LABELS",),
    "labels_topic": ("KSTREAM_LABELS_TOPIC",),
    "label_delay": ("KSTREAM_LABEL_DELAY",),
    "label_pending": ("KSTREAM_LABEL_PENDING",),
    "label_wait_s": ("KSTREAM_LABEL_WAIT_S",),
    "prequential_window": ("KSTREAM_PREQUENTIAL_WINDOW",),
    "prequential_topic": ("KSTREAM_PREQUENTIAL_TOPIC",),
    "learn": ("KSTREAM_LEARN",),
    "learner": ("KSTREAM_LEARNER",),
    "learn_every": ("KSTREAM_LEARN_EVERY",),
    "learn_dir": ("KSTREAM_LEARN_DIR",),
    "retrain_trigger": ("KSTREAM_RETRAIN_TRIGGER",),
    "retrain_every": ("KSTREAM_RETRAIN_EVERY",),
    "retrain_drop": ("KSTREAM_RETRAIN_DROP",),
    "retrain_window": ("KSTREAM_RETRAIN_WINDOW",),
    "retrain_holdout": ("KSTREAM_RETRAIN_HOLDOUT",),
    "retrain_margin": ("KSTREAM_RETRAIN_MARGIN",),
    "retrain_with_training": ("KSTREAM_RETRAIN_WITH_TRAINING",),
    "retrains_topic": ("KSTREAM_RETRAINS_TOPIC",),
}
_INTS = ("batch_size", "poll_timeout_ms", "outage_timeout_s", "drift_window", "label_pending",
         "prequential_window", "learn_every", "retrain_every", "retrain_window", "retrain_holdout")  # positive
_COUNTS = ("partitions", "records")  # 0 or positive; 0 means "automatic" (see the fields)
_FLOATS = ("model_check_s", "drift_window_s", "drift_psi", "drift_share", "label_wait_s", "retrain_drop",
           "retrain_margin")
_BOOLS = ("drift", "labels", "retrain_with_training")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
#: How a detector's model adapts: static (never), retrain (a challenger trained on recent labelled flows replaces
#: the champion when it beats it), online (an online learner learns every label); see kstream.learning.
LEARN_MODES = ("static", "retrain", "online")
#: The online learner served with ``learn="online"`` when the model named is not one.
DEFAULT_LEARNER = "hoeffding-adaptive-tree"
#: Windows with fewer records are reported but not judged (the PSI noise floor is about 12 / records).
DRIFT_MIN_RECORDS = 200


@dataclass(frozen=True)
class Settings:
    """Everything a kstream job needs to know, validated on creation.

    ``level`` empty means the label level follows the data (the dataset's default when the data
    has it). ``seed`` None means: train with the default seed, score with the model card's;
    ``split_mode`` empty likewise: train on a grouped split, score with the card's; ``train_until``
    (only with ``split_mode`` temporal) is the time a temporal split trains before. ``order`` is the
    order records are sent in (:mod:`kstream.data.order`); empty means ``time`` where the data has
    flow times, else ``shuffle``, seeded by ``seed`` (else 42).
    ``bootstrap`` empty means "use the local broker kstream manages"; ``kafka_options`` is
    passed unchanged to the Kafka client (SASL/SSL, tuning). ``store`` empty means the kind
    ``store_url`` names (:func:`kstream.stores.sqlite.store_kind`); it holds the resolved kind after
    creation. ``records`` 0 means no limit; ``partitions`` 0 means one per detector (``kstream run``),
    else 1.

    >>> Settings(store_url="mongodb://db.example.org:27017").store
    'mongodb'
    """

    dataset: str = "cicids2017"
    task: str = "binary_class"
    model: str = "random-forest"
    level: str = ""
    models_dir: Path = MODELS_DIR
    seed: int | None = None
    split_mode: str = ""  # grouped, random or temporal; empty: grouped to train, the model card's to score
    train_until: str = ""  # temporal split: rows before this ISO date/time train; empty: the last 20% by time held out
    label_column: str = ""  # the CSV column holding the class when it is not called Label
    bootstrap: str = ""
    topic: str = "flows"
    predictions_topic: str = "flows.predictions"
    dlq_topic: str = "flows.dlq"
    group: str = "kstream-detector"
    partitions: int = 0  # partitions of the topics kstream creates; 0: one per detector (1 outside a run)
    records: int = 0  # records to send, or to handle before stopping; 0: all of them (no limit)
    order: str = ""  # time, shuffle or file; empty: time where the data has flow times, else shuffle
    store: str = ""  # sqlite or mongodb; empty: the kind store_url names (sqlite without one)
    store_url: str = ""
    store_table: str = "predictions"  # the SQLite table or the MongoDB collection
    store_database: str = "kstream"  # the MongoDB database (DB_NAME); SQLite keeps one file per store URL
    batch_size: int = 500
    poll_timeout_ms: int = 500
    outage_timeout_s: int = 300
    model_check_s: float = 2.0  # seconds between looks at the model's folder for a new version to swap in; 0: never
    drift: bool = False  # monitor drift per window against the model card's reference
    drift_topic: str = "flows.drift"
    alerts_topic: str = "flows.alerts"
    drift_window: int = 1000  # records per drift window
    drift_window_s: float = 0.0  # seconds per drift window too (whichever comes first); 0: records only
    drift_psi: float = 0.2  # a feature drifts past this PSI
    drift_share: float = 0.1  # a window drifts when this share of features (or the scores) drift
    alerts: str = ""  # alert rules on windows, "metric op number" separated by ';'
    client: str = "kafka-python"  # the Kafka client library: kafka-python or confluent (librdkafka)
    value_format: str = "json"  # what the generator sends: json, or vector (float64 bytes; see kstream.messages.wire)
    labels: bool = False  # the detector joins labels from labels_topic to its predictions, scoring prequentially
    labels_topic: str = "flows.labels"
    label_delay: str = ""  # the generator sends each label N records (or 30s, 500ms, 2m) after its record; empty: none
    label_pending: int = 100_000  # predictions that may wait for their label, and labels for their prediction (each)
    label_wait_s: float = 3600.0  # seconds a prediction waits for its label (and a label for its prediction)
    prequential_window: int = 1000  # labelled records per prequential window
    prequential_topic: str = "flows.prequential"
    learn: str = "static"  # static: the model never changes; online: an online learner learns each label (needs labels)
    learner: str = ""  # the online learner served with learn=online; empty: model when it is one, else the default
    learn_every: int = 1000  # labels an online learner learns between the versions it hands the detectors
    learn_dir: str = ""  # the online learner's folder (its versions and checkpoint); empty: see Settings.learn_folder
    retrain_trigger: str = "score"  # learn=retrain: what starts an attempt (score, drift or labels)
    retrain_every: int = 5000  # the labels trigger: labelled flows between two attempts
    retrain_drop: float = 0.1  # the score trigger: macro-F1 fall below the champion's best that starts an attempt
    retrain_window: int = 5000  # labelled flows a challenger trains on
    retrain_holdout: int = 1000  # the most recent labelled flows both models are scored on (trained on by neither)
    retrain_margin: float = 0.01  # macro-F1 a challenger must gain over the champion there to be promoted
    retrain_with_training: bool = False  # train challengers on the original training split too
    retrains_topic: str = "flows.retrains"  # where each retraining decision is sent
    kafka_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = datasets.spec(self.dataset)
        object.__setattr__(self, "dataset", spec.name)
        spec.check_task(self.task)
        zoo.check_model(self.model)
        if self.level:
            spec.check_level(self.level)
        if self.split_mode:
            leakage.check_split_mode(self.split_mode)
        if self.train_until:  # an ISO time here; that it goes with a temporal split, in model_ref (ModelRef)
            leakage.parse_until(self.train_until)
        check_order(self.order)
        if self.learn not in LEARN_MODES:
            raise ConfigError(f"unknown learning mode {self.learn!r}; choose one of: {', '.join(LEARN_MODES)}")
        if self.learner:
            zoo.check_model(self.learner)
            if self.learner not in zoo.LEARNERS:
                raise ConfigError(f"{self.learner} cannot learn online; choose a learner: {', '.join(zoo.LEARNERS)}")
        if self.learn == "retrain" and self.model in zoo.LEARNERS:
            raise ConfigError(f"{self.model} learns online: serve it with --learn online; --learn retrain retrains a "
                              f"batch model ({', '.join(zoo.MODELS)})")
        if self.learn == "online":  # the learner is the model served: every name of the model follows it
            learner = self.learner or (self.model if self.model in zoo.LEARNERS else DEFAULT_LEARNER)
            object.__setattr__(self, "learner", learner)
            object.__setattr__(self, "model", learner)
        object.__setattr__(self, "models_dir", Path(self.models_dir).expanduser())
        object.__setattr__(self, "store", sqlite.store_kind(self.store_url, self.store))
        object.__setattr__(self, "label_delay", "" if self.label_delay is None else str(self.label_delay).strip())
        check_value_format(self.value_format)
        for name in ("topic", "predictions_topic", "dlq_topic", "group"):
            if not str(getattr(self, name)).strip():
                raise ConfigError(f"setting {name!r} must not be empty")
        for name, what in (("predictions_topic", "predictions topic"), ("dlq_topic", "dead-letter topic"),
                           ("drift_topic", "drift topic"), ("alerts_topic", "alerts topic"),
                           ("labels_topic", "labels topic"), ("prequential_topic", "prequential topic"),
                           ("retrains_topic", "retrains topic")):
            if getattr(self, name) == self.topic:
                raise ConfigError(f"the {what} must differ from the flows topic {self.topic!r} "
                                  "(the detector would read its own output)")
        sqlite.check_table_name(self.store_table)
        if self.store == "mongodb" and not self.store_database.strip():
            raise ConfigError("the MongoDB results store needs a database name (DB_NAME / KSTREAM_STORE_DATABASE)")
        logs.register_secret(_url_password(self.store_url))
        self.kafka.check_options(self.kafka_options)
        for name, value in self.kafka_options.items():
            if _secret(name):
                logs.register_secret(value)
        for name in _INTS:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"setting {name!r} must be a positive whole number, not {getattr(self, name)!r}")
        for name in _COUNTS:
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"setting {name!r} must be 0 (automatic) or a positive whole number, "
                                  f"not {getattr(self, name)!r}")
        if not 0 <= float(self.model_check_s) < float("inf"):
            raise ConfigError(f"setting 'model_check_s' must be 0 (no hot-swap) or a number of seconds, "
                              f"not {self.model_check_s!r}")
        if not 0 <= float(self.drift_window_s) < float("inf"):
            raise ConfigError(f"setting 'drift_window_s' must be 0 (records only) or a number of seconds, "
                              f"not {self.drift_window_s!r}")
        if not 0 < float(self.drift_psi) < float("inf"):
            raise ConfigError(f"setting 'drift_psi' must be a PSI above 0 (e.g. 0.2), not {self.drift_psi!r}")
        if not 0 < float(self.drift_share) <= 1:
            raise ConfigError(f"setting 'drift_share' must be a share in (0, 1] (e.g. 0.1), not {self.drift_share!r}")
        if not 0 < float(self.label_wait_s) < float("inf"):
            raise ConfigError(f"setting 'label_wait_s' must be a number of seconds above 0, not {self.label_wait_s!r}")
        if self.labels_topic in (self.predictions_topic, self.dlq_topic):
            raise ConfigError(f"the labels topic {self.labels_topic!r} must differ from the predictions and "
                              "dead-letter topics (the detector would read its own output)")
        self.alert_rules()  # a bad rule fails here, naming the form
        self.retrain_policy()  # a bad trigger, window or margin fails here
        parse_label_delay(self.label_delay)  # a bad label delay fails here, naming the forms

    @classmethod
    def resolve(cls, cli: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from CLI values (None = not given), then ``env``, then defaults.

        >>> Settings.resolve({"bootstrap": None}, env={"KAFKA_BROKER_URL": "kafka:9092"}).bootstrap
        'kafka:9092'
        >>> Settings.resolve({"dataset": "SELECTED_NET"}, env={}).task  # netml has no binary task
        'multi_class'
        >>> Settings.resolve({"dataset": "nope"}, env={})  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        kstream.errors.ConfigError: unknown dataset 'nope'; choose one of: cicids2017 (alias SELECTED_CICIDS), netml
            (alias SELECTED_NET), nsl-kdd
        """
        env = os.environ if env is None else env
        cli = dict(cli or {})
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "kafka_options":
                continue
            if cli.get(f.name) is not None and cli.get(f.name) != "":
                values[f.name] = cli[f.name]
                continue
            for env_name in ENV_NAMES.get(f.name, ()):
                if env.get(env_name):
                    values[f.name] = env[env_name]
                    break
        if "task" not in values:  # default: binary where the dataset has it, else multi-class (netml)
            values["task"] = datasets.spec(values.get("dataset", cls.dataset)).tasks[0]
        kafka = clients.backend(str(values.get("client", cls.client)))
        options: dict[str, Any] = {}
        for key, value in env.items():
            if key.startswith("KSTREAM_KAFKA_") and value:
                name = kafka.option_name(key[len("KSTREAM_KAFKA_") :])
                options[name] = kafka.coerce_option(name, value)
        for name, value in (cli.get("kafka_options") or {}).items():  # text from the command line is typed here
            name = kafka.option_name(name)
            options[name] = kafka.coerce_option(name, value) if isinstance(value, str) else value
        values["kafka_options"] = options
        for name in (*_INTS, *_COUNTS, "seed"):
            if name in values:
                values[name] = _to_int(name, values[name])
        for name in _FLOATS:
            if name in values:
                values[name] = _to_float(name, values[name])
        for name in _BOOLS:
            if name in values:
                values[name] = _to_bool(name, values[name])
        if isinstance(values.get("alerts"), (list, tuple)):
            values["alerts"] = "; ".join(values["alerts"])
        return cls(**values)

    @property
    def kafka(self) -> clients.Backend:
        """The Kafka client backend :attr:`client` names (:func:`kstream.clients.backend`).

        >>> Settings(client="confluent").kafka.__name__
        'kstream.clients.confluent'
        """
        return clients.backend(self.client)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def model_ref(self, data: Dataset | None = None) -> ModelRef:
        """The model these settings name; without a ``level``, the level follows ``data`` when given.

        >>> ds = datasets.load("cicids2017", "csv-sample")  # grouped labels only
        >>> Settings(task="multi_class").model_ref(ds).level
        'grouped'
        """
        level = self.level or (data.default_level if data is not None else "")
        return ModelRef(self.dataset, self.task, self.model, level, self.models_dir, self.seed, self.split_mode,
                        self.train_until)

    def learn_folder(self, run_dir: Path | None = None) -> Path:
        """The online learner's folder: ``learn_dir`` when set, else ``<run_dir>/learner`` for a run, else
        ``runs/learners/<group>`` (a detector started again with the same group goes on from its checkpoint).

        >>> Settings(learn="online", group="g").learn_folder().parts[-2:], Settings().learn_folder(Path("r")).name
        (('learners', 'g'), 'learner')
        """
        if self.learn_dir:
            return Path(self.learn_dir).expanduser()
        return Path(run_dir) / "learner" if run_dir is not None else RUNS_DIR / "learners" / self.group

    def retrain_policy(self) -> RetrainPolicy:
        """The retraining policy of ``learn="retrain"`` (:class:`~kstream.learning.retrain.RetrainPolicy`).

        >>> Settings(retrain_trigger="labels", retrain_every=2000).retrain_policy().every
        2000
        """
        return RetrainPolicy(self.retrain_trigger, self.retrain_every, self.retrain_drop, self.retrain_window,
                             self.retrain_holdout, self.retrain_margin, self.retrain_with_training)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict, with secrets in ``kafka_options`` masked (safe to log).

        >>> Settings(kafka_options={"sasl_plain_password": "hunter2"}).redacted()["kafka_options"]
        {'sasl_plain_password': '***'}
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["models_dir"] = str(self.models_dir)
        out["kafka_options"] = redact(self.kafka_options)
        password = _url_password(self.store_url)
        if password:
            out["store_url"] = self.store_url.replace(f":{password}@", ":***@")
        return out

    def alert_rules(self) -> list[AlertRule]:
        """The alert rules of ``alerts``, judged on windows of at least :data:`DRIFT_MIN_RECORDS` records.

        >>> [str(r) for r in Settings(alerts="attack_rate > 0.5; mean_score < 0.8").alert_rules()]
        ['attack_rate > 0.5', 'mean_score < 0.8']
        """
        return parse_rules(self.alerts, min(DRIFT_MIN_RECORDS, self.drift_window))

    @property
    def label_schedule(self) -> LabelDelay | None:
        """The delay after which the generator sends each record's label (None: it sends none).

        >>> Settings(label_delay="30s").label_schedule, Settings().label_schedule
        (LabelDelay(records=None, seconds=30.0), None)
        """
        return parse_label_delay(self.label_delay)

    def drift_monitor(self, reference: FeatureReference) -> DriftMonitor:
        """A drift monitor with these settings' windows and thresholds, against ``reference``.

        >>> import numpy as np
        >>> ref = FeatureReference.fit(np.arange(100.0).reshape(-1, 1), ["x"])
        >>> Settings(drift_window=50, drift_window_s=2).drift_monitor(ref).window_ns
        2000000000
        """
        return DriftMonitor(reference, window_records=self.drift_window, window_seconds=self.drift_window_s or None,
                            psi_threshold=self.drift_psi, share_threshold=self.drift_share,
                            min_records=min(DRIFT_MIN_RECORDS, self.drift_window))

    def open_store(self) -> sqlite.Store:
        """The results store these settings name (retrying failures until ``outage_timeout_s``)."""
        return sqlite.open_store(self.store, self.store_url, self.store_table, self.outage_timeout_s,
                                 self.store_database)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"


def redact(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the values of secret-looking names (password, secret, token, key) masked."""
    return {k: ("***" if _secret(k) else v) for k, v in options.items()}


def _url_password(url: str) -> str:
    """The password in a ``scheme://user:password@host`` URL ('' when there is none)."""
    netloc = urllib.parse.urlsplit(url).netloc if "://" in url else ""
    userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""
    return userinfo.partition(":")[2]


def _secret(name: str) -> bool:
    return any(w in name.lower() for w in _SECRET_WORDS)


def parse_value(text: str) -> Any:
    """A value from the command line or the environment: JSON when it parses, else the text.

    >>> parse_value("5"), parse_value("0.5"), parse_value("True"), parse_value("SASL_SSL")
    (5, 0.5, True, 'SASL_SSL')
    """
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(pairs: list[str] | None, what: str, form: str) -> dict[str, str]:
    """``name=value`` strings into ``{name: raw value}``; a malformed one fails naming ``form``.

    >>> parse_assignments(["a=1", " b = x,y"], "option", "name=value")
    {'a': '1', 'b': 'x,y'}
    """
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{what} {pair!r} is not of the form {form}")
        out[name.strip()] = value.strip()
    return out


def parse_kafka_options(pairs: list[str] | None, client: str = "kafka-python") -> dict[str, Any]:
    """Parse ``option=value`` strings from the command line into ``client``'s options, each in the type
    the client expects (a password of digits stays text).

    >>> parse_kafka_options(["linger_ms=5", "security_protocol=SASL_SSL", "sasl_plain_password=007"])
    {'linger_ms': 5, 'security_protocol': 'SASL_SSL', 'sasl_plain_password': '007'}
    >>> parse_kafka_options(["linger.ms=5", "sasl.password=007"], client="confluent")
    {'linger.ms': '5', 'sasl.password': '007'}
    """
    kafka = clients.backend(client)
    raw = parse_assignments(pairs, "Kafka option", "option=value (e.g. linger_ms=5)")
    return kafka.coerce_options({kafka.option_name(k): v for k, v in raw.items()})


def _to_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r} must be a number, not {value!r}") from None


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise ConfigError(f"setting {name!r} must be true or false (1/0, yes/no), not {value!r}")
    return text in _TRUE


def _to_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r} must be a whole number, not {value!r}") from None
