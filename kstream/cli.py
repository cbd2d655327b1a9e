"""The ``kstream`` command (also ``python -m kstream``).

Every subcommand calls the same library functions the notebooks use. Settings
follow one rule: command-line option > environment > default (see
:mod:`kstream.config`). Errors print one line and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from kstream import __version__, app, broker, datasets, metrics, modeling
from kstream.config import TASKS, Settings, parse_kafka_options
from kstream.errors import ConfigError, KstreamError

log = logging.getLogger("kstream")

_ENV_HELP = """environment (used when the option is not given):
  KSTREAM_DATASET / DATASET, KSTREAM_TASK / TASK_TYPE, KSTREAM_MODEL / MODEL,
  KSTREAM_MODELS_DIR / MODELS_CHECKPOINT, KSTREAM_BOOTSTRAP / KAFKA_BROKER_URL,
  KSTREAM_STORE_URL / DB_URL, KSTREAM_STORE_TABLE / DB_NAME, KSTREAM_STORE / DATABASE,
  KSTREAM_TOPIC, KSTREAM_PREDICTIONS_TOPIC, KSTREAM_DLQ_TOPIC, KSTREAM_GROUP, KSTREAM_PARTITIONS,
  KSTREAM_BATCH_SIZE, KSTREAM_POLL_TIMEOUT_MS, KSTREAM_KAFKA_<OPTION> (any kafka-python client option),
  KSTREAM_HOME (cache for Kafka's jars and the local broker), KSTREAM_BROKER_VERSION (default 4.1.1),
  KSTREAM_ROOT (project folder holding datasets/, models/, runs/)."""


def _model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("-d", "--dataset", help=f"dataset: {', '.join(datasets.available())} or SELECTED_CICIDS (default cicids2017)")
    g.add_argument("-t", "--task", help=f"task: {', '.join(TASKS)} (default binary_class)")
    g.add_argument("-m", "--model", help=f"model: {', '.join(modeling.MODELS)} (default random-forest)")
    g.add_argument("--models-dir", help="folder of trained models (default: the project's models/)")


def _kafka_options(parser: argparse.ArgumentParser, topics: bool = True) -> None:
    g = parser.add_argument_group("kafka")
    g.add_argument("--bootstrap", help="bootstrap servers host:port[,...] (default: the local broker)")
    if topics:
        g.add_argument("--topic", help="flows topic (default flows)")
        g.add_argument("--partitions", type=int, help="partitions for topics kstream creates (default 1)")
    g.add_argument(
        "--kafka-option",
        action="append",
        metavar="OPTION=VALUE",
        help="any kafka-python client option, repeatable (e.g. security_protocol=SASL_SSL, linger_ms=5)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    cli = {k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__ and k != "kafka_options"}
    cli["kafka_options"] = parse_kafka_options(getattr(args, "kafka_option", None))
    return Settings.resolve(cli)


def _params(pairs: Sequence[str] | None) -> dict:
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"hyperparameter {pair!r} is not of the form name=value (e.g. max_depth=8)")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return params


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kstream`` command."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="kstream",
        description="Classify network flows as they stream through Apache Kafka.\n\n"
        "Quick start: `kstream run` trains the default model if needed, starts a local\n"
        "broker, streams the bundled test records through it and prints a summary.",
        epilog=_ENV_HELP,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"kstream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail (and the Kafka client's own logs)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only and hide progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # broker
    p = sub.add_parser("broker", help="manage a local Kafka broker (KRaft, no Docker)", formatter_class=fmt,
                       description="Provision, start, stop or inspect a single-node Kafka broker on this machine.\n"
                       "Kafka's jars are fetched once with Maven into the cache (KSTREAM_HOME); Java 17+ runs it.")
    bsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = bsub.add_parser("start", help="start the broker in the background (no-op if it runs)")
    b.add_argument("--port", type=int, default=0, help="client port (default: a free port)")
    bsub.add_parser("stop", help="stop the broker (SIGTERM, then SIGKILL)")
    bsub.add_parser("status", help="print bootstrap address, pid and log file; exit 1 if not running")
    bsub.add_parser("provision", help="only fetch Kafka's jars into the cache")

    # train
    p = sub.add_parser("train", help="train a model and write model.joblib + model.json", formatter_class=fmt,
                       description="Train on the dataset's training split, score the held-out split, save the\n"
                       "Pipeline and its card under models/<dataset>/<task>/<model>/.",
                       epilog="example: kstream train -d SELECTED_CICIDS -t multi_class -m decision-tree --param max_depth=12")
    _model_options(p)
    p.add_argument("--data", help="file or folder of the dataset's format (default: the bundled sample)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="classifier hyperparameter, repeatable")
    p.add_argument("--seed", type=int, default=modeling.SEED, help="random seed for split and model (default 42)")

    # generate
    p = sub.add_parser("generate", help="stream dataset records into the flows topic", formatter_class=fmt,
                       description="Send records (key = record id, JSON features, send-time header) to a topic.",
                       epilog="example: kstream generate --rate 1000 --limit 5000")
    p.add_argument("-d", "--dataset", help=f"dataset: {', '.join(datasets.available())} or SELECTED_CICIDS (default cicids2017)")
    p.add_argument("--data", help="file or folder of the dataset's format (default: the bundled sample)")
    p.add_argument("--split", default="test", choices=datasets.SPLITS, help="which rows to send (default test)")
    p.add_argument("--rate", type=float, default=0.0, help="records per second, 0 = as fast as possible (default 0)")
    p.add_argument("--limit", type=int, help="stop after this many records")
    p.add_argument("--loop", action="store_true", help="start over at the end of the data (ids get #<pass>)")
    _kafka_options(p)

    # detect
    p = sub.add_parser("detect", help="classify the flows topic and write predictions", formatter_class=fmt,
                       description="Consume flows in micro-batches, predict, write to the results store and the\n"
                       "predictions topic, dead-letter bad records, commit offsets. Ctrl-C stops cleanly.",
                       epilog="example: kstream detect -m decision-tree --store-url sqlite:///runs/p.sqlite --idle-timeout 10")
    _model_options(p)
    _kafka_options(p)
    g = p.add_argument_group("detector")
    g.add_argument("--group", help="consumer group (default kstream-detector)")
    g.add_argument("--predictions-topic", help="predictions topic (default flows.predictions)")
    g.add_argument("--dlq-topic", help="dead-letter topic (default flows.dlq)")
    g.add_argument("--store-url", help="results store, sqlite:///path (default runs/predictions.sqlite)")
    g.add_argument("--batch-size", type=int, help="max records per poll and model call (default 500)")
    g.add_argument("--max-records", type=int, help="stop after this many records")
    g.add_argument("--idle-timeout", type=float, help="stop after this many seconds without a record")

    # run
    p = sub.add_parser("run", help="the main job: train if missing, stream, classify, summarize", formatter_class=fmt,
                       description="Train the model if it is missing, start a local broker unless one is given,\n"
                       "stream the test split through Kafka, classify it, and print records, throughput,\n"
                       "latency p50/p95/p99, predicted class counts, accuracy and macro-F1.",
                       epilog="example: kstream run -t multi_class -m decision-tree --rate 2000")
    _model_options(p)
    _kafka_options(p)
    p.add_argument("--data", help="file or folder of the dataset's format (default: the bundled sample)")
    p.add_argument("--rate", type=float, default=0.0, help="records per second, 0 = as fast as possible")
    p.add_argument("--limit", type=int, help="send only this many test records")
    p.add_argument("--batch-size", type=int, help="max records per poll and model call (default 500)")
    p.add_argument("--retrain", action="store_true", help="train the model again even if it exists")
    p.add_argument("--run-dir", help="folder for predictions.sqlite and summary.json (default runs/<id>)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # kafka-python logs every failed connection attempt; our errors say it once, clearly.
    logging.getLogger("kafka").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


def _broker(args: argparse.Namespace) -> int:
    if args.action == "provision":
        print(broker.provision())
        return 0
    if args.action == "start":
        state = broker.start_daemon(port=args.port)
        print(f"Kafka {state.version} running at {state.bootstrap} (pid {state.pid}); log: {state.log}")
        return 0
    if args.action == "stop":
        state = broker.stop_daemon()
        print(f"stopped Kafka at {state.bootstrap} (pid {state.pid})" if state else "no local broker was running")
        return 0
    state = broker.daemon_status()
    if state is None:
        print("no local broker running; start one with `kstream broker start`")
        return 1
    print(f"Kafka {state.version} running at {state.bootstrap} (pid {state.pid}) since {state.started}; log: {state.log}")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    progress = not args.quiet
    if args.command == "broker":
        return _broker(args)
    settings = _settings(args)
    log.debug("settings: %r", settings)
    if args.command == "train":
        trained = modeling.train(settings.dataset, settings.task, settings.model, settings.models_dir,
                                 data=args.data, params=_params(args.param), seed=args.seed)
        m = trained.card.metrics
        print(f"{trained.path}: held-out accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
        return 0
    if args.command == "generate":
        with app.kafka_cluster(settings, start_local=False) as bootstrap:
            stats = app.send(settings, bootstrap, args.split, args.data, args.rate, args.limit, args.loop, progress)
        print(f"sent {stats.records} records to {settings.topic} at {bootstrap} ({stats.rate:.0f} rec/s)")
        return 0
    if args.command == "detect":
        modeling.load(settings.dataset, settings.task, settings.model, settings.models_dir)  # fail fast
        with app.kafka_cluster(settings, start_local=False) as bootstrap:
            stats = app.detect(settings, bootstrap, args.max_records, args.idle_timeout, progress)
        print(f"handled {stats.records} records: {stats.predicted} predicted, {stats.dead_lettered} dead-lettered")
        return 0
    result = app.run(settings, rate=args.rate, limit=args.limit, data=args.data,
                     run_dir=args.run_dir, retrain=args.retrain, progress=progress)
    if args.json:
        print(json.dumps(result.summary, indent=2, default=str))
    else:
        print(metrics.format_summary(result.summary))
        print(f"predictions    {result.store_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kstream`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return _dispatch(args)
    except KstreamError as err:
        print(f"kstream: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kstream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
