"""Summaries of a streaming run: volume, speed, latency and quality.

Latency is produce-to-prediction: the detector's prediction time minus the send time the
generator put in the message header. Quality comes from :func:`kstream.modeling.quality.score` on the
predictions joined to the truth by record id, so a run's accuracy is computed exactly as an
offline evaluation's.

>>> import pandas as pd
>>> preds = pd.DataFrame({"record_id": ["a", "b"], "predicted_label": ["attack", "benign"],
...                       "send_ns": [0, 0], "predicted_ns": [2_000_000, 4_000_000]})
>>> truth = pd.DataFrame({"record_id": ["a", "b"], "true_label": ["attack", "attack"]})
>>> s = summarize(preds, truth, task="binary_class")
>>> s["records"], s["accuracy"], s["tpr"], s["latency_ms"]["p50"]
(2, 0.5, 0.5, 3.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kstream.modeling.quality import HEADLINE, score

__all__ = ["summarize", "format_summary", "join_truth", "latency_percentiles", "prequential_list", "label_totals",
           "PREQUENTIAL_KEYS"]

#: The keys of a prequential window in a run's summary (``summary["prequential"]``), from the store's row.
PREQUENTIAL_KEYS = ("partition", "window", "model_id", "records", "accuracy", "macro_f1", "tpr", "far", "recall",
                    "true_counts", "delay_records_p50", "delay_records_max", "delay_s_p50", "delay_s_max", "pending",
                    "expired", "unknown", "duplicates", "closed_by", "start_ns", "end_ns")


def join_truth(predictions: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Predictions with a ``true_label`` column, joined on the record id.

    Ids of looped passes (``<id>#<pass>``) join to their original record.
    """
    base = predictions["record_id"].astype(str).str.split("#", n=1).str[0]
    mapping = truth.drop_duplicates("record_id").set_index("record_id")["true_label"]
    out = predictions.copy()
    out["true_label"] = base.map(mapping)
    return out


def latency_percentiles(latency_ms: np.ndarray) -> dict[str, float]:
    """p50, p95, p99 and max of latencies in ms (NaN when there are none).

    >>> latency_percentiles(np.array([1.0, 2.0, 3.0]))["p50"]
    2.0
    """
    latency_ms = latency_ms[~np.isnan(latency_ms)]
    if not len(latency_ms):
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    p50, p95, p99 = np.percentile(latency_ms, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(latency_ms.max())}


def summarize(predictions: pd.DataFrame, truth: pd.DataFrame | None = None,
              task: str = "multi_class") -> dict[str, Any]:
    """Records, throughput, latency p50/p95/p99 (ms), predicted class counts, the model versions that made
    the predictions (``model_ids``, in the order they first scored, and ``records_by_model``) and the
    quality scores.

    >>> preds = pd.DataFrame({"record_id": ["a", "b", "c"], "predicted_label": ["attack"] * 3, "send_ns": [0] * 3,
    ...                       "predicted_ns": [2, 1, 3], "model_id": ["m@2", "m@1", "m@2"]})
    >>> s = summarize(preds)
    >>> s["model_ids"], s["records_by_model"]
    (['m@1', 'm@2'], {'m@1': 1, 'm@2': 2})
    """
    n = len(predictions)
    out: dict[str, Any] = {"records": n}
    send = predictions["send_ns"].dropna().astype("int64") if n else pd.Series(dtype="int64")
    done = predictions["predicted_ns"].astype("int64") if n else pd.Series(dtype="int64")
    span_s = (done.max() - send.min()) / 1e9 if n and len(send) else float("nan")
    out["throughput_rps"] = float(n / span_s) if span_s and span_s > 0 else float("nan")
    latency = (predictions["predicted_ns"] - predictions["send_ns"]).to_numpy(dtype=float) / 1e6 if n else np.array([])
    out["latency_ms"] = latency_percentiles(latency)
    out["predicted_counts"] = {str(k): int(v) for k, v in predictions["predicted_label"].value_counts().items()}
    if "model_id" in predictions:
        first = predictions.sort_values("predicted_ns", kind="mergesort").drop_duplicates("model_id")
        out["model_ids"] = [str(m) for m in first["model_id"]]
        counts = predictions["model_id"].value_counts()
        out["records_by_model"] = {m: int(counts[m]) for m in out["model_ids"]}
    if truth is not None and n:
        joined = join_truth(predictions, truth).dropna(subset=["true_label"])
        out["evaluated"] = len(joined)
        if len(joined):
            scores = score(joined["true_label"], joined["predicted_label"], task=task)
            out.update({k: scores[k] for k in HEADLINE if k in scores})
    return out


