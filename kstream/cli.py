"""The ``kstream`` command (also ``python -m kstream``).

Every subcommand calls the same library functions the notebooks use (:mod:`kstream.app`). Settings
follow one rule: command-line option > environment > default (:class:`kstream.settings.Settings`),
and the help texts read their defaults from there. Each command is an entry of :data:`COMMANDS`: a
function that adds its options and a handler that runs it; option groups several commands share
are built by one function each. An option the command would ignore is refused as a usage error
(exit 2); every other error prints one line and exits 1.

>>> args = build_parser().parse_args(["models", "-v", "--list-features"])
>>> args.command, args.verbose, args.list_features
('models', True, True)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import faulthandler
import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from kstream import __version__, app, clients, logs
from kstream.analysis import summaries
from kstream.data import datasets, leakage
from kstream.data.datasets import TASKS
from kstream.data.order import ORDERS
from kstream.errors import KstreamError
from kstream.learning.retrain import TRIGGERS
from kstream.messages.wire import VALUE_FORMATS
from kstream.modeling import artifacts, training, zoo
from kstream.modeling.quality import format_absent, format_leakage, format_scores
from kstream.paths import PROJECT_ROOT
from kstream.servers import daemon, provision, retention
from kstream.settings import DEFAULT_LEARNER, ENV_NAMES, LEARN_MODES, Settings, parse_assignments, parse_value
from kstream.stores.sqlite import sqlite_path_from_url
from kstream.tables import markdown_table, text_table

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

log = logging.getLogger("kstream")

_FORMAT = argparse.RawDescriptionHelpFormatter
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Settings)}


def _default_of(function: Callable[..., Any], parameter: str) -> Any:
    """The default of ``parameter`` of a library function, so help texts never repeat it."""
    return inspect.signature(function).parameters[parameter].default


def _project_path(path: Path) -> str:
    """``path`` relative to the project folder when it is inside it (help texts read better)."""
    try:
        return str(Path(path).relative_to(PROJECT_ROOT)) + ("/" if Path(path).suffix == "" else "")
    except ValueError:
        return str(path)


# --- option groups several commands share ------------------------------------------------------------


def _verbosity() -> argparse.ArgumentParser:
    """-v / -q, accepted before the command and after it (a parent parser of every parser)."""
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    g = parent.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log debug detail (and the Kafka client's own logs)")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="log warnings only and hide progress bars")
    return parent


def _dataset_help() -> str:
    names = [f"{n} (alias {', '.join(datasets.spec(n).aliases)})" if datasets.spec(n).aliases else n
             for n in datasets.available()]
    return f"dataset: {', '.join(names)} (default {_DEFAULTS['dataset']})"


def _model_group(p: argparse.ArgumentParser, seed: str = "", split_mode: str = "",
                 title: str = "model") -> None:
    """-d -t -m --level --models-dir, and --seed / --split-mode (with --train-until) when the command
    splits data (``seed`` and ``split_mode`` are their help texts; empty leaves the option out)."""
    g = p.add_argument_group(title)
    g.add_argument("-d", "--dataset", metavar="NAME", help=_dataset_help())
    g.add_argument("-t", "--task", metavar="TASK", help=f"task: {', '.join(TASKS)} (default: binary_class where the "
                   "dataset has it, else multi_class)")
    g.add_argument("-m", "--model", metavar="MODEL",
                   help=f"model: {', '.join(zoo.ALL_MODELS)} (default {_DEFAULTS['model']})")
    levels = "; ".join(f"{n}: {'|'.join(datasets.spec(n).levels)}" for n in datasets.available())
    g.add_argument("--level", metavar="LEVEL", help=f"multi-class label level ({levels}); default: the dataset's "
                   "first, or the one the data has")
    g.add_argument("--models-dir", metavar="DIR",
                   help=f"folder of trained models (default {_project_path(_DEFAULTS['models_dir'])})")
    if seed:
        g.add_argument("--seed", type=int, metavar="N", help=seed)
    if split_mode:
        g.add_argument("--split-mode", choices=leakage.SPLIT_MODES,
                       help="grouped: rows with the same feature vector fall on one side of the split; random: "
                       "rows drawn at random; temporal: the earliest rows by flow time train, the later ones are "
                       f"held out (data with a Timestamp column only); {split_mode}")
        g.add_argument("--train-until", metavar="TIME",
                       help="with --split-mode temporal: rows before TIME (ISO date or datetime, e.g. 2017-07-06 or "
                       "2017-07-06T12:00) train, the rest are held out (default: the last 20%% of the rows by time "
                       "are held out; to score: the model card's)")


def _data_group(p: argparse.ArgumentParser, data: str) -> Any:
    """--data and --label-column (``data`` is the help of --data); returns the group."""
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="PATH", help=data)
    g.add_argument("--label-column", metavar="COLUMN",
                   help="the column of the --data CSV holding the class, if not Label (class names, or 0/1 with "
                   "0 = benign)")
    return g


def _kafka_group(p: argparse.ArgumentParser, partitions: str = "", local: str = "", topics: bool = True) -> None:
    """--bootstrap --client --topic --partitions --kafka-option (``partitions`` and ``local`` tell, when given,
    what --partitions and a command without --bootstrap do instead of the usual; without ``topics``, only
    --bootstrap --client --kafka-option)."""
    g = p.add_argument_group("kafka")
    g.add_argument("--bootstrap", metavar="HOST:PORT[,...]", help="bootstrap servers of your cluster (default: the "
                   f"local broker of `kstream broker start`{local})")
    g.add_argument("--client", choices=list(clients.BACKENDS),
                   help=f"Kafka client library: kafka-python or confluent (librdkafka, faster); "
                   f"default {_DEFAULTS['client']}")
    if topics:
        g.add_argument("--topic", metavar="NAME", help=f"flows topic (default {_DEFAULTS['topic']})")
        g.add_argument("--partitions", type=int, metavar="N",
                       help=partitions or "partitions of the topics kstream creates (default 1)")
    g.add_argument("--kafka-option", action="append", metavar="OPTION=VALUE",
                   help="any option of the client library, repeatable (kafka-python: security_protocol=SASL_SSL, "
                   "linger_ms=5; confluent: security.protocol=SASL_SSL, linger.ms=5)")


def _store_group(p: argparse.ArgumentParser, default: str) -> None:
    g = p.add_argument_group("results store")
    g.add_argument("--store-url", metavar="URL",
                   help="where predictions go: sqlite:///path or a file path (SQLite), mongodb://user:password@host"
                   f":27017 or mongodb+srv://... (MongoDB; database DB_NAME, default {_DEFAULTS['store_database']}); "
                   f"default {default}. A URL with a password is better given as DB_URL, out of the process list")


def _detector_options(g: Any) -> None:
    g.add_argument("--batch-size", type=int, metavar="N",
                   help=f"max records per poll and model call (default {_DEFAULTS['batch_size']})")
    g.add_argument("--outage-timeout", dest="outage_timeout_s", type=int, metavar="SECONDS",
                   help="how long to retry a store or Kafka that fails before stopping without a commit "
                   f"(default {_DEFAULTS['outage_timeout_s']})")
    g.add_argument("--model-check", dest="model_check_s", type=float, metavar="SECONDS",
                   help="look this often for a new version in the model's folder (a new `kstream train`, or one copied "
                   "in) and swap it in at a batch boundary once it passes the load checks; 0 = never "
                   f"(default {_DEFAULTS['model_check_s']:g})")


def _records_option(g: Any, what: str) -> None:
    g.add_argument("--records", type=int, metavar="N", help=f"{what} (default 0: all)")


def _rate_option(g: Any, unit: str = "records") -> None:
    g.add_argument("--rate", type=float, metavar="PER_SECOND", default=_default_of(app.send, "rate"),
                   help=f"{unit} per second, 0 = as fast as possible (default %(default)g)")


def _value_format_option(g: Any, vector: str = "the model's features") -> None:
    g.add_argument("--value-format", choices=VALUE_FORMATS,
                   help=f"json: an object of feature -> number; vector: {vector} as float64 bytes with a "
                   "kstream-schema header (3x smaller, decoded in one call; the detector reads both); default "
                   f"{_DEFAULTS['value_format']}")


def _allow_missing_option(g: Any, needs_data: bool = False) -> None:
    g.add_argument("--allow-missing", action="store_true",
                   help="score data that lacks some of the model's features: impute them (reported beside the "
                   "scores)" + ("; checked against --data, so it needs --data" if needs_data else ""))


def _order_option(g: Any) -> None:
    g.add_argument("--order", choices=ORDERS,
                   help="the order records are sent in: time (by each flow's Timestamp; rows of one time keep their "
                   "file order), shuffle (a permutation seeded by --seed, else 42: the same order on every run), "
                   "file (as the data holds them: the bundled samples hold one class after another); default: "
                   "time where the data has timestamps, else shuffle")


def _json_option(g: Any, what: str) -> None:
    g.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _drift_group(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("drift and alerts (the other options here need --drift)")
    g.add_argument("--drift", action="store_true", default=None,
                   help="compare each window of live flows with the model card's reference (PSI per feature, "
                   "scores, Page-Hinkley on attack rate and mean score); windows go to the store and --drift-topic")
    g.add_argument("--drift-window", type=int, metavar="N",
                   help=f"records per drift window (default {_DEFAULTS['drift_window']})")
    g.add_argument("--drift-seconds", dest="drift_window_s", type=float, metavar="SECONDS",
                   help=f"also close a window after this many seconds (default {_DEFAULTS['drift_window_s']:g}: by "
                   "records only)")
    g.add_argument("--drift-psi", type=float, metavar="PSI",
                   help=f"PSI past which a feature drifts (default {_DEFAULTS['drift_psi']})")
    g.add_argument("--drift-share", type=float, metavar="SHARE",
                   help=f"share of drifting features that makes a window drift (default {_DEFAULTS['drift_share']})")
    g.add_argument("--alert", dest="alerts", action="append", metavar="RULE",
                   help="alert rule on each window, repeatable: 'attack_rate > 0.5', 'mean_score < 0.8' (metrics: "
                   "attack_rate, mean_score, share_drifting, max_psi, score_psi); alerts go to --alerts-topic")
    g.add_argument("--drift-topic", metavar="NAME", help=f"topic of drift windows (default {_DEFAULTS['drift_topic']})")
    g.add_argument("--alerts-topic", metavar="NAME", help=f"topic of alerts (default {_DEFAULTS['alerts_topic']})")


_DRIFT_OPTIONS = ("--drift-window", "--drift-seconds", "--drift-psi", "--drift-share", "--alert", "--drift-topic",
                  "--alerts-topic")
_DESTS = {"--drift-seconds": "drift_window_s", "--alert": "alerts", "--outage-timeout": "outage_timeout_s",
          "--model-check": "model_check_s",
          "--label-wait": "label_wait_s"}


def _label_delay_option(g: Any) -> None:
    g.add_argument("--label-delay", metavar="N|SECONDS",
                   help="also send each record's label (its class at the model's level: benign/attack for binary) to "
                   "--labels-topic, N records after it (1000) or that long after it (30s, 500ms, 2m); the labels "
                   "left at the end of the data go at once (records) or at their time (seconds). Default: no labels")


def _labels_group(p: argparse.ArgumentParser, switch: bool) -> None:
    """The labels and prequential options of the detector side (``switch``: with --labels, for `detect`)."""
    title = "labels and prequential scores" + (" (the other options here need --labels)" if switch else "")
    g = p.add_argument_group(title)
    if switch:
        g.add_argument("--labels", action="store_true", default=None,
                       help="also read --labels-topic, join each label to the prediction of its record id and score "
                       "prequential windows (stored, and sent to --prequential-topic)")
    else:
        _label_delay_option(g)
    g.add_argument("--labels-topic", metavar="NAME", help=f"topic of labels (default {_DEFAULTS['labels_topic']})")
    g.add_argument("--prequential-window", type=int, metavar="N",
                   help=f"labelled records per prequential window (default {_DEFAULTS['prequential_window']})")
    g.add_argument("--prequential-topic", metavar="NAME",
                   help=f"topic of prequential windows (default {_DEFAULTS['prequential_topic']})")
    g.add_argument("--label-pending", type=int, metavar="N",
                   help="most predictions kept waiting for their label, and labels for their prediction "
                   f"(default {_DEFAULTS['label_pending']:,}); the oldest beyond expire, counted")
    g.add_argument("--label-wait", dest="label_wait_s", type=float, metavar="SECONDS",
                   help="seconds a prediction waits for its label, and a label for its prediction, before it expires "
                   f"(default {_DEFAULTS['label_wait_s']:g})")


def _learn_group(p: argparse.ArgumentParser) -> None:
    """The options of a model that adapts while the stream runs (``kstream detect`` and ``kstream run``)."""
    g = p.add_argument_group("learning (--learner and --learn-* need --learn online; --retrain* need --learn retrain)")
    g.add_argument("--learn", choices=LEARN_MODES,
                   help="static: the model never changes (default); retrain: when --retrain-trigger fires, train a "
                   "challenger on recent labelled flows and promote it if it beats the model serving; online: serve "
                   "an online learner and learn every label into it, handing the detectors a new version every "
                   "--learn-every labels (both need labels, and run beside the detectors)")
    g.add_argument("--learner", metavar="NAME",
                   help=f"the online learner: {', '.join(zoo.LEARNERS)} (default: -m when it is one, else "
                   f"{DEFAULT_LEARNER})")
    g.add_argument("--learn-every", type=int, metavar="N",
                   help=f"labels learned between two versions handed to the detectors (default "
                   f"{_DEFAULTS['learn_every']})")
    g.add_argument("--learn-dir", metavar="DIR",
                   help="the learner's folder: the versions the detectors serve and its checkpoint (default: the run "
                   "folder's learner/ for run, runs/learners/<group> for detect: started again, it goes on); "
                   "--learn retrain serves and promotes into it too")
    g.add_argument("--retrain-trigger", choices=TRIGGERS,
                   help="what starts a retraining attempt: score (the model's macro-F1 over the last --retrain-holdout "
                   "labelled flows falls --retrain-drop below its best), drift (a drift window of the labelled flows "
                   "drifts, by the --drift-* thresholds) or labels (every --retrain-every labelled flows); default "
                   f"{_DEFAULTS['retrain_trigger']}")
    g.add_argument("--retrain-every", type=int, metavar="N",
                   help="labelled flows between two attempts of the labels trigger (default "
                   f"{_DEFAULTS['retrain_every']})")
    g.add_argument("--retrain-drop", type=float, metavar="F1",
                   help=f"macro-F1 fall that fires the score trigger (default {_DEFAULTS['retrain_drop']})")
    g.add_argument("--retrain-window", type=int, metavar="N",
                   help=f"recent labelled flows a challenger trains on (default {_DEFAULTS['retrain_window']})")
    g.add_argument("--retrain-holdout", type=int, metavar="N",
                   help="the most recent labelled flows both models are scored on, trained on by neither (default "
                   f"{_DEFAULTS['retrain_holdout']})")
    g.add_argument("--retrain-margin", type=float, metavar="F1",
                   help="macro-F1 a challenger must gain over the serving model there to be promoted (default "
                   f"{_DEFAULTS['retrain_margin']})")
    g.add_argument("--retrain-with-training", action="store_true", default=None,
                   help="train challengers on the model's original training split too")
    g.add_argument("--retrains-topic", metavar="NAME",
                   help=f"topic of retraining decisions (default {_DEFAULTS['retrains_topic']})")


def _check_learn(args: argparse.Namespace, settings: Settings, labels: bool, switch: str) -> None:
    _needs(args, ["--learner", "--learn-every"], settings.learn == "online",
           "{options} need{s} an online learner: add --learn online (or set KSTREAM_LEARN=online), or drop {them}")
    _needs(args, _RETRAIN_OPTIONS, settings.learn == "retrain",
           "{options} need{s} retraining: add --learn retrain (or set KSTREAM_LEARN=retrain), or drop {them}")
    _needs(args, ["--learn-dir"], settings.learn != "static",
           "{options} need{s} a model that adapts: add --learn online or --learn retrain, or drop {them}")
    if settings.learn != "static" and not labels:
        _refuse(args, f"--learn {settings.learn} learns from labels: add {switch}")


_RETRAIN_OPTIONS = ("--retrain-trigger", "--retrain-every", "--retrain-drop", "--retrain-window", "--retrain-holdout",
                    "--retrain-margin", "--retrain-with-training", "--retrains-topic")


_LABEL_OPTIONS = ("--labels-topic", "--prequential-window", "--prequential-topic", "--label-pending", "--label-wait")


def _check_labels(args: argparse.Namespace, settings: Settings, switch: str) -> None:
    present = settings.labels if switch == "--labels" else settings.label_schedule is not None
    env = "KSTREAM_LABELS=1" if switch == "--labels" else "KSTREAM_LABEL_DELAY"
    options = _LABEL_OPTIONS if switch == "--labels" else ("--prequential-window", "--prequential-topic",
                                                           "--label-pending", "--label-wait")
    _needs(args, options, present, "{options} need{s} labels: add " + switch + " (or set " + env + "), or drop {them}")

# --- usage checks: an option the command would ignore is refused ---------------------------------------


def _given(args: argparse.Namespace, *options: str) -> list[str]:
    """The ``options`` given on the command line (of those the command has)."""
    dests = {o: _DESTS.get(o, o.lstrip("-").replace("-", "_")) for o in options}
    return [o for o, d in dests.items() if getattr(args, d, None) not in (None, False, [])]


def _refuse(args: argparse.Namespace, message: str) -> NoReturn:
    """A usage error of the command being run: its usage, one line, exit 2."""
    parser: argparse.ArgumentParser = args.command_parser
    parser.error(message)


def _needs(args: argparse.Namespace, options: Sequence[str], present: bool, message: str) -> None:
    """Refuse those of ``options`` given while ``present`` is false: ``message`` with ``{options}`` (the
    ones given), ``{s}`` (a verb's -s when one was given) and ``{them}`` filled in."""
    given = _given(args, *options)
    if given and not present:
        one = len(given) == 1
        _refuse(args, message.format(options=" and ".join(given), s="s" if one else "", them="it" if one else "them"))


def _check_drift(args: argparse.Namespace, settings: Settings) -> None:
    _needs(args, _DRIFT_OPTIONS, settings.drift,
           "{options} need{s} drift monitoring: add --drift (or set KSTREAM_DRIFT=1), or drop {them}")


def _check_train_until(args: argparse.Namespace) -> None:
    """--train-until is the boundary of a temporal split: --split-mode temporal (or KSTREAM_SPLIT_MODE) must say so."""
    mode = getattr(args, "split_mode", None) or next(
        (os.environ[name] for name in ENV_NAMES["split_mode"] if os.environ.get(name)), "")
    _needs(args, ["--train-until"], mode == "temporal",
           "{options} is the boundary of a temporal split: add --split-mode temporal, or drop {them}")


def _check_data(args: argparse.Namespace, *other: str) -> None:
    """--label-column names a column of a data file: --data (or one of ``other``) must be given."""
    _needs(args, ["--label-column"], bool(_given(args, "--data", *other)),
           "{options} names a column of your data file: add " + " or ".join(("--data PATH", *other))
           + ", or drop {them}")


def _settings(args: argparse.Namespace) -> Settings:
    cli = {k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__ and k != "kafka_options"}
    # typed by Settings, in the names of the client backend it resolves (--client / KSTREAM_CLIENT)
    cli["kafka_options"] = parse_assignments(getattr(args, "kafka_option", None), "Kafka option",
                                             "option=value (e.g. linger_ms=5, or linger.ms=5 with --client confluent)")
    settings = Settings.resolve(cli)
    log.debug("settings: %r", settings)
    return settings


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


# --- the commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, its description, the function that adds its options and the
    handler that runs it (returning the exit code)."""

    help: str
    description: str
    build: Callable[[argparse.ArgumentParser], None]
    handle: Callable[[argparse.Namespace], int]
    epilog: str = ""


def _build_run(p: argparse.ArgumentParser) -> None:
    _model_group(p, seed="split seed of the model (default: the model card's; a model trained here uses "
                 f"{datasets.DEFAULT_SEED}); a model of another seed is refused (add --retrain)",
                 split_mode=f"default: the model card's (a model trained here: {leakage.DEFAULT_SPLIT_MODE})")
    _data_group(p, "file or folder of the dataset's format to stream the unseen rows of (default: the bundled "
                "sample's held-out split)")
    g = p.add_argument_group("run")
    _rate_option(g)
    _records_option(g, "send only this many records")
    _order_option(g)
    _value_format_option(g)
    g.add_argument("--detectors", type=int, metavar="N", default=_default_of(app.run, "detectors"),
                   help="detector processes in one consumer group (default %(default)s); the topics get one "
                   "partition per detector unless --partitions says otherwise")
    g.add_argument("--retrain", action="store_true", help="train the model again even if it exists")
    g.add_argument("--delete-topics", action="store_true",
                   help="delete the run's topics from the cluster at its end (the store keeps the predictions; a "
                   "failed run keeps them); `kstream broker delete` removes older runs'")
    _allow_missing_option(g)
    _detector_options(g)
    g.add_argument("--run-dir", metavar="DIR",
                   help="folder for summary.json and predictions.sqlite (default runs/<time>-<dataset>-<task>-<model>)")
    _json_option(g, "the summary")
    _kafka_group(p, partitions="partitions of the run's topics (default: one per detector)",
                 local=", else a temporary one for the run")
    _store_group(p, "the run folder's predictions.sqlite")
    _drift_group(p)
    _labels_group(p, switch=False)
    _learn_group(p)


def _run(args: argparse.Namespace) -> int:
    _check_data(args)
    _check_train_until(args)
    settings = _settings(args)
    _check_drift(args, settings)
    _check_labels(args, settings, "--label-delay")
    _check_learn(args, settings, settings.label_schedule is not None, "--label-delay N")
    result = app.run(settings, rate=args.rate, data=args.data, run_dir=args.run_dir, retrain=args.retrain,
                     progress=_progress(args), detectors=args.detectors, allow_missing=args.allow_missing,
                     delete_topics=args.delete_topics)
    if args.json:
        print(json.dumps(result.summary, indent=2, default=str))
    else:
        print(summaries.format_summary(result.summary))
        print(f"predictions    {result.store}")
        print(f"run folder     {result.run_dir}  (report: kstream report {result.run_dir})")
    return 0


def _build_train(p: argparse.ArgumentParser) -> None:
    _model_group(p, seed=f"split and classifier seed (default {datasets.DEFAULT_SEED})",
                 split_mode=f"default {leakage.DEFAULT_SPLIT_MODE}")
    _data_group(p, "file or folder of the dataset's format to train on (default: the bundled sample)")
    g = p.add_argument_group("training")
    g.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="classifier hyperparameter, repeatable (e.g. max_depth=12)")
    g.add_argument("--class-weight", default=_default_of(app.train, "class_weight"), choices=zoo.CLASS_WEIGHTS,
                   help="class weighting against imbalance: balanced (n/(k*n_c)), sqrt (its square root), none "
                   "(default %(default)s)")
    g.add_argument("--learning-curve", action="store_true",
                   help="also score the model trained on 10, 20, 40, 60, 80%% of its training rows (stratified, "
                   "nested) on the same held-out rows; printed and recorded on the card")
    f = g.add_mutually_exclusive_group()
    f.add_argument("--features-from", metavar="FILE",
                   help="train only on the features FILE has (to score that source: cross-source evaluation)")
    f.add_argument("--features", metavar="A,B,...|capture",
                   help="train only on these features (any spelling), or on those packets give ('capture')")
    g = p.add_argument_group("the grid")
    g.add_argument("--all", action="store_true",
                   help="train every dataset x task x model on the bundled samples (narrowed by -d/-t/-m), with "
                   "default hyperparameters; --seed, --split-mode and --class-weight apply")
    g.add_argument("--markdown", metavar="FILE", help="with --all: also write the grid's results table to FILE")
    g.add_argument("--jobs", type=int, metavar="N",
                   help="with --all: models trained at once, each in a process of its own (default 1)")


_NOT_WITH_ALL = ("--data", "--label-column", "--level", "--param", "--features", "--features-from",
                 "--learning-curve")


def _train(args: argparse.Namespace) -> int:
    if args.all:
        _needs(args, _NOT_WITH_ALL, False, "{options} cannot go with --all (the grid trains each model on its "
               "bundled sample with default hyperparameters): drop {them}, or train one model without --all")
        return _train_grid(args)
    _needs(args, ["--markdown", "--jobs"], False, "{options} belong{s} to the grid: add --all, or drop {them}")
    _check_data(args, "--features-from")
    _check_train_until(args)
    settings = _settings(args)
    features, source = None, ""
    if args.features_from:
        features, source = app.features_of(settings, args.features_from), args.features_from
    elif args.features:
        features = app.features_of(settings, "capture") if args.features == "capture" else args.features.split(",")
        source = "what packets give (kstream capture)" if args.features == "capture" else "the --features list"
    params = {name: parse_value(value) for name, value in
              parse_assignments(args.param, "hyperparameter", "name=value (e.g. max_depth=8)").items()}
    trained = app.train(settings, args.data, params, args.class_weight, features, source,
                        learning_curve=args.learning_curve)
    card = trained.card
    m = card.metrics
    print(f"{trained.path}: held-out accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
          f"NetML overall {m['netml_overall']:.4f} ({card.split_mode} split, seed {card.seed})"
          + (f" ({len(trained.features)} features of {source})" if features is not None else ""))
    print("\n".join(format_leakage(m)))
    if card.time_range:
        print("flow times: " + "; ".join(f"{side} {first} .. {last}" for side, (first, last) in card.time_range.items())
              + (f"; trained on the flows before {card.train_until}" if card.train_until else ""))
    absent = m.get("classes_absent_from_training") or {}
    if absent:
        print(format_absent(absent))
    c = card.conflicts
    print(f"all {c['rows']} rows: {c['duplicate_rows']} ({c['duplicate_share']:.1%}) share their feature vector with "
          f"another row; {c['multi_label_rows']} ({c['multi_label_share']:.1%}) sit on {c['multi_label_vectors']} "
          f"vectors labelled more than one way; ceiling accuracy {c['ceiling']:.4f}")
    if card.learning_curve:
        print("\nlearning curve (held-out scores by training rows):")
        print(text_table(card.learning_curve, list(card.learning_curve[0])))
    return 0


def _train_grid(args: argparse.Namespace) -> int:
    _check_train_until(args)
    settings = _settings(args)
    refs, skipped = training.grid([settings.dataset] if args.dataset else None, [settings.task] if args.task else None,
                                  [settings.model] if args.model else None, settings.models_dir, settings.seed,
                                  settings.split_mode, settings.train_until)
    rows = training.train_grid(refs, _progress(args), args.class_weight, jobs=args.jobs or 1)
    columns = ["dataset", "task", "model", "status", "accuracy", "macro_f1", "netml_overall", "seen_in_training",
               "unseen_accuracy", "unseen_macro_f1", "unseen_netml_overall", "seconds"]
    conflicts = _conflicts_table(rows)
    print(text_table(rows, columns))
    print("\nfeature vectors shared by several rows, and labelled more than one way (all rows of each dataset):")
    print(text_table(conflicts, list(conflicts[0]) if conflicts else []))
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(rows, columns[:-1]) + "\n\n"
                                       + markdown_table(conflicts, list(conflicts[0]) if conflicts else []) + "\n")
    for reason in skipped:
        print(f"skipped: {reason}")
    return 0


def _conflicts_table(rows: list[dict]) -> list[dict]:
    """One row per dataset and task of a grid: duplicate and multi-label vectors over all its rows."""
    out: dict[tuple[str, str], dict] = {}
    for row in rows:
        c = row.get("conflicts") or {}
        if c and (row["dataset"], row["task"]) not in out:
            out[(row["dataset"], row["task"])] = {
                "dataset": row["dataset"], "task": row["task"], "rows": c["rows"], "vectors": c["vectors"],
                "duplicate_rows": c["duplicate_rows"], "duplicate_share": c["duplicate_share"],
                "multi_label_vectors": c["multi_label_vectors"], "multi_label_rows": c["multi_label_rows"],
                "multi_label_share": c["multi_label_share"], "ceiling": c["ceiling"]}
    return list(out.values())


def _build_models(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--models-dir", metavar="DIR",
                   help=f"folder of trained models (default {_project_path(_DEFAULTS['models_dir'])})")
    g.add_argument("--list-features", action="store_true",
                   help="also list the features each model needs, in order (in --json: feature_names)")
    _json_option(g, "the cards' rows")


def _models(args: argparse.Namespace) -> int:
    settings = _settings(args)
    rows = artifacts.list_cards(settings.models_dir)
    if args.list_features:
        for row in rows:
            if "dataset" in row:  # not an unreadable card
                row["feature_names"] = artifacts.ModelCard.read(Path(row["path"]) / "model.json").features
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no trained models in {settings.models_dir}; train with `kstream train` or `kstream train --all`")
        return 0
    print(text_table(rows, ["dataset", "task", "model", "features", "kept", "classes", "seed", "split",
                            "accuracy", "macro_f1", "netml_overall", "size_kb", "created"]))
    for row in rows if args.list_features else []:
        if "feature_names" in row:
            print(f"\n{row['dataset']}/{row['task']}/{row['model']} needs {len(row['feature_names'])} features:\n  "
                  + "\n  ".join(row["feature_names"]))
    return 0


def _build_evaluate(p: argparse.ArgumentParser) -> None:
    _model_group(p, seed="split seed the model was trained with (default: the model card's); a model of "
                 "another seed is refused", split_mode="default: the model card's; a model of another is refused")
    _data_group(p, "file or folder of the dataset's format to score (default: the bundled sample)")
    g = p.add_argument_group("scoring")
    g.add_argument("--split", choices=datasets.SPLITS,
                   help="rows to score: train, test (the model's held-out rows) or all (default: the rows the model "
                   "was not trained on: its test split of the data it was trained on, else all)")
    g.add_argument("--predictions", metavar="FILE",
                   help="also write record_id,true_label,predicted_label,score,seen_in_training to this CSV")
    _allow_missing_option(g)
    _json_option(g, "the metrics")


def _evaluate(args: argparse.Namespace) -> int:
    _check_data(args)
    _check_train_until(args)
    settings = _settings(args)
    scores, frame = app.evaluate(settings, args.data, args.split, args.allow_missing)
    if args.predictions:
        frame.to_csv(args.predictions, index=False)
    print(json.dumps(scores, indent=2) if args.json else format_scores(scores))
    return 0


def _build_generate(p: argparse.ArgumentParser) -> None:
    _data_group(p, "file or folder of the dataset's format to send (default: the bundled sample)")
    g = p.add_argument_group("sending")
    g.add_argument("--split", default=_default_of(app.send, "split"), choices=datasets.SPLITS,
                   help="rows to send: test (the held-out split of the model -d/-t/-m name, if it is trained), "
                   "train or all (default %(default)s)")
    _rate_option(g)
    _records_option(g, "stop after this many records")
    _order_option(g)
    g.add_argument("--loop", action="store_true",
                   help="start over at the end of the data, in the same order (ids get #<pass>)")
    _value_format_option(g)
    _label_delay_option(g)
    g.add_argument("--labels-topic", metavar="NAME", help=f"topic of labels (default {_DEFAULTS['labels_topic']})")
    _model_group(p, seed=f"split seed (default: the model card's, else {datasets.DEFAULT_SEED})",
                 split_mode=f"default: the model card's, else {leakage.DEFAULT_SPLIT_MODE}",
                 title="dataset, and the model whose held-out rows --split test sends")
    _kafka_group(p)


def _generate(args: argparse.Namespace) -> int:
    _check_data(args)
    _check_train_until(args)
    settings = _settings(args)
    _needs(args, ["--labels-topic"], settings.label_schedule is not None,
           "{options} names where labels go: add --label-delay, or drop {them}")
    with app.kafka_cluster(settings, start_local=False) as settings:
        stats = app.send(settings, args.split, args.data, args.rate, args.loop, _progress(args))
    labels = f", and {stats.labels} labels to {settings.labels_topic}" if settings.label_schedule is not None else ""
    print(f"sent {stats.records} records to {settings.topic} at {settings.bootstrap} ({stats.rate:.0f} rec/s){labels}")
    return 0


def _build_capture(p: argparse.ArgumentParser) -> None:
    p.add_argument("pcap", nargs="?", metavar="FILE", help="capture file (.pcap, .pcapng; gzipped too)")
    g = p.add_argument_group("capture")
    g.add_argument("--interface", metavar="NAME",
                   help="capture live on this network interface instead of a file (as root or with CAP_NET_RAW)")
    g.add_argument("--flow-idle-timeout", type=int, metavar="SECONDS",
                   help="live capture: a flow ends after this many seconds without a packet (default "
                   f"{_default_of(app.capture, 'flow_idle_timeout_s')}; every flow ends 120 s after its first packet)")
    captures = [n for n in datasets.available() if datasets.spec(n).captures]
    g.add_argument("-d", "--dataset", metavar="NAME",
                   help=f"dataset whose features to meter: {', '.join(captures)} (default {_DEFAULTS['dataset']})")
    _rate_option(g, "flows")
    _records_option(g, "stop after this many flows")
    _value_format_option(g, "the metered features (in the order a model trained with --features capture reads)")
    _kafka_group(p)


def _capture(args: argparse.Namespace) -> int:
    if (args.pcap is None) == (args.interface is None):
        _refuse(args, "give a capture file (kstream capture FILE) or --interface NAME, not both and not neither")
    _needs(args, ["--flow-idle-timeout"], args.interface is not None,
           "{options} ends the flows of a live capture: add --interface NAME, or drop {them}")
    settings = _settings(args)
    timeout = {"flow_idle_timeout_s": args.flow_idle_timeout} if args.flow_idle_timeout is not None else {}
    with app.kafka_cluster(settings, start_local=False) as settings:
        stats = app.capture(settings, args.pcap, args.interface, args.rate, progress=_progress(args), **timeout)
    print(f"sent {stats.records} flows to {settings.topic} at {settings.bootstrap} ({stats.rate:.0f} flows/s)")
    return 0


def _build_detect(p: argparse.ArgumentParser) -> None:
    _model_group(p)
    g = p.add_argument_group("detector")
    g.add_argument("--group", metavar="NAME", help=f"consumer group (default {_DEFAULTS['group']})")
    g.add_argument("--predictions-topic", metavar="NAME",
                   help=f"predictions topic (default {_DEFAULTS['predictions_topic']})")
    g.add_argument("--dlq-topic", metavar="NAME", help=f"dead-letter topic (default {_DEFAULTS['dlq_topic']})")
    _records_option(g, "stop after handling this many records")
    g.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help="stop after this many seconds with every record read (a broker outage is not idleness; "
                   "default: run until Ctrl-C)")
    _detector_options(g)
    g = _data_group(p, "dataset file or folder with the streamed records' labels: check the model against it "
                    "and print accuracy at the end")
    _allow_missing_option(g, needs_data=True)
    _kafka_group(p)
    _store_group(p, _project_path(sqlite_path_from_url("")))
    _drift_group(p)
    _labels_group(p, switch=True)
    _learn_group(p)


def _detect(args: argparse.Namespace) -> int:
    _check_data(args)
    _needs(args, ["--allow-missing"], args.data is not None,
           "{options} lets the model score --data that lacks features: add --data PATH, or drop {them}")
    settings = _settings(args)
    _check_drift(args, settings)
    _check_labels(args, settings, "--labels")
    _check_learn(args, settings, settings.labels, "--labels")
    # fail fast, before touching Kafka: the model, checked against the data when given
    ds = app.load_data(settings, args.data) if args.data else None
    model = app.model_for(settings.model_ref(ds), ds, allow_missing=args.allow_missing)
    if settings.drift:
        model.reference()  # a card without a drift reference: one line naming the retrain command, before Kafka
    with app.kafka_cluster(settings, start_local=False) as settings:
        stats = app.detect(settings, model, args.idle_timeout, _progress(args), data=ds)
    reasons = "".join(f"; {n} x {kind}" for kind, n in stats.dlq_reasons.items())
    print(f"handled {stats.records} records: {stats.predicted} predicted, {stats.dead_lettered} dead-lettered{reasons}")
    if stats.swaps or stats.refused_models:
        print(f"models: {' -> '.join(stats.model_ids)} ({stats.swaps} swap(s), {stats.refused_models} new "
              "version(s) refused: see the log)")
    if settings.drift:
        print(f"drift: {stats.drifted} of {stats.windows} windows drifted, {stats.alerts} alert(s) "
              f"(windows in the store's drift table and {settings.drift_topic})")
    if settings.labels:
        c = stats.labels or {}
        print(f"labels: {c.get('accepted', 0)} stored, {c.get('joined', 0)} joined, {c.get('duplicates', 0)} "
              f"duplicates, {c.get('unknown', 0)} unknown, {c.get('expired', 0)} expired predictions, "
              f"{c.get('pending', 0)} predictions waiting, {c.get('dead_lettered', 0)} dead-lettered; "
              f"{c.get('windows', 0)} prequential windows (in the store's prequential table and "
              f"{settings.prequential_topic})")
    if stats.retrains is not None:
        promoted = sum(bool(d["promoted"]) for d in stats.retrains)
        failed = sum(bool(d["error"]) for d in stats.retrains)
        print(f"retrains: {len(stats.retrains)} attempts, {promoted} promoted, {failed} failed (in the store's "
              f"retrains table and {settings.retrains_topic}); serving from {settings.learn_folder()}")
    if stats.learner is not None:
        learned = stats.learner
        skipped = "".join(f", {n} {why}" for why, n in learned["skipped"].items())
        print(f"learner: {learned['learned']} labels learned ({learned['versions']} versions{skipped}); "
              f"its folder {settings.learn_folder()}")
    if ds is not None:
        with settings.open_store() as store:
            frame = store.frame(settings.topic)
        print(summaries.format_summary(summaries.summarize(frame, ds.truth(settings.task), settings.task)))
    return 0


def _build_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                   help="run folder (default: the newest one under runs/ holding a summary.json)")
    g = p.add_argument_group("report")
    g.add_argument("--data", metavar="PATH", help="the data file the run streamed, if it has moved since")
    _json_option(g, "the summary (with the report's path)")


def _report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, no display needed
    run, path = app.report(args.run_dir, args.data)
    if args.json:
        print(json.dumps({**run.summary, "run_dir": str(run.run_dir), "report": str(path)}, indent=2, default=str))
        return 0
    print(run.title)
    print(summaries.format_summary(run.summary))
    if "training_rows_streamed" in run.summary:
        print(f"{'training rows':<15}{run.summary['training_rows_streamed']} streamed records were training rows")
    print(f"report         {path}")
    return 0


def _build_sweep(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("grid")
    g.add_argument("--grid", action="append", metavar="NAME=V1[,V2...]",
                   help="one axis of the grid: a notebook parameter and its values, repeatable; values parse as JSON "
                   "when they can (numbers, true)")
    g.add_argument("--grid-file", metavar="FILE",
                   help="YAML mapping of parameter -> list of values (combined with --grid; --grid wins)")
    g = p.add_argument_group("where")
    g.add_argument("--out", metavar="DIR", help="sweep folder (default runs/sweep-<time>)")
    g.add_argument("--models-dir", metavar="DIR",
                   help=f"folder the runs train their models into (default {_project_path(_DEFAULTS['models_dir'])}, "
                   "as kstream run and train); a run replaces a model of the same dataset, task and model, so give a "
                   "sweep a folder of its own (e.g. <out>/models) to keep its models apart")
    g.add_argument("--bootstrap", metavar="HOST:PORT[,...]",
                   help="Kafka bootstrap servers (default: the local broker, started for the sweep if none runs)")
    g.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs at once (default 1); runs writing the same model folder still go one after another. Runs "
                   "side by side share the cores: sweep throughput and latency with 1")


def _sweep(args: argparse.Namespace) -> int:
    from kstream import sweep

    grid = sweep.load_grid(args.grid_file) if args.grid_file else {}
    grid.update(sweep.parse_pairs(args.grid))
    table = sweep.run_sweep(grid, args.out, args.bootstrap or "", args.models_dir, progress=_progress(args),
                            jobs=args.jobs)
    shown = [c for c in table.columns if c not in ("error", "report")]
    print(text_table(table, shown))
    for _, row in table[table["status"] != "ok"].iterrows():
        print(f"failed: {row['run']}: {row['error']}")
    print(f"summary: {Path(table.attrs['out_dir']) / 'summary.md'}")
    ok = table[table["status"] == "ok"]
    if len(ok):
        print(f"report: {ok.iloc[-1]['report']}")
    return 0 if len(ok) == len(table) else 1


_BROKER_ACTIONS: dict[str, tuple[str, str]] = {
    "start": ("start the broker in the background (no-op if it runs)",
              ("Start the long-lived local broker. A restart reuses the ports, node count and\n"
               "security of its data folder, so running clients reconnect.")),
    "stop": ("stop the broker (SIGTERM, then SIGKILL)", "Stop the local broker (SIGTERM, then SIGKILL)."),
    "status": ("print bootstrap address, pid and log file; exit 1 if not running",
               "Print the local broker's bootstrap address, pid and log file; exit 1 if it is not running."),
    "provision": ("only fetch Kafka's jars into the cache",
                  "Fetch Kafka's jars into the cache (KSTREAM_HOME) with Maven, and nothing else."),
    "topics": ("list the topics by the run that made them (partitions, size on disk, last write)",
               "List the topics of the local broker (or --bootstrap) by the run that made them: each run\n"
               "names its topics with its start time (flows.<20 digits>). On the local broker the\n"
               "size on disk and the last write are read from its data folder."),
    "delete": ("delete runs' topics by run id, topic name or age",
               "Delete topics of the local broker (or --bootstrap): every topic of each RUN id given\n"
               "(as `kstream broker topics` prints it), topics named exactly, and with --older-than\n"
               "every topic of the runs started that long ago and not written since. A name that\n"
               "matches nothing stops the command before anything is deleted."),
}


def _build_broker(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, (short, description) in _BROKER_ACTIONS.items():
        a = actions.add_parser(name, help=short, description=description, formatter_class=_FORMAT,
                               parents=[_verbosity()], allow_abbrev=False)
        a.set_defaults(command_parser=a)
        if name in ("topics", "delete"):
            _kafka_group(a, topics=False)
        if name == "delete":
            a.add_argument("names", nargs="*", metavar="RUN|TOPIC", help="run ids and topic names to delete")
            a.add_argument("--older-than", type=_age, metavar="AGE",
                           help="also the topics of runs started at least AGE ago (30m, 12h, 7d) and, on the local "
                           "broker, not written for AGE")
            a.add_argument("--dry-run", action="store_true", help="print what would be deleted, delete nothing")
        if name == "start":
            a.add_argument("--port", type=int, default=0, metavar="PORT",
                           help="client port of node 1 (default: the previous one, else a free one)")
            a.add_argument("--nodes", type=int, metavar="N",
                           help="KRaft nodes (3: replication factor 3, min.insync.replicas 2; default 1)")
            a.add_argument("--sasl", action="store_true", default=None,
                           help="SASL_PLAINTEXT with SCRAM-SHA-512; the generated login is written owner-only to the "
                           "data folder, and kstream commands on this machine use it by themselves")


def _age(text: str) -> dt.timedelta:
    try:
        return retention.parse_age(text)
    except KstreamError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _print_topics(table: list[retention.TopicUse]) -> None:
    """One line per run (its topics, partitions, bytes, last write), then one per topic no run named."""
    def size(n: int | None) -> str:
        if n is None:
            return "-"
        unit, scale = next((u, s) for u, s in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1)) if n >= s or s == 1)
        return f"{n / scale:,.1f} {unit}"

    def when(t: dt.datetime | None) -> str:
        return "-" if t is None else t.strftime("%Y-%m-%d %H:%M")

    runs: dict[str, list[retention.TopicUse]] = {}
    for row in table:
        runs.setdefault(row.run or row.topic, []).append(row)
    print(f"{'run or topic':<28} {'started':<16} {'topics':>6} {'parts':>5} {'on disk':>11} {'last write':<16}")
    for key, rows in runs.items():
        known = [r.bytes for r in rows if r.bytes is not None]
        written = [r.written for r in rows if r.written is not None]
        print(f"{key:<28} {when(rows[0].started):<16} {len(rows):>6} {sum(r.partitions for r in rows):>5} "
              f"{size(sum(known) if known else None):>11} {when(max(written) if written else None):<16}")
    total = [r.bytes for r in table if r.bytes is not None]
    print(f"{len(table)} topics, {sum(r.partitions for r in table)} partitions"
          + (f", {size(sum(total))} on disk" if total else " (size on disk: local broker only)"))


def _broker(args: argparse.Namespace) -> int:
    if args.action == "provision":
        print(provision.provision())
        return 0
    if args.action == "start":
        state = daemon.start_daemon(port=args.port, nodes=args.nodes, sasl=args.sasl)
        shape = f"{state.nodes} nodes" if state.nodes > 1 else "1 node"
        print(f"Kafka {state.version} running at {state.bootstrap} ({shape}, pid {state.pid}); log: {state.log}")
        if state.sasl:
            print(f"SASL_PLAINTEXT with SCRAM-SHA-512: login (user and password) in {state.credentials}; "
                  "kstream commands here use it by themselves")
        return 0
    if args.action == "topics":
        _print_topics(app.broker_topics(_settings(args)))
        return 0
    if args.action == "delete":
        deleted = app.delete_broker_topics(_settings(args), args.names, args.older_than, dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {len(deleted)} topic(s)" + "".join(f"\n  {t}" for t in deleted))
        return 0
    if args.action == "stop":
        stopped = daemon.stop_daemon()
        print(f"stopped Kafka at {stopped.bootstrap} (pid {stopped.pid})" if stopped else "no local broker was running")
        return 0
    running = daemon.daemon_status()
    if running is None:
        print("no local broker running; start one with `kstream broker start`")
        return 1
    state = running
    print(f"Kafka {state.version} running at {state.bootstrap} ({state.nodes} node(s), pid {state.pid}"
          f"{', SASL' if state.sasl else ''}) since {state.started}; log: {state.log}")
    return 0


#: Every subcommand, in the order ``kstream --help`` lists them.
COMMANDS: dict[str, Command] = {
    "run": Command(
        "the main job: train if missing, stream, classify, summarize",
        "Train the model if it is missing, start a local broker unless one runs or is given,\n"
        "stream the records the model never saw through Kafka, classify them with one or more\n"
        "detector processes, and print records, throughput, latency p50/p95/p99, predicted class\n"
        "counts, accuracy and macro-F1. The run folder gets summary.json (and predictions.sqlite);\n"
        "`kstream report` then draws its figures.",
        _build_run, _run,
        "examples:\n  kstream run -t multi_class -m decision-tree --rate 2000 --records 5000\n"
        "  kstream run --detectors 2 --store-url mongodb://localhost:27017"),
    "train": Command(
        "train a model and write model.joblib + model.json",
        "Train on the dataset's training split, score the held-out split, save the Pipeline\n"
        "and its card under <models-dir>/<dataset>/<task>/<model>/. With --all, train the grid.",
        _build_train, _train,
        "examples:\n  kstream train -d SELECTED_CICIDS -t multi_class -m decision-tree --param max_depth=12\n"
        "  kstream train --all -d netml --markdown grid.md"),
    "evaluate": Command(
        "score a trained model on a dataset file offline",
        "Predict every row of a dataset file (or the bundled sample's held-out rows) with a trained\n"
        "model and print accuracy, macro-F1, per-class scores, TPR/FAR or the NetML scores.\n"
        "Streaming the same rows through Kafka gives the same predictions.",
        _build_evaluate, _evaluate,
        "example:\n  kstream evaluate -d cicids2017 -m random-forest --data ~/MachineLearningCVE/"),
    "models": Command(
        "list trained models with their scores",
        "One line per model card under the models folder: dataset, task, model, features\n"
        "(input/kept), classes, split seed and mode, held-out accuracy, macro-F1, NetML score, size, date.",
        _build_models, _models),
    "generate": Command(
        "stream dataset records into the flows topic",
        "Send records (key = record id, JSON features, send-time header) to a topic of a running\n"
        "broker (`kstream broker start`, or --bootstrap), in time order where the data has\n"
        "timestamps (the bundled CICIDS2017 sample does), else in a seeded shuffle (--order).",
        _build_generate, _generate,
        "example:\n  kstream generate --rate 1000 --records 5000"),
    "capture": Command(
        "meter flows from packets (a capture file or an interface) into the flows topic",
        "Turn packets into flows with the CICFlowMeter features packets give (NFStream,\n"
        "microsecond times) and send them like `generate` does: key = record id, JSON features,\n"
        "send-time header, to a running broker (`kstream broker start`, or --bootstrap).\n"
        "Score them with a model trained on those features:\n"
        "  kstream train --features capture",
        _build_capture, _capture,
        "examples:\n  kstream capture traffic.pcap\n"
        "  kstream capture --interface eth0 --flow-idle-timeout 5      # live (needs capture rights)"),
    "detect": Command(
        "classify the flows topic and write predictions",
        "Consume flows from a running broker (`kstream broker start`, or --bootstrap) in\n"
        "micro-batches, predict, write to the results store and the predictions topic,\n"
        "dead-letter bad records, commit offsets. Ctrl-C stops cleanly; so do --records and\n"
        "--idle-timeout. Several detectors with one --group share the topic's partitions.",
        _build_detect, _detect,
        "example:\n  kstream detect -m decision-tree --store-url runs/p.sqlite --idle-timeout 10"),
    "report": Command(
        "write a finished run's figures and report.md, and print its summary",
        "Read a run folder (written by `kstream run` or the 2.0-stream notebook) back, join its\n"
        "predictions to the dataset's labels, draw figures/*.png (class counts, latency, confusion\n"
        "matrix, throughput, drift) and write report.md beside them.",
        _build_report, _report,
        "examples:\n  kstream report\n  kstream report runs/20250101-120000-cicids2017-binary_class-random-forest"),
    "sweep": Command(
        "run the notebooks through papermill over a parameter grid",
        "For every combination of the grid, execute notebooks/1.0-train, 2.0-stream and\n"
        "3.0-report with papermill into <out>/<run>/ and write <out>/summary.csv and summary.md\n"
        "(status, accuracy, macro-F1, throughput, latency p50/p95/p99 per run). The grid's names\n"
        "are the parameters of the notebooks' parameters cells (dataset, task, model, records,\n"
        "rate, detectors, drift, ...). A parameter no notebook declares, or a failing cell, marks\n"
        "that run failed; the sweep then exits 1. Without a grid it runs once with the notebooks'\n"
        "defaults.",
        _build_sweep, _sweep,
        "examples:\n  kstream sweep --grid model=decision-tree,random-forest --grid rate=0,2000 --grid records=1000\n"
        "  kstream sweep --grid-file grid.yaml  # e.g. {model: [decision-tree, random-forest], task: [binary_class]}"),
    "broker": Command(
        "manage a local Kafka broker (KRaft, no Docker)",
        "Provision, start, stop or inspect a single-node Kafka broker on this machine.\n"
        "Kafka's jars are fetched once with Maven into the cache (KSTREAM_HOME); Java 17+ runs it.",
        _build_broker, _broker),
}

# --- the environment, listed from Settings ----------------------------------------------------------

_OPTION_NAMES = {**{dest: flag for flag, dest in _DESTS.items()},  # the flags not named after their setting
                 "dataset": "-d/--dataset", "task": "-t/--task", "model": "-m/--model"}
_ENV_ONLY = {
    "store": "results store: sqlite or mongodb (default: what the store URL names; must agree with it)",
    "store_table": f"SQLite table or MongoDB collection (default {_DEFAULTS['store_table']})",
    "store_database": f"MongoDB database (default {_DEFAULTS['store_database']})",
    "poll_timeout_ms": f"how long a detector's poll waits for records, ms (default {_DEFAULTS['poll_timeout_ms']})",
}


def _environment_help() -> str:
    """The epilog of ``kstream --help``: every environment name and what it sets."""
    rows = []
    for name, envs in ENV_NAMES.items():
        what = _ENV_ONLY.get(name) or _OPTION_NAMES.get(name, "--" + name.replace("_", "-"))
        if name in ("drift", "labels"):
            what += " (1 or 0)"
        elif name == "alerts":
            what += " (rules separated by ';')"
        rows.append((", ".join(envs), what))
    rows += [("KSTREAM_KAFKA_<OPTION>", "any option of the client library but those the delivery guarantee rests on"),
             ("KSTREAM_HOME", "cache for Kafka's jars and the local broker"),
             ("KSTREAM_BROKER_VERSION", f"Kafka version the local broker runs (here {provision.KAFKA_VERSION})"),
             ("KSTREAM_ROOT", "project folder holding datasets/, models/, notebooks/, runs/")]
    width = max(len(env) for env, _ in rows) + 2
    return ("environment (read when the option is not given; of two names, the first set wins):\n"
            + "\n".join(f"  {env:<{width}}{what}" for env, what in rows))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kstream`` command: one subparser per entry of :data:`COMMANDS`.

    >>> sorted(build_parser().parse_args(["sweep", "--grid", "model=decision-tree"]).grid)
    ['model=decision-tree']
    """
    parser = argparse.ArgumentParser(
        prog="kstream",
        description="Classify network flows as they stream through Apache Kafka.\n\n"
        "Quick start: `kstream run` trains the default model if needed, starts a local\n"
        "broker, streams the bundled test records through it and prints a summary;\n"
        "`kstream report` then writes its figures and report.md. `kstream COMMAND --help`\n"
        "says what each command takes.",
        epilog=_environment_help(),
        formatter_class=_FORMAT,
        parents=[_verbosity()],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"kstream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description, epilog=command.epilog or None,
                           formatter_class=_FORMAT, parents=[_verbosity()], allow_abbrev=False)
        p.set_defaults(command_parser=p)
        command.build(p)
    return parser


def _print_stacks(signum: int, frame: object) -> None:
    """Print every thread's stack to stderr (SIGUSR1). Python runs this between two bytecodes with the
    interpreter lock held, so no thread's frames change while they are read; ``faulthandler.register``
    reads them inside the signal itself, and a CI run's detector died of it (SIGSEGV) while its main thread
    was halfway into a call."""
    faulthandler.dump_traceback(all_threads=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kstream`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    if verbose and quiet:
        args.command_parser.error("-v (more detail) and -q (less) contradict each other; give one of them")
    logs.configure(verbose, quiet)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints where every thread is (a stuck run explains itself)
        signal.signal(signal.SIGUSR1, _print_stacks)
    try:
        return COMMANDS[args.command].handle(args)
    except KstreamError as err:
        print(f"kstream: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kstream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
