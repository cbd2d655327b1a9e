"""A soak: the generator at a steady rate for hours into detectors with drift monitoring and alerts on, each a
process of its own, sampled every ``--every`` seconds.

Each sample writes one row per process (generator, detector-1, ...) to ``<out>/soak.csv``: resident memory,
open file descriptors, threads, the records stored so far, the store's size (and bytes per record), and the
latency percentiles (send to prediction) of the records stored since the sample before
(``kstream.analysis.soak``). At the end ``<out>/slopes.csv`` holds, per process, the growth per million
records of memory, descriptors and threads after the warm-up, each with its standard error, and the p99
latency over the first and the last quarter; ``<out>/soak.png`` draws the samples; ``<out>/soak.json``
holds both with the settings. The CSV is written as it goes, so a soak stopped early keeps its samples.

It exits 1 when a detector's memory grows faster than ``--max-rss-growth`` MB per million records after the
warm-up, or when a process dies. The soak's topics carry a run id (``kstream broker topics`` lists them) and
are deleted at the end unless ``--keep-topics``.

Usage: ``make soak HOURS=2`` or ``python benchmarks/soak.py --hours 2 [--rate 1000] [--client confluent]
[--detectors 1] [--every 60] [--out DIR]``. It uses ``--bootstrap`` (or ``KSTREAM_BOOTSTRAP``), else the
running local broker, else a temporary one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from kstream import app
from kstream.analysis import soak
from kstream.settings import Settings

#: what the detectors alert on: a rule that fires now and then on the bundled data, so alerts are exercised
ALERT = "attack_rate > 0.95"


def _command(settings: Settings, *args: str) -> list[str]:
    return [sys.executable, "-m", "kstream", "-q", *args, "--bootstrap", settings.bootstrap, "--client",
            settings.client, "-m", settings.model, "-t", settings.task, "--models-dir", str(settings.models_dir)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="how long to stream (default 2)")
    parser.add_argument("--rate", type=float, default=1000, help="records per second (default 1000)")
    parser.add_argument("--detectors", type=int, default=1, help="detector processes in one group (default 1)")
    parser.add_argument("--every", type=float, default=60, help="seconds between samples (default 60)")
    parser.add_argument("--warmup", type=float, default=0.2,
                        help="share of the soak left out of the slopes, the start-up's growth (default 0.2)")
    parser.add_argument("--max-rss-growth", type=float, default=100.0, metavar="MB",
                        help="most MB a detector's memory may grow per million records after the warm-up (default "
                        "100: a leak of 100 bytes per record fails)")
    parser.add_argument("--client", choices=["kafka-python", "confluent"], default=None)
    parser.add_argument("-m", "--model", default="decision-tree")
    parser.add_argument("-t", "--task", default="binary_class")
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--out", type=Path, default=None, help="folder of the results (default runs/soak-<time>)")
    parser.add_argument("--keep-topics", action="store_true", help="leave the soak's topics on the broker")
    args = parser.parse_args()

    given = {k: v for k, v in {"client": args.client, "model": args.model, "task": args.task,
                               "models_dir": args.models_dir, "bootstrap": args.bootstrap}.items() if v is not None}
    settings = Settings.resolve(given)
    ds = app.load_data(settings)
    app.model_for(settings.model_ref(ds), ds, train_missing=True)  # the detectors find it trained
    run = dt.datetime.now().strftime("%Y%m%d%H%M%S%f")
    out = args.out or Path("runs") / f"soak-{run[:14]}"
    out.mkdir(parents=True, exist_ok=True)
    store = out / "predictions.sqlite"
    topics = {name: f"soak-{name}.{run}" for name in ("flows", "predictions", "dlq", "drift", "alerts")}
    with app.kafka_cluster(settings) as settings:
        partitions = {topics["flows"]: args.detectors, topics["predictions"]: args.detectors}
        settings.kafka.ensure_topics(settings.bootstrap, partitions, settings.kafka_options)
        logs = {}
        procs: dict[str, subprocess.Popen] = {}

        def start(name: str, cmd: list[str]) -> None:
            logs[name] = (out / f"{name}.log").open("w")
            procs[name] = subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT)

        for i in range(1, args.detectors + 1):
            start(f"detector-{i}", _command(
                settings, "detect", "--topic", topics["flows"], "--group", f"soak.{run}",
                "--predictions-topic", topics["predictions"], "--dlq-topic", topics["dlq"], "--store-url", str(store),
                "--drift", "--drift-topic", topics["drift"], "--alerts-topic", topics["alerts"], "--alert", ALERT))
        start("generator", _command(settings, "generate", "--topic", topics["flows"], "--rate", str(args.rate),
                                    "--loop", "--order", "shuffle"))
        try:
            failed = sample(procs, store, out / "soak.csv", args.hours * 3600, args.every)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for f in logs.values():
                f.close()
            if not args.keep_topics:
                settings.kafka.delete_topics(settings.bootstrap, list(topics.values()), settings.kafka_options)
    return report(out, args, failed)


def sample(procs: dict[str, subprocess.Popen], store: Path, csv: Path, seconds: float, every: float) -> str:
    """Sample every process and the store each ``every`` seconds for ``seconds`` (or until SIGINT or SIGTERM:
    a soak stopped early is reported on what it sampled), appending to ``csv``; the name of a process that
    died, else ""."""
    stopped: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopped.append(signum))
    start, last_rowid, n = time.monotonic(), 0, 0
    with csv.open("w") as f, tqdm(total=round(seconds), unit="s", desc="soak", mininterval=5) as bar:
        f.write(",".join(soak.COLUMNS) + "\n")
        while True:
            n += 1  # the first sample after one interval: the processes have started by then
            while not stopped and time.monotonic() < start + n * every:
                time.sleep(min(1.0, max(0.0, start + n * every - time.monotonic())))
            if stopped:
                print(f"stopped by signal {stopped[0]} after {time.monotonic() - start:.0f}s", file=sys.stderr)
                return ""
            elapsed = time.monotonic() - start
            dead = [name for name, p in procs.items() if p.poll() is not None]
            if dead:
                return dead[0]
            now = soak.store_sample(store, last_rowid) if store.exists() else soak.StoreSample(0, 0.0, None)
            last_rowid = max(last_rowid, now.rows)
            per_record = now.store_mb * 1e6 / now.rows if now.rows else ""
            p50, p95, p99 = now.latency_ms or ("", "", "")
            for name, proc in procs.items():
                use = soak.usage(proc.pid)
                if use is None:
                    continue
                f.write(f"{elapsed:.1f},{name},{proc.pid},{use.rss_mb:.2f},{use.fds},{use.threads},{now.rows},"
                        f"{now.store_mb:.3f},{per_record if per_record == '' else round(per_record, 1)},"
                        f"{p50},{p95},{p99}\n")
            f.flush()
            bar.set_postfix_str(f"{now.rows:,} stored", refresh=False)
            bar.update(min(round(elapsed), round(seconds)) - bar.n)
            if elapsed >= seconds:
                return ""


def report(out: Path, args: argparse.Namespace, failed: str) -> int:
    frame = pd.read_csv(out / "soak.csv")
    warmup = frame["records"].max() * args.warmup if len(frame) else 0
    fitted = soak.slopes(frame, warmup)
    fitted.to_csv(out / "slopes.csv", index=False)
    title = f"Soak: {args.rate:g} rec/s for {args.hours:g} h into {args.detectors} detector(s)"
    soak.figure(frame, title=title, warmup_records=warmup).savefig(out / "soak.png", dpi=110)
    grew = soak.grew(fitted, args.max_rss_growth)
    verdict = {"failed_process": failed or None, "records": int(frame["records"].max()) if len(frame) else 0,
               "max_rss_growth_mb_per_million": args.max_rss_growth, "grew": grew,
               "settings": {k: str(v) for k, v in vars(args).items()}, "slopes": fitted.to_dict("records")}
    (out / "soak.json").write_text(json.dumps(verdict, indent=2, default=float) + "\n")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(fitted.to_string(index=False))
    print(f"samples: {out / 'soak.csv'}; figure: {out / 'soak.png'}")
    if failed:
        print(f"soak failed: {failed} died; its output: {out / (failed + '.log')}", file=sys.stderr)
        return 1
    if len(grew):
        print(f"soak failed: memory of {', '.join(grew)} grew more than {args.max_rss_growth:g} MB per "
              "million records after the warm-up", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
