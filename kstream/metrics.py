"""Summaries of a streaming run: volume, speed, latency and quality.

>>> import pandas as pd
>>> preds = pd.DataFrame({"record_id": ["a", "b"], "predicted_label": ["attack", "benign"],
...                       "send_ns": [0, 0], "predicted_ns": [2_000_000, 4_000_000]})
>>> truth = pd.DataFrame({"record_id": ["a", "b"], "true_label": ["attack", "attack"]})
>>> s = summarize(preds, truth)
>>> s["records"], s["accuracy"], s["latency_ms"]["p50"]
(2, 0.5, 3.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

__all__ = ["summarize", "format_summary", "join_truth"]


def join_truth(predictions: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Predictions with a ``true_label`` column, joined on the record id.

    Ids of looped passes (``<id>#<pass>``) join to their original record.
    """
    base = predictions["record_id"].astype(str).str.split("#", n=1).str[0]
    mapping = truth.drop_duplicates("record_id").set_index("record_id")["true_label"]
    out = predictions.copy()
    out["true_label"] = base.map(mapping)
    return out


def summarize(predictions: pd.DataFrame, truth: pd.DataFrame | None = None) -> dict[str, Any]:
    """Records, throughput, latency p50/p95/p99 (ms), predicted class counts, accuracy, macro-F1."""
    n = len(predictions)
    out: dict[str, Any] = {"records": n}
    send = predictions["send_ns"].dropna().astype("int64") if "send_ns" in predictions else pd.Series(dtype="int64")
    done = predictions["predicted_ns"].astype("int64") if n else pd.Series(dtype="int64")
    span_s = (done.max() - send.min()) / 1e9 if n and len(send) else float("nan")
    out["throughput_rps"] = float(n / span_s) if span_s and span_s > 0 else float("nan")
    if n and len(send):
        latency = (predictions["predicted_ns"] - predictions["send_ns"]).dropna().to_numpy(dtype=float) / 1e6
        p50, p95, p99 = np.percentile(latency, [50, 95, 99])
        out["latency_ms"] = {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(latency.max())}
    else:
        out["latency_ms"] = {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    out["predicted_counts"] = {str(k): int(v) for k, v in predictions["predicted_label"].value_counts().items()}
    if truth is not None and n:
        joined = join_truth(predictions, truth).dropna(subset=["true_label"])
        out["evaluated"] = len(joined)
        if len(joined):
            y, p = joined["true_label"].astype(str), joined["predicted_label"].astype(str)
            out["accuracy"] = float(accuracy_score(y, p))
            out["macro_f1"] = float(f1_score(y, p, average="macro", zero_division=0))
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few aligned lines for a terminal."""
    lat = summary["latency_ms"]
    lines = [
        f"records        {summary['records']}",
        f"throughput     {summary['throughput_rps']:.0f} records/s (first send to last prediction)",
        f"latency ms     p50 {lat['p50']:.1f}   p95 {lat['p95']:.1f}   p99 {lat['p99']:.1f}",
        "predicted      " + ", ".join(f"{k} {v}" for k, v in summary["predicted_counts"].items()),
    ]
    if "accuracy" in summary:
        lines.append(f"accuracy       {summary['accuracy']:.4f}   macro-F1 {summary['macro_f1']:.4f}   (on {summary['evaluated']} records)")
    for key in ("dead_lettered", "imputed"):
        if key in summary:
            lines.append(f"{key:<15}{summary[key]}")
    return "\n".join(lines)
