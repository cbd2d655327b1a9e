"""Figures of a run while it streams, of its drift windows and of its prequential windows.

- :func:`drift_windows`: per drift window, the share of drifting features and the largest PSI,
  the attack rate and mean score, drifted windows and alerts marked (a ``windows`` frame as
  :meth:`kstream.stores.sqlite.SQLiteStore.windows` returns);
- :func:`prequential_windows`: per prequential window, accuracy and macro-F1 (and TPR/FAR for a
  binary task) of the labels joined to the predictions, the share of attacks among them, and where
  the model version changed (a frame as :meth:`kstream.stores.sqlite.SQLiteStore.prequential` returns);
- :func:`live_view`: one figure of everything a run has produced so far (predicted class counts,
  latency with p50/p95/p99, records/s over time, dead letters and totals, drift, and prequential
  scores when labels are joined), drawn from the predictions and windows frames; the ``2.0-stream``
  notebook redraws it about once a second.

>>> import pandas as pd
>>> windows = pd.DataFrame({"end_ns": [1e9, 2e9, 3e9], "records": [500] * 3, "share_drifting": [0.0, 0.0, 0.4],
...                         "max_psi": [0.05, 0.04, 0.9], "attack_rate": [0.9, 0.9, 0.5],
...                         "mean_score": [0.97, 0.96, 0.8], "drifted": [False, False, True],
...                         "alerts": [[], [], ["attack_rate < 0.7"]]})
>>> fig = drift_windows(windows)
>>> [ax.get_ylabel() for ax in fig.axes]
['share of features', 'rate / score']
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from kstream.analysis.plots.figures import _PLAIN, BLACK, BLUE, ORANGE, SKY, VERMILLION, _figure, _ms, _ns, _require

__all__ = ["drift_windows", "prequential_windows", "live_view"]

GREEN = "#009E73"  # Okabe-Ito bluish green


def _window_axis(windows: pd.DataFrame) -> tuple[np.ndarray, str]:
    """x positions of windows: seconds since the first one started (window numbers without times)."""
    if "end_ns" in windows and windows["end_ns"].notna().all() and len(windows):
        end = pd.to_numeric(windows["end_ns"]).to_numpy(dtype=float)
        start = pd.to_numeric(windows.get("start_ns", windows["end_ns"])).to_numpy(dtype=float)
        return (end - start.min()) / 1e9, "window end (s since the first window started)"
    return np.arange(1, len(windows) + 1, dtype=float), "window"


def _alert_count(windows: pd.DataFrame) -> np.ndarray:
    if "alerts" not in windows:
        return np.zeros(len(windows), dtype=int)
    return np.array([len(a) if isinstance(a, (list, tuple)) else 0 for a in windows["alerts"]], dtype=int)


def _draw_drift(ax, windows: pd.DataFrame, share_threshold: float | None) -> None:
    """Share drifting (and max PSI / 10) per window on ``ax``, a twin axis with attack rate and mean score."""
    x, label = _window_axis(windows)
    judged = windows["judged"].astype(bool).to_numpy() if "judged" in windows else np.ones(len(x), bool)
    share = pd.to_numeric(windows["share_drifting"]).to_numpy(dtype=float)
    ax.plot(x[judged], share[judged], color=BLUE, marker="o", markersize=3, label="share of features drifting")
    if "max_psi" in windows:
        psi = pd.to_numeric(windows["max_psi"]).to_numpy(dtype=float)
        ax.plot(x[judged], np.minimum(psi[judged] / 10, 1.0), color=SKY, linestyle="--", label="largest PSI / 10")
    if not judged.all():
        ax.scatter(x[~judged], share[~judged], marker="x", color=BLACK, alpha=0.5, label="too few records: not judged")
    if share_threshold is not None:
        ax.axhline(share_threshold, color=BLACK, linewidth=0.8, linestyle=":",
                   label=f"share threshold {share_threshold:g}")
    drifted = windows["drifted"].astype(bool).to_numpy() if "drifted" in windows else np.zeros(len(x), bool)
    if drifted.any():
        ax.scatter(x[drifted], windows["share_drifting"].to_numpy(dtype=float)[drifted], s=60, facecolors="none",
                   edgecolors=VERMILLION, linewidths=1.5, label="drifted window", zorder=3)
    alerts = _alert_count(windows)
    for at in x[alerts > 0]:
        ax.axvline(at, color=VERMILLION, alpha=0.35, linewidth=3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(label)
    ax.set_ylabel("share of features")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    for column, colour, style in (("attack_rate", ORANGE, "-"), ("mean_score", GREEN, "-.")):
        if column in windows and windows[column].notna().any():
            twin.plot(x, pd.to_numeric(windows[column]), color=colour, linestyle=style, label=column.replace("_", " "))
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel("rate / score")
    handles = [h for a in (ax, twin) for h in a.get_legend_handles_labels()[0]]
    names = [n for a in (ax, twin) for n in a.get_legend_handles_labels()[1]]
    if alerts.any():
        handles.append(ax.axvline(np.nan, color=VERMILLION, alpha=0.35, linewidth=3))
        names.append(f"alert ({int(alerts.sum())})")
    ax.legend(handles, names, loc="upper left", fontsize=7, framealpha=0.8)


def drift_windows(windows: pd.DataFrame, share_threshold: float | None = None,
                  title: str = "Drift per window") -> Figure:
    """Share of drifting features, largest PSI, attack rate and mean score per drift window.

    Reads ``share_drifting`` (and, when there, ``end_ns``/``start_ns``, ``max_psi``, ``attack_rate``,
    ``mean_score``, ``drifted``, ``alerts``). Drifted windows are circled and windows with an alert
    get a red band; ``share_threshold`` draws the share at which a window drifts.
    """
    _require(windows, ["share_drifting"], "drift_windows")
    if not len(windows):
        raise ValueError("drift_windows: the frame has no drift windows")
    fig = _figure(9, 4.2)
    ax = fig.add_subplot()
    _draw_drift(ax, windows, share_threshold)
    drifted = int(windows["drifted"].astype(bool).sum()) if "drifted" in windows else 0
    ax.set_title(f"{title}: {drifted} of {len(windows)} windows drifted")
    return fig


def _prequential_axis(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """x positions of prequential windows: labelled records so far, in stream order (by end time)."""
    return np.cumsum(pd.to_numeric(frame["records"]).to_numpy(dtype=float)), "labelled records (window ends)"


def _draw_prequential(ax, frame: pd.DataFrame) -> None:
    """Accuracy, macro-F1 (TPR and FAR when there) per prequential window on ``ax``; the attack share among
    the labels, and a line where the model version changes."""
    if "end_ns" in frame and frame["end_ns"].notna().all():
        frame = frame.sort_values("end_ns", kind="stable")
    x, label = _prequential_axis(frame)
    for column, colour, style, name in (("accuracy", BLUE, "-", "accuracy"), ("macro_f1", ORANGE, "-", "macro-F1"),
                                        ("tpr", GREEN, "--", "TPR"), ("far", VERMILLION, ":", "FAR")):
        if column in frame and pd.to_numeric(frame[column], errors="coerce").notna().any():
            ax.plot(x, pd.to_numeric(frame[column], errors="coerce"), color=colour, linestyle=style, marker="o",
                    markersize=3, label=name)
    if "true_counts" in frame and any(isinstance(c, dict) and "attack" in c for c in frame["true_counts"]):
        attack = [c.get("attack", 0) / max(1, sum(c.values())) if isinstance(c, dict) else np.nan
                  for c in frame["true_counts"]]
        width = pd.to_numeric(frame["records"]).to_numpy(dtype=float)
        ax.bar(x - width, attack, width=width, align="edge", color=SKY, alpha=0.25, label="attack share of labels")
    if "model_id" in frame:
        models = frame["model_id"].astype(str).to_numpy()
        for at in np.flatnonzero(models[1:] != models[:-1]) + 1:
            ax.axvline(x[at] - frame["records"].iloc[at] / 2, color=BLACK, linestyle="-.", linewidth=1)
        if len(set(models)) > 1:
            ax.plot([], [], color=BLACK, linestyle="-.", linewidth=1, label="model version changed")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(label)
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.8)


def prequential_windows(windows: pd.DataFrame, title: str = "Prequential scores per window") -> Figure:
    """Accuracy and macro-F1 (and TPR/FAR for a binary task) per prequential window, against the labelled
    records so far; the share of attacks among each window's labels is shaded (a mostly benign window scores
    a high accuracy whatever the model does on attacks), and a dash-dot line marks a model version change.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"records": [1000, 1000], "accuracy": [0.99, 0.8], "macro_f1": [0.9, 0.6],
    ...                       "model_id": ["m@1", "m@2"], "true_counts": [{"benign": 990, "attack": 10}] * 2})
    >>> fig = prequential_windows(frame)
    >>> [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    ['accuracy', 'macro-F1', 'model version changed', 'attack share of labels']
    """
    _require(windows, ["records", "accuracy", "macro_f1"], "prequential_windows")
    if not len(windows):
        raise ValueError("prequential_windows: the frame has no prequential windows")
    fig = _figure(9, 4.2)
    ax = fig.add_subplot()
    _draw_prequential(ax, windows)
    models = windows["model_id"].nunique() if "model_id" in windows else 1
    ax.set_title(f"{title}: {len(windows)} windows, {int(windows['records'].sum()):,} labelled records"
                 + (f", {models} model versions" if models > 1 else ""))
    return fig


def live_view(predictions: pd.DataFrame, windows: pd.DataFrame | None = None, dead_lettered: int = 0,
              sent: int | None = None, title: str = "Live run", prequential: pd.DataFrame | None = None) -> Figure:
    """One figure of a run so far: predicted classes, latency, records/s, dead letters, drift and prequential scores.

    ``predictions`` needs ``predicted_label``, ``latency_ms`` and ``predicted_ns`` (a store's
    frame); ``windows`` are the drift windows so far (None or empty: drift is not monitored);
    ``dead_lettered`` and ``sent`` are counts for the totals panel; ``prequential`` the prequential
    windows so far (None: no labels are joined, and the figure has no panel for them). Any panel
    without data yet says so instead of failing, so the first redraws of a run work too.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"predicted_label": ["attack", "benign", "attack"], "latency_ms": [3.0, 5.0, 40.0],
    ...                       "predicted_ns": [10**9, 2 * 10**9, 2 * 10**9]})
    >>> fig = live_view(frame, dead_lettered=1, sent=4)
    >>> [ax.get_title() for ax in fig.axes]
    ['Predicted classes', 'Latency: p50 5.00, p95 36.5, p99 39.3 ms', 'Records/s', 'Totals', 'Drift']
    >>> live_view(frame.iloc[:0]).axes[0].texts[0].get_text()
    'no predictions yet'
    """
    _require(predictions, ["predicted_label", "latency_ms", "predicted_ns"], "live_view")
    fig = _figure(12, 6.4)
    grid = fig.add_gridspec(2, 3)
    ax_classes, ax_latency, ax_rate = (fig.add_subplot(grid[0, i]) for i in range(3))
    ax_totals = fig.add_subplot(grid[1, 0])
    ax_drift = fig.add_subplot(grid[1, 1:] if prequential is None else grid[1, 1])
    n = len(predictions)

    ax_classes.set_title("Predicted classes")
    counts = predictions["predicted_label"].astype(str).value_counts()
    if len(counts):
        shown = counts.iloc[:12][::-1]
        bars = ax_classes.barh(shown.index.tolist(), shown.to_numpy(), color=ORANGE)
        ax_classes.bar_label(bars, [f"{v:,}" for v in shown.to_numpy()], padding=2, fontsize=8)
        ax_classes.set_xlim(0, shown.max() * 1.3)
        ax_classes.set_xlabel("records")
    else:
        _empty(ax_classes, "no predictions yet")

    latency = pd.to_numeric(predictions["latency_ms"], errors="coerce").to_numpy(dtype=float)
    latency = latency[np.isfinite(latency)]
    if len(latency):
        p50, p95, p99 = np.percentile(latency, [50, 95, 99])
        bins = np.geomspace(max(latency.min(), 1e-3), max(latency.max(), 1e-3) * 1.001, 40)
        ax_latency.hist(np.maximum(latency, 1e-3), bins=bins.tolist(), color=SKY, edgecolor="white", linewidth=0.3)
        ax_latency.set_xscale("log")
        ax_latency.xaxis.set_major_formatter(_PLAIN)
        ax_latency.xaxis.set_minor_formatter(NullFormatter())
        for value, colour, style, name in ((p50, BLACK, "-", "p50"), (p95, ORANGE, "--", "p95"),
                                           (p99, VERMILLION, ":", "p99")):
            ax_latency.axvline(value, color=colour, linestyle=style, linewidth=1.8, label=f"{name} {_ms(value)} ms")
        ax_latency.legend(fontsize=7, loc="upper right")
        ax_latency.set_title(f"Latency: p50 {_ms(p50)}, p95 {_ms(p95)}, p99 {_ms(p99)} ms")
        ax_latency.set_xlabel("latency (ms, log scale)")
    else:
        ax_latency.set_title("Latency")
        _empty(ax_latency, "no latencies yet")

    ax_rate.set_title("Records/s")
    times = _ns(predictions["predicted_ns"])
    if len(times):
        bin_s = 1.0 if times.max() - times.min() >= 10 * 10**9 else 0.1  # a short run in tenths of a second
        per_bin = np.bincount(((times - times.min()) // int(bin_s * 1e9)).astype(np.int64))
        ax_rate.stairs(per_bin / bin_s, np.arange(len(per_bin) + 1) * bin_s, color=BLUE, linewidth=1.5)
        ax_rate.set_ylim(bottom=0)
        ax_rate.set_xlabel(f"s since the first prediction ({bin_s:g} s bins)")
        ax_rate.grid(alpha=0.3)
    else:
        _empty(ax_rate, "no predictions yet")

    ax_totals.set_title("Totals")
    ax_totals.axis("off")
    drifted = int(windows["drifted"].astype(bool).sum()) if windows is not None and len(windows) else 0
    lines = [f"predicted      {n:,}", f"dead-lettered  {dead_lettered:,}"]
    if sent is not None:
        lines.insert(0, f"sent           {sent:,}")
    if windows is not None and len(windows):
        lines += [f"drift windows  {len(windows):,}", f"drifted        {drifted:,}",
                  f"alerts         {int(_alert_count(windows).sum()):,}"]
    if prequential is not None and len(prequential):
        lines += [f"labelled       {int(prequential['records'].sum()):,}",
                  f"waiting        {int(prequential.sort_values('end_ns')['pending'].iloc[-1]):,}"]
    ax_totals.text(0.02, 0.95, "\n".join(lines), va="top", family="monospace", fontsize=10,
                   color=VERMILLION if dead_lettered or drifted else BLACK, transform=ax_totals.transAxes)

    ax_drift.set_title("Drift")
    if windows is not None and len(windows):
        _draw_drift(ax_drift, windows, None)
    else:
        _empty(ax_drift, "no drift window yet" if windows is not None else "drift monitoring is off")
    if prequential is not None:
        ax_preq = fig.add_subplot(grid[1, 2])
        ax_preq.set_title("Prequential")
        if len(prequential):
            _draw_prequential(ax_preq, prequential)
        else:
            _empty(ax_preq, "no label joined yet")
    fig.suptitle(title, fontsize=10)
    return fig


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color=BLACK, alpha=0.6, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