def prequential_list(windows: pd.DataFrame) -> list[dict[str, Any]]:
    """Stored prequential windows (a store's ``prequential`` frame) as plain dicts of :data:`PREQUENTIAL_KEYS`,
    in stream order per partition; an undefined score (TPR of a window without attacks) is None.

    >>> frame = pd.DataFrame([{"partition": 0, "window": 0, "model_id": "m", "records": 2, "accuracy": 0.5,
    ...                        "macro_f1": 0.5, "tpr": float("nan"), "recall": {"benign": 0.5}}])
    >>> w = prequential_list(frame)[0]
    >>> w["records"], w["accuracy"], w["tpr"], w["recall"], type(w["records"]).__name__
    (2, 0.5, None, {'benign': 0.5}, 'int')
    """
    out = []
    for row in windows.to_dict("records"):
        item = {}
        for key in PREQUENTIAL_KEYS:
            value = row.get(key)
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not np.isfinite(value):
                value = None
            if key in ("records", "partition", "window", "pending", "expired", "unknown", "duplicates") \
                    and value is not None:
                value = int(value)
            item[key] = value
        out.append(item)
    return out


def label_totals(counts: list[dict[str, int] | None]) -> dict[str, int]:
    """The label counts of several detectors (their ``DetectorStats.labels``), summed.

    >>> label_totals([{"accepted": 3, "joined": 2}, None, {"accepted": 1, "joined": 1}])
    {'accepted': 4, 'joined': 3}
    """
    out: dict[str, int] = {}
    for one in counts:
        for key, value in (one or {}).items():
            out[key] = out.get(key, 0) + int(value)
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
    if len(summary.get("model_ids") or ()) > 1:
        by_model = summary.get("records_by_model", {})
        lines.append("models         " + " -> ".join(f"{m} ({by_model.get(m, '?')})" for m in summary["model_ids"]))
    if "accuracy" in summary:
        lines.append(f"accuracy       {summary['accuracy']:.4f}   macro-F1 {summary['macro_f1']:.4f}   "
                     f"(on {summary['evaluated']} records)")
    if "tpr" in summary:
        lines.append(f"TPR / FAR      {summary['tpr']:.4f} / {summary['far']:.4f}")
    if summary.get("seen_in_training") is not None:
        lines.append(f"{'seen':<15}{summary['seen_in_training']} records had the feature vector of a training row")
    for key in ("dead_lettered", "imputed"):
        if key in summary:
            lines.append(f"{key:<15}{summary[key]}")
    drift = summary.get("drift")
    if drift:
        lines.append(f"{'drift':<15}{drift['drifted']} of {drift['windows']} windows drifted "
                     f"({drift['judged']} judged), {drift['alerts']} alert(s)")
    labels = summary.get("labels")
    if labels:
        lines.append(f"{'labels':<15}{labels.get('accepted', 0)} stored, {labels.get('joined', 0)} joined, "
                     f"{labels.get('pending', 0)} predictions waiting, {labels.get('expired', 0)} expired, "
                     f"{labels.get('unknown', 0)} unknown, {labels.get('duplicates', 0)} duplicates, "
                     f"{labels.get('dead_lettered', 0)} dead-lettered")
    windows = summary.get("prequential")
    if windows:
        accuracy = [w["accuracy"] for w in windows if w.get("accuracy") is not None]
        f1 = [w["macro_f1"] for w in windows if w.get("macro_f1") is not None]
        lines.append(f"{'prequential':<15}{len(windows)} windows of {sum(w['records'] for w in windows)} labelled "
                     f"records: accuracy {min(accuracy):.4f}..{max(accuracy):.4f}, macro-F1 "
                     f"{min(f1):.4f}..{max(f1):.4f} (last {windows[-1]['accuracy']:.4f} / "
                     f"{windows[-1]['macro_f1']:.4f})")
    retrains = summary.get("retrains")
    if retrains is not None:  # --learn retrain: its decisions
        promoted = sum(bool(d["promoted"]) for d in retrains)
        failed = sum(bool(d["error"]) for d in retrains)
        lines.append(f"{'retrain':<15}{len(retrains)} attempt(s): {promoted} promoted, {failed} failed")
    learner = summary.get("learner")
    if learner:  # --learn online: what the online learner learned
        skipped = "".join(f", {n} {why}" for why, n in (learner.get("skipped") or {}).items())
        lines.append(f"{'learn online':<15}{learner['learned']} labels learned into {learner['versions']} "
                     f"version(s){skipped}")
    return "\n".join(lines)
