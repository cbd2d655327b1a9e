"""The ``kstream`` command (also ``python -m kstream``).

Every subcommand calls the same library functions the notebooks use. Settings
follow one rule: command-line option > environment > default (see
:mod:`kstream.paths`). Errors print one line and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kstream import __version__, app, logs
from kstream.analysis import summaries
from kstream.data import datasets
from kstream.data.datasets import TASKS
from kstream.errors import KstreamError
from kstream.messages.wire import VALUE_FORMATS
from kstream.modeling import artifacts, training, zoo
from kstream.modeling.quality import format_leakage, format_scores
from kstream.servers import daemon, provision
from kstream.settings import Settings, parse_assignments, parse_value
from kstream.tables import markdown_table, text_table

log = logging.getLogger("kstream")

_ENV_HELP = """environment (used when the option is not given):
  KSTREAM_DATASET / DATASET, KSTREAM_TASK / TASK_TYPE, KSTREAM_MODEL / MODEL,
  KSTREAM_LEVEL, KSTREAM_SEED, KSTREAM_SPLIT_MODE, KSTREAM_MODELS_DIR / MODELS_CHECKPOINT,
  KSTREAM_BOOTSTRAP / KAFKA_BROKER_URL,
  KSTREAM_STORE_URL / DB_URL, KSTREAM_STORE_TABLE / DB_NAME, KSTREAM_STORE / DATABASE,
  KSTREAM_TOPIC, KSTREAM_PREDICTIONS_TOPIC, KSTREAM_DLQ_TOPIC, KSTREAM_GROUP, KSTREAM_PARTITIONS,
  KSTREAM_BATCH_SIZE, KSTREAM_POLL_TIMEOUT_MS, KSTREAM_OUTAGE_TIMEOUT_S,
  KSTREAM_DRIFT (1/0), KSTREAM_DRIFT_WINDOW, KSTREAM_DRIFT_WINDOW_S, KSTREAM_DRIFT_PSI, KSTREAM_DRIFT_SHARE,
  KSTREAM_ALERTS (rules separated by ';'), KSTREAM_DRIFT_TOPIC, KSTREAM_ALERTS_TOPIC,
  KSTREAM_CLIENT (kafka-python or confluent), KSTREAM_VALUE_FORMAT (json or vector),
  KSTREAM_KAFKA_<OPTION> (any option of that client library but those the delivery guarantee rests on),
  KSTREAM_HOME (cache for Kafka's jars and the local broker), KSTREAM_BROKER_VERSION (default 4.1.1),
  KSTREAM_ROOT (project folder holding datasets/, models/, runs/)."""


def _model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("-d", "--dataset", help=f"dataset: {', '.join(datasets.available())}; "
                   "or SELECTED_CICIDS, SELECTED_NET (default cicids2017)")
    g.add_argument("-t", "--task", help=f"task: {', '.join(TASKS)} (default binary_class)")
    g.add_argument("-m", "--model", help=f"model: {', '.join(zoo.MODELS)} (default random-forest)")
    g.add_argument("--level", help="multi-class label level (cicids2017: label|grouped; netml: top|mid|fine; "
                   "nsl-kdd: category|attack); default: the dataset's, or the one the data has")
    g.add_argument("--models-dir", help="folder of trained models (default: the project's models/)")
    g.add_argument("--seed", type=int, help="split (and model) seed; default: 42 to train, the model card's to score")
    _split_mode_option(g)


def _split_mode_option(g: Any) -> None:
    g.add_argument("--split-mode", choices=datasets.SPLIT_MODES,
                   help="grouped: rows with the same feature vector fall on one side of the split; random: rows "
                   "drawn at random, as before (default: grouped to train, the model card's to score)")


def _kafka_options(parser: argparse.ArgumentParser, topics: bool = True) -> None:
    g = parser.add_argument_group("kafka")
    g.add_argument("--bootstrap", help="bootstrap servers host:port[,...] (default: the local broker)")
    g.add_argument("--client", choices=("kafka-python", "confluent"),
                   help="Kafka client library: kafka-python (default) or confluent (librdkafka, faster)")
    if topics:
        g.add_argument("--topic", help="flows topic (default flows)")
        g.add_argument("--partitions", type=int, help="partitions for topics kstream creates (default 1)")
    g.add_argument(
        "--kafka-option",
        action="append",
        metavar="OPTION=VALUE",
        help="any option of the client library, repeatable (kafka-python: security_protocol=SASL_SSL, linger_ms=5; "
        "confluent: security.protocol=SASL_SSL, linger.ms=5)",
    )


def _value_format_option(parser: argparse.ArgumentParser, vector: str = "the model's features") -> None:
    parser.add_argument("--value-format", choices=VALUE_FORMATS,
                        help=f"json (default): an object of feature -> number; vector: {vector} as float64 bytes "
                        "with a kstream-schema header (3x smaller, decoded in one call; the detector reads both)")


def _drift_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("drift and alerts")
    g.add_argument("--drift", action="store_true", default=None,
                   help="compare each window of live flows with the model card's reference (PSI per feature, scores, "
                   "Page-Hinkley on attack rate and mean score); windows go to the store and --drift-topic")
    g.add_argument("--drift-window", type=int, help="records per drift window (default 1000)")
    g.add_argument("--drift-seconds", dest="drift_window_s", type=float,
                   help="also close a window after this many seconds (default 0: by records only)")
    g.add_argument("--drift-psi", type=float, help="PSI past which a feature drifts (default 0.2)")
    g.add_argument("--drift-share", type=float,
                   help="share of drifting features that makes a window drift (default 0.1)")
    g.add_argument("--alert", dest="alerts", action="append", metavar="RULE",
                   help="alert rule on each window, repeatable: 'attack_rate > 0.5', 'mean_score < 0.8' "
                   "(metrics: attack_rate, mean_score, share_drifting, max_psi, score_psi); "
                   "alerts go to --alerts-topic")
    g.add_argument("--drift-topic", help="topic of drift windows (default flows.drift)")
    g.add_argument("--alerts-topic", help="topic of alerts (default flows.alerts)")


def _settings(args: argparse.Namespace) -> Settings:
    cli = {k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__ and k != "kafka_options"}
    # typed by Settings, in the names of the client backend it resolves (--client / KSTREAM_CLIENT)
    cli["kafka_options"] = parse_assignments(getattr(args, "kafka_option", None), "Kafka option",
                                             "option=value (e.g. linger_ms=5, or linger.ms=5 with --client confluent)")
    return Settings.resolve(cli)


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


def _params(pairs: Sequence[str] | None) -> dict:
    raw = parse_assignments(list(pairs or []), "hyperparameter", "name=value (e.g. max_depth=8)")
    return {name: parse_value(value) for name, value in raw.items()}


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
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug detail (and the Kafka client's own logs)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only and hide progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # broker
    p = sub.add_parser("broker", help="manage a local Kafka broker (KRaft, no Docker)", formatter_class=fmt,
                       description="Provision, start, stop or inspect a single-node Kafka broker on this machine.\n"
                       "Kafka's jars are fetched once with Maven into the cache (KSTREAM_HOME); Java 17+ runs it.")
    bsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = bsub.add_parser("start", help="start the broker in the background (no-op if it runs)",
                        description="Start the long-lived local broker. A restart reuses the ports, node count and\n"
                        "security of its data folder, so running clients reconnect.", formatter_class=fmt)
    b.add_argument("--port", type=int, default=0, help="client port of node 1 (default: the previous one, else free)")
    b.add_argument("--nodes", type=int, help="KRaft nodes (3: replication factor 3, min.insync.replicas 2; default 1)")
    b.add_argument("--sasl", action="store_true", default=None,
                   help="SASL_PLAINTEXT with SCRAM-SHA-512; "
                   "the generated login is written owner-only to the data folder")
    bsub.add_parser("stop", help="stop the broker (SIGTERM, then SIGKILL)")
    bsub.add_parser("status", help="print bootstrap address, pid and log file; exit 1 if not running")
    bsub.add_parser("provision", help="only fetch Kafka's jars into the cache")

    # train
    p = sub.add_parser("train", help="train a model and write model.joblib + model.json", formatter_class=fmt,
                       description="Train on the dataset's training split, score the held-out split, save the\n"
                       "Pipeline and its card under models/<dataset>/<task>/<model>/.",
                       epilog="example: kstream train -d SELECTED_CICIDS -t multi_class -m decision-tree "
                       "--param max_depth=12")
    _model_options(p)
    p.add_argument("--data", help="file or folder of the dataset's format (default: the bundled sample)")
    p.add_argument("--label-column",
                   help="the CSV column holding the class, if not Label (class names, or 0/1 with 0 = benign)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="classifier hyperparameter, repeatable")
    p.add_argument("--class-weight", default="balanced", choices=zoo.CLASS_WEIGHTS,
                   help="class weighting against imbalance: balanced (n/(k*n_c)), sqrt (its square root), none")
    p.add_argument("--all", action="store_true",
                   help="train the grid: every dataset x task x model (narrowed by -d/-t/-m when given)")
    p.add_argument("--markdown", help="with --all: also write the grid's results table to this Markdown file")
    p.add_argument("--learning-curve", action="store_true",
                   help="also score the model trained on 10, 20, 40, 60, 80%% of its training rows (stratified, "
                   "nested) on the same held-out rows; printed and recorded on the card")
    f = p.add_mutually_exclusive_group()
    f.add_argument("--features-from", metavar="FILE",
                   help="train only on the features FILE has (to score that source: cross-source evaluation)")
    f.add_argument("--features", metavar="A,B,...|capture",
                   help="train only on these features (any spelling), or on those packets give ('capture')")

    # models
    p = sub.add_parser("models", help="list trained models with their scores", formatter_class=fmt,
                       description="One line per model card under the models folder: dataset, task, model,\n"
                       "features (input/kept), classes, held-out accuracy, macro-F1, NetML score, size, date.")
    p.add_argument("--models-dir", help="folder of trained models (default: the project's models/)")
    p.add_argument("--json", action="store_true", help="print the cards' rows as JSON")
    p.add_argument("--features", action="store_true", help="also list the features each model needs, in order")

    # evaluate
    p = sub.add_parser("evaluate", help="score a trained model on a dataset file offline", formatter_class=fmt,
                       description="Predict every row of a dataset file (or the bundled test split) with a trained\n"
                       "model and print accuracy, macro-F1, per-class scores, TPR/FAR or the NetML scores.\n"
                       "Streaming the same rows through Kafka gives the same predictions.",
                       epilog="example: kstream evaluate -d cicids2017 -m random-forest --data ~/MachineLearningCVE/")
    _model_options(p)
    p.add_argument("--data", help="file or folder of the dataset's format (default: the bundled sample)")
    p.add_argument("--label-column",
                   help="the CSV column holding the class, if not Label (class names, or 0/1 with 0 = benign)")
    p.add_argument("--split", choices=datasets.SPLITS,
                   help="rows to score (default: test for the bundled sample, all for --data)")
    p.add_argument("--predictions", help="also write record_id,true_label,predicted_label,score to this CSV")
    p.add_argument("--allow-missing", action="store_true",
                   help="score data that lacks some of the model's features: impute them (reported beside the scores)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")

    # generate
    p = sub.add_parser("generate", help="stream dataset records into the flows topic", formatter_class=fmt,
                       description="Send records (key = record id, JSON features, send-time header) to a topic.",
                       epilog="example: kstream generate --rate 1000 --limit 5000")
    p.add_argument("-d", "--dataset", help=f"dataset: {', '.join(datasets.available())}; "
                   "or SELECTED_CICIDS, SELECTED_NET (default cicids2017)")
    p.add_argument("--data", help="file or folder of the dataset's format (default: the bundled sample)")
    p.add_argument("--label-column",
                   help="the CSV column holding the class, if not Label (class names, or 0/1 with 0 = benign)")
    p.add_argument("--split", default="test", choices=datasets.SPLITS,
                   help="which rows to send (default test: the held-out split of the model -t/-m name, if trained)")
    p.add_argument("-t", "--task", help=f"task whose model's split 'test' means: {', '.join(TASKS)}")
    p.add_argument("-m", "--model", help="model whose split 'test' means (default random-forest)")
    p.add_argument("--models-dir", help="folder of trained models (default: the project's models/)")
    p.add_argument("--seed", type=int, help="split seed (default: the model card's, else 42)")
    _split_mode_option(p)
    p.add_argument("--rate", type=float, default=0.0, help="records per second, 0 = as fast as possible (default 0)")
    p.add_argument("--limit", type=int, help="stop after this many records")
    p.add_argument("--loop", action="store_true", help="start over at the end of the data (ids get #<pass>)")
    _value_format_option(p)
    _kafka_options(p)

    # capture
    p = sub.add_parser("capture", help="meter flows from packets (a capture file or an interface) into the flows topic",
                       formatter_class=fmt,
                       description="Turn packets into flows with the CICFlowMeter features packets give (NFStream,\n"
                       "microsecond times) and send them like `generate` does: key = record id, JSON features,\n"
                       "send-time header. Score them with a model trained on those features:\n"
                       "  kstream train --features capture",
                       epilog="examples:\n  kstream capture traffic.pcap\n"
                       "  kstream capture --interface eth0 --idle-timeout 5      # live (needs capture rights)")
    p.add_argument("pcap", nargs="?", help="capture file (.pcap, .pcapng; gzipped too)")
    p.add_argument("--interface", help="capture live on this network interface instead (as root or with CAP_NET_RAW)")
    p.add_argument("-d", "--dataset", help="dataset whose features to meter (default cicids2017)")
    p.add_argument("--rate", type=float, default=0.0, help="flows per second, 0 = as fast as possible (default 0)")
    p.add_argument("--limit", type=int, help="stop after this many flows")
    p.add_argument("--idle-timeout", type=int, default=5,
                   help="live: a flow ends after this many seconds without a packet (default 5)")
    _value_format_option(p, "the metered features (in the order a model trained with --features capture reads)")
    _kafka_options(p)

    # detect
    p = sub.add_parser("detect", help="classify the flows topic and write predictions", formatter_class=fmt,
                       description="Consume flows in micro-batches, predict, write to the results store and the\n"
                       "predictions topic, dead-letter bad records, commit offsets. Ctrl-C stops cleanly.",
                       epilog="example: kstream detect -m decision-tree --store-url sqlite:///runs/p.sqlite "
                       "--idle-timeout 10")
    _model_options(p)
    _kafka_options(p)
    g = p.add_argument_group("detector")
    g.add_argument("--group", help="consumer group (default kstream-detector)")
    g.add_argument("--predictions-topic", help="predictions topic (default flows.predictions)")
    g.add_argument("--dlq-topic", help="dead-letter topic (default flows.dlq)")
    g.add_argument("--store-url", help="results store, sqlite:///path (default runs/predictions.sqlite)")
    g.add_argument("--batch-size", type=int, help="max records per poll and model call (default 500)")
    g.add_argument("--max-records", type=int, help="stop after this many records")
    g.add_argument("--idle-timeout", type=float,
                   help="stop after this many seconds with every record read (a broker outage is not idleness)")
    g.add_argument("--outage-timeout", dest="outage_timeout_s", type=int,
                   help="how long to retry a store or Kafka that fails before stopping without a commit "
                   "(default 300 s)")
    g.add_argument("--data", help="dataset file or folder with the streamed records' labels: print accuracy at the end")
    g.add_argument("--allow-missing", action="store_true",
                   help="score data that lacks some of the model's features: impute them (reported beside the scores)")
    g.add_argument("--label-column",
                   help="the CSV column holding the class, if not Label (class names, or 0/1 with 0 = benign)")
    _drift_options(p)

    # sweep
    p = sub.add_parser("sweep", help="run the notebooks through papermill over a parameter grid",
                       formatter_class=fmt,
                       description="For every combination of the grid, execute notebooks/1.0-train, 2.0-stream and\n"
                       "3.0-report with papermill into <out>/<run>/ and write <out>/summary.csv and summary.md\n"
                       "(status, accuracy, macro-F1, throughput, latency p50/p95/p99 per run). A parameter no\n"
                       "notebook declares, or a failing cell, marks that run failed; the sweep then exits 1.\n"
                       "Without a grid it runs once with the notebooks' defaults (the main job).",
                       epilog="example: kstream sweep -p model=decision-tree,random-forest -p rate=0,2000 "
                       "-p records=1000\n"
                       "grid file: a YAML mapping, e.g. {model: [decision-tree, random-forest], task: [binary_class]}")
    p.add_argument("-p", "--param", action="append", metavar="NAME=V1[,V2...]",
                   help="a grid axis, repeatable; values parse as JSON when they can (numbers, true)")
    p.add_argument("--grid", help="YAML file with the grid (combined with -p; -p wins)")
    p.add_argument("--out", help="sweep folder (default runs/sweep-<time>)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the local broker, started if none runs)")
    p.add_argument("--models-dir", help="where the runs' models go (default <out>/models)")

    # run
    p = sub.add_parser("run", help="the main job: train if missing, stream, classify, summarize", formatter_class=fmt,
                       description="Train the model if it is missing, start a local broker unless one is given,\n"
                       "stream the test split through Kafka, classify it, and print records, throughput,\n"
                       "latency p50/p95/p99, predicted class counts, accuracy and macro-F1.",
                       epilog="example: kstream run -t multi_class -m decision-tree --rate 2000")
    _model_options(p)
    _kafka_options(p)
    p.add_argument("--data", help="file or folder of the dataset's format (default: the bundled sample)")
    p.add_argument("--label-column",
                   help="the CSV column holding the class, if not Label (class names, or 0/1 with 0 = benign)")
    p.add_argument("--rate", type=float, default=0.0, help="records per second, 0 = as fast as possible")
    p.add_argument("--limit", type=int, help="send only this many test records")
    _value_format_option(p)
    p.add_argument("--batch-size", type=int, help="max records per poll and model call (default 500)")
    p.add_argument("--outage-timeout", dest="outage_timeout_s", type=int,
                   help="how long to retry a store or Kafka that fails before stopping without a commit "
                   "(default 300 s)")
    p.add_argument("--retrain", action="store_true", help="train the model again even if it exists")
    p.add_argument("--allow-missing", action="store_true",
                   help="score data that lacks some of the model's features: impute them (reported beside the scores)")
    p.add_argument("--detectors", type=int, default=1,
                   help="detector threads in one consumer group (needs --partitions >= this; default 1)")
    p.add_argument("--run-dir", help="folder for predictions.sqlite and summary.json (default runs/<id>)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _drift_options(p)
    return parser


def _broker(args: argparse.Namespace) -> int:
    state: daemon.BrokerState | None
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
    if args.action == "stop":
        state = daemon.stop_daemon()
        print(f"stopped Kafka at {state.bootstrap} (pid {state.pid})" if state else "no local broker was running")
        return 0
    state = daemon.daemon_status()
    if state is None:
        print("no local broker running; start one with `kstream broker start`")
        return 1
    print(f"Kafka {state.version} running at {state.bootstrap} ({state.nodes} node(s), pid {state.pid}"
          f"{', SASL' if state.sasl else ''}) since {state.started}; log: {state.log}")
    return 0


def _sweep(args: argparse.Namespace, progress: bool) -> int:
    from kstream import sweep

    grid = sweep.load_grid(args.grid) if args.grid else {}
    grid.update(sweep.parse_pairs(args.param))
    table = sweep.run_sweep(grid, args.out, args.bootstrap or "", args.models_dir, progress=progress)
    shown = [c for c in table.columns if c not in ("error", "report")]
    print(text_table(table, shown))
    for _, row in table[table["status"] != "ok"].iterrows():
        print(f"failed: {row['run']}: {row['error']}")
    print(f"summary: {Path(table.attrs['out_dir']) / 'summary.md'}")
    ok = table[table["status"] == "ok"]
    if len(ok):
        print(f"report: {ok.iloc[-1]['report']}")
    return 0 if len(ok) == len(table) else 1


def _dispatch(args: argparse.Namespace) -> int:
    progress = not args.quiet
    if args.command == "broker":
        return _broker(args)
    if args.command == "sweep":
        return _sweep(args, progress)
    settings = _settings(args)
    log.debug("settings: %r", settings)
    if args.command == "models":
        rows = artifacts.list_cards(settings.models_dir)
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print(f"no trained models in {settings.models_dir}; train with `kstream train` or `kstream train --all`")
        else:
            print(text_table(rows, ["dataset", "task", "model", "features", "kept", "classes", "seed", "split",
                                    "accuracy", "macro_f1", "netml_overall", "size_kb", "created"]))
            if args.features:
                for row in rows:
                    card = artifacts.ModelCard.read(Path(row["path"]) / "model.json")
                    print(f"\n{row['dataset']}/{row['task']}/{row['model']} needs {len(card.features)} features:\n  "
                          + "\n  ".join(card.features))
        return 0
    if args.command == "train" and args.all:
        refs, skipped = training.grid([settings.dataset] if args.dataset else None,
                                      [settings.task] if args.task else None,
                                      [settings.model] if args.model else None, settings.models_dir, settings.seed,
                                      settings.split_mode)
        rows = training.train_grid(refs, progress, args.class_weight)
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
    if args.command == "train":
        features, source = None, ""
        if args.features_from:
            features, source = app.features_of(settings, args.features_from), args.features_from
        elif args.features:
            features = app.features_of(settings, "capture") if args.features == "capture" else args.features.split(",")
            source = "what packets give (kstream capture)" if args.features == "capture" else "the --features list"
        trained = app.train(settings, args.data, _params(args.param), args.class_weight, features, source,
                            learning_curve=args.learning_curve)
        card = trained.card
        m = card.metrics
        print(f"{trained.path}: held-out accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
              f"NetML overall {m['netml_overall']:.4f} ({card.split_mode} split, seed {card.seed})"
              + (f" ({len(trained.features)} features of {source})" if features is not None else ""))
        print("\n".join(format_leakage(m)))
        c = card.conflicts
        print(f"all {c['rows']} rows: {c['duplicate_rows']} ({c['duplicate_share']:.1%}) share their feature vector "
              f"with another row; {c['multi_label_rows']} ({c['multi_label_share']:.1%}) sit on "
              f"{c['multi_label_vectors']} vectors labelled more than one way; ceiling accuracy {c['ceiling']:.4f}")
        if card.learning_curve:
            print("\nlearning curve (held-out scores by training rows):")
            print(text_table(card.learning_curve, list(card.learning_curve[0])))
        return 0
    if args.command == "evaluate":
        scores, frame = app.evaluate(settings, args.data, args.split, args.allow_missing)
        if args.predictions:
            frame.to_csv(args.predictions, index=False)
        print(json.dumps(scores, indent=2) if args.json else format_scores(scores))
        return 0
    if args.command == "generate":
        with app.kafka_cluster(settings, start_local=False) as settings:
            stats = app.send(settings, args.split, args.data, args.rate, args.limit, args.loop, progress)
        print(f"sent {stats.records} records to {settings.topic} at {settings.bootstrap} ({stats.rate:.0f} rec/s)")
        return 0
    if args.command == "capture":
        with app.kafka_cluster(settings, start_local=False) as settings:
            stats = app.capture(settings, args.pcap, args.interface, args.rate, args.limit, args.idle_timeout, progress)
        print(f"sent {stats.records} flows to {settings.topic} at {settings.bootstrap} ({stats.rate:.0f} flows/s)")
        return 0
    if args.command == "detect":
        # fail fast, before touching Kafka: the model, checked against the data when given
        ds = app.load_data(settings, args.data) if args.data else None
        model = app.model_for(settings.model_ref(ds), ds, allow_missing=args.allow_missing)
        if settings.drift:
            model.reference()  # an older card: one line naming the retrain command, before touching Kafka
        with app.kafka_cluster(settings, start_local=False) as settings:
            handled = app.detect(settings, model, args.max_records, args.idle_timeout, progress)
        reasons = "".join(f"; {n} x {kind}" for kind, n in handled.dlq_reasons.items())
        print(f"handled {handled.records} records: {handled.predicted} predicted, "
              f"{handled.dead_lettered} dead-lettered{reasons}")
        if settings.drift:
            print(f"drift: {handled.drifted} of {handled.windows} windows drifted, {handled.alerts} alert(s) "
                  f"(windows in the store's drift table and {settings.drift_topic})")
        if ds is not None:
            with settings.open_store() as store:
                frame = store.frame(settings.topic)
            print(summaries.format_summary(summaries.summarize(frame, ds.truth(settings.task), settings.task)))
        return 0
    result = app.run(settings, rate=args.rate, limit=args.limit, data=args.data,
                     run_dir=args.run_dir, retrain=args.retrain, progress=progress, detectors=args.detectors,
                     allow_missing=args.allow_missing)
    if args.json:
        print(json.dumps(result.summary, indent=2, default=str))
    else:
        print(summaries.format_summary(result.summary))
        print(f"predictions    {result.store}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kstream`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.verbose, args.quiet)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints where every thread is (a stuck run explains itself)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return _dispatch(args)
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
