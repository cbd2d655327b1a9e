"""Figures of a streaming run for researchers, drawn from the predictions frame.

Each function takes a data frame of predictions (as :meth:`kstream.stores.sqlite.SQLiteStore.frame`
returns, joined to the truth by :func:`kstream.analysis.summaries.join_truth`), reads only the columns
it needs and returns a :class:`matplotlib.figure.Figure`:

- :func:`class_counts`: true vs predicted records per class (``true_label``, ``predicted_label``)
- :func:`latency_histogram`: produce-to-prediction latency with p50/p95/p99 (``latency_ms``)
- :func:`confusion_matrix`: row-normalised true vs predicted classes (``true_label``, ``predicted_label``);
  :func:`confusion_matrix_from_counts` draws the same from counts (a model card's held-out matrix)
- :func:`throughput_over_time`: records/s predicted, and sent, over the run (``predicted_ns``, ``send_ns``)
- :func:`learning_curve`: held-out scores by training rows (a model card's ``learning_curve``)
- :func:`save_figures`: write figures as ``<name>.png`` files

The figures are pyplot figures, as with pandas or seaborn plots: nothing calls ``show`` and no
backend is chosen here (headless runs get Agg, notebooks their inline backend), so a notebook
shows each figure at the end of its cell; end the line with ``;`` or the returned figure is
shown a second time (or ``plt.close(fig)`` it and display the value). Scripts that make many
figures close them after :func:`save_figures`, as :mod:`kstream.analysis.report` does. Colours are from
the Okabe-Ito colourblind-safe palette, and sizes grow with the number of classes.

>>> import pandas as pd
>>> frame = pd.DataFrame({"true_label": ["chat", "chat", "voip"], "predicted_label": ["chat", "voip", "voip"]})
>>> fig = confusion_matrix(frame)
>>> fig.axes[0].get_ylabel(), fig.axes[0].get_xlabel()
('true class', 'predicted class')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = ["class_counts", "latency_histogram", "confusion_matrix", "confusion_matrix_from_counts",
           "throughput_over_time", "learning_curve", "save_figures"]

#: Okabe-Ito palette (Okabe & Ito 2008), distinguishable with the common colour-vision deficiencies.
BLUE, ORANGE, VERMILLION, SKY, BLACK = "#0072B2", "#E69F00", "#D55E00", "#56B4E9", "#000000"

#: Up to this many classes, counts are written on the bars and in the confusion matrix cells.
ANNOTATE_MAX_CLASSES = 12


def class_counts(
    frame: pd.DataFrame, title: str = "Records per class: true vs predicted", log: bool | None = None
) -> Figure:
    """Horizontal bars of true and predicted records per class, sorted by true count (largest on top).

    Reads ``true_label`` (rows where it is missing count only as predictions) and
    ``predicted_label``. ``log`` puts the counts on a log axis; by default it does so when the
    non-zero counts span more than two decades, so that rare classes stay visible. Counts are
    written on the bars for up to 12 classes.

    >>> import pandas as pd
    >>> fig = class_counts(pd.DataFrame({"true_label": ["chat", "voip", "voip"],
    ...                                  "predicted_label": ["voip", "voip", "voip"]}))
    >>> ax = fig.axes[0]
    >>> ax.get_xlabel(), [t.get_text() for t in ax.get_yticklabels()]
    ('records', ['voip', 'chat'])
    >>> [[float(p.get_width()) for p in c] for c in ax.containers]  # true, predicted
    [[2.0, 1.0], [3.0, 0.0]]
    """
    _require(frame, ["true_label", "predicted_label"], "class_counts")
    true = frame["true_label"].dropna().astype(str).value_counts()
    pred = frame["predicted_label"].dropna().astype(str).value_counts()
    if true.empty and pred.empty:
        raise ValueError("class_counts: the frame has no labelled or predicted records")
    counts = pd.DataFrame({"true": true, "predicted": pred}).fillna(0).astype(int)
    counts = counts.rename_axis("cls").reset_index()
    counts = counts.sort_values(["true", "predicted", "cls"], ascending=[False, False, True], kind="mergesort")
    n = len(counts)
    positive = counts[["true", "predicted"]].to_numpy().ravel()
    positive = positive[positive > 0]
    if log is None:
        log = bool(len(positive)) and positive.max() / positive.min() > 100

    bar = 0.4
    fig = _figure(7.5, 1.6 + 0.34 * n + 0.3 * (n < 4))
    ax = fig.add_subplot()
    y = np.arange(n)
    for offset, column, colour in ((-bar / 2, "true", BLUE), (bar / 2, "predicted", ORANGE)):
        bars = ax.barh(y + offset, counts[column], height=bar, color=colour, label=column)
        if n <= ANNOTATE_MAX_CLASSES:
            ax.bar_label(bars, [f"{v:,}" if v or not log else "" for v in counts[column]], padding=2, fontsize=8)
            if log:  # a zero bar has no end on a log axis: write its 0 at the axis' left edge
                for at in (y + offset)[counts[column].to_numpy() == 0]:
                    ax.text(0.75, at, "0", va="center", fontsize=8)
    ax.set_yticks(y, counts["cls"].tolist())
    ax.set_ylim(n - 0.5, -0.5)  # first (largest) class on top
    top = max(int(positive.max()) if len(positive) else 1, 1)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(0.7, top * (4 if n <= ANNOTATE_MAX_CLASSES else 1.5))
    else:
        ax.set_xlim(0, top * (1.15 if n <= ANNOTATE_MAX_CLASSES else 1.05))
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.set_xlabel("records")
    ax.set_ylabel("class")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.legend(loc="outside lower center", ncols=2, frameon=False,
               title="(log-scale axis)" if log else None, title_fontsize=9)
    return fig


def latency_histogram(frame: pd.DataFrame, title: str = "Produce-to-prediction latency") -> Figure:
    """Histogram of ``latency_ms`` with vertical lines at its p50, p95 and p99.

    The bins are log-spaced (on a log axis) when the latencies span more than two decades.
    Missing latencies are left out.

    >>> import pandas as pd
    >>> fig = latency_histogram(pd.DataFrame({"latency_ms": [1.0, 2.0, 30.0]}))
    >>> fig.axes[0].get_xlabel()
    'latency (ms)'
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['p50 = 2.00 ms', 'p95 = 27.2 ms', 'p99 = 29.4 ms']
    """
    _require(frame, ["latency_ms"], "latency_histogram")
    latency = pd.to_numeric(frame["latency_ms"], errors="coerce").to_numpy(dtype=float)
    latency = latency[np.isfinite(latency)]
    if not len(latency):
        raise ValueError("latency_histogram: no records with a latency_ms value")
    low, high = latency.min(), latency.max()
    log = low > 0 and high / low > 100

    fig = _figure(8.5, 4.2)
    ax = fig.add_subplot()
    if log:
        bins = np.geomspace(low, high, 60)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(_PLAIN)
    else:
        bins = np.histogram_bin_edges(latency, bins="auto")
        if len(bins) > 81:
            bins = np.linspace(low, high, 81)
    ax.hist(latency, bins=bins.tolist(), color=SKY, edgecolor="white", linewidth=0.4, label="_records")
    for q, colour, style in ((50, BLACK, "-"), (95, ORANGE, "--"), (99, VERMILLION, ":")):
        value = float(np.percentile(latency, q))
        ax.axvline(value, color=colour, linestyle=style, linewidth=2, label=f"p{q} = {_ms(value)} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("records")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(title=f"{len(latency):,} records" + ("\nlog-spaced bins" if log else ""),
              loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never over a line
    return fig


def confusion_matrix(
    frame: pd.DataFrame,
    classes: Sequence[str] | None = None,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Figure:
    """Heatmap of true classes (rows) against predicted classes (columns).

    Rows without a ``true_label`` are dropped. ``classes`` fixes the order of rows and columns
    (default: the sorted union of true and predicted labels); it must contain every label in the
    frame. With ``normalize`` each row shows shares of its true class (rows with no true records
    are grey); otherwise record counts. For up to 12 classes the non-zero record counts are
    written in the cells.

    >>> import pandas as pd
    >>> fig = confusion_matrix(pd.DataFrame({"true_label": ["chat", "chat", "voip", None],
    ...                                      "predicted_label": ["chat", "voip", "voip", "chat"]}))
    >>> fig.axes[0].images[0].get_array().tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    >>> [t.get_text() for t in fig.axes[0].texts], fig.axes[1].get_ylabel()
    (['1', '1', '1'], 'share of true class')
    """
    _require(frame, ["true_label", "predicted_label"], "confusion_matrix")
    scored = frame.dropna(subset=["true_label"])
    true, pred = scored["true_label"].astype(str), scored["predicted_label"].astype(str)
    if classes is None:
        classes = sorted(set(true) | set(pred))
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"confusion_matrix: classes has duplicates: {classes}")
    unknown = sorted((set(true) | set(pred)) - set(classes))
    if unknown:
        raise ValueError(
            f"confusion_matrix: labels {unknown} are not in classes; add them to classes or drop those rows"
        )
    if not classes:
        raise ValueError("confusion_matrix: no records with a true_label")
    n = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (true.map(index).to_numpy(dtype=int), pred.map(index).to_numpy(dtype=int)), 1)
    return confusion_matrix_from_counts(counts, classes, normalize, title)


def confusion_matrix_from_counts(
    counts: Sequence[Sequence[int]] | np.ndarray,
    classes: Sequence[str],
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Figure:
    """The heatmap of :func:`confusion_matrix` from a square matrix of record counts (rows = true class),
    such as the held-out ``confusion_matrix`` of a model card's metrics.

    >>> fig = confusion_matrix_from_counts([[3, 1], [0, 4]], ["benign", "attack"], normalize=False)
    >>> fig.axes[0].images[0].get_array().tolist()
    [[3.0, 1.0], [0.0, 4.0]]
    """
    counts = np.asarray(counts, dtype=int)
    classes = [str(c) for c in classes]
    n = len(classes)
    if counts.shape != (n, n):
        raise ValueError(f"confusion_matrix_from_counts: a {counts.shape} matrix for {n} classes")
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.ma.masked_invalid(counts / totals)
        vmax, label = 1.0, "share of true class"
    else:
        values, vmax, label = np.ma.masked_array(counts.astype(float)), max(int(counts.max()), 1), "records"

    side = 2.8 + 0.28 * n + 0.07 * max(len(c) for c in classes)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    cmap = colormaps["Blues"].with_extremes(bad="#d9d9d9")  # grey: a row with no true records
    image = ax.imshow(values, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest", aspect="equal")
    colorbar = fig.colorbar(image, ax=ax, label=label, shrink=0.8 if n > 4 else 1.0)
    if np.ma.getmaskarray(values).any():
        colorbar.ax.set_xlabel("grey: no\ntrue records", fontsize=8)
    rotate = 0.075 * max(map(len, classes)) > 0.6 * side / n  # would the longest name overlap its neighbours?
    ax.set_xticks(range(n), classes, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                  rotation_mode="anchor")
    ax.set_yticks(range(n), classes)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if n <= ANNOTATE_MAX_CLASSES:
        size = 10 if n <= 8 else 8
        for i, j in zip(*np.nonzero(counts)):
            share = float(values[i, j]) / vmax
            ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center", fontsize=size,
                    color="white" if share > 0.55 else BLACK)
    return fig


def throughput_over_time(frame: pd.DataFrame, bin_s: float = 1.0, title: str = "Throughput over the run") -> Figure:
    """Records predicted per second, and sent per second if ``send_ns`` is there, over the run.

    Times are ``predicted_ns`` (and ``send_ns``) relative to the first send (or the first
    prediction when no send time is known), counted in ``bin_s``-second bins; a step line shows
    each bin's count divided by its width. The last bin ends at the last event, so it is between
    0.5 and 1.5 ``bin_s`` wide and an unfinished second does not show as a drop in throughput.

    >>> import pandas as pd
    >>> fig = throughput_over_time(pd.DataFrame({"send_ns": [0, 0, 1_000_000_000],
    ...                                          "predicted_ns": [100_000_000, 1_200_000_000, 2_000_000_000]}))
    >>> ax = fig.axes[0]
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('time since first send (s)', 'records/s')
    >>> [(p.get_label(), p.get_data().values.tolist()) for p in ax.patches]
    [('predicted', [1.0, 2.0]), ('sent', [2.0, 1.0])]
    """
    _require(frame, ["predicted_ns"], "throughput_over_time")
    if not bin_s > 0:
        raise ValueError(f"throughput_over_time: bin_s must be positive, got {bin_s}")
    predicted = _ns(frame["predicted_ns"])
    sent = _ns(frame["send_ns"]) if "send_ns" in frame else np.array([], dtype="int64")
    if not len(predicted):
        raise ValueError("throughput_over_time: no records with a predicted_ns value")
    start = int(sent.min()) if len(sent) else int(predicted.min())
    series = {"predicted": (predicted - start) / 1e9}
    if len(sent):
        series["sent"] = (sent - start) / 1e9
    first = min(float(t.min()) for t in series.values())
    last = max(float(t.max()) for t in series.values())
    lo = math.floor(first / bin_s) * bin_s
    edges = lo + bin_s * np.arange(max(1, math.floor((last - lo) / bin_s)) + 1)
    if last - edges[-1] >= bin_s / 2:
        edges = np.append(edges, last)
    else:  # a short tail joins the last full bin rather than showing as a spike or a dip
        edges[-1] = max(last, edges[-1])

    fig = _figure(8, 4.2)
    ax = fig.add_subplot()
    styles: dict[str, dict[str, Any]] = {
        "predicted": dict(color=BLUE, linestyle="-", linewidth=2),
        "sent": dict(color=ORANGE, linestyle="--", linewidth=1.6),
    }
    for name, times in series.items():
        counts, _ = np.histogram(times, bins=edges)
        ax.stairs(counts / np.diff(edges), edges, label=name, baseline=None, **styles[name])
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time since first send (s)" if len(sent) else "time since first prediction (s)")
    ax.set_ylabel("records/s")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(title=f"{bin_s:g} s bins", loc="best")
    return fig


#: The scores a learning curve draws when they are there, with their colours and legend names.
CURVE_SCORES = {"accuracy": (BLUE, "accuracy"), "macro_f1": (ORANGE, "macro-F1"),
                "netml_overall": (VERMILLION, "NetML overall")}


def learning_curve(
    curve: pd.DataFrame | Sequence[Mapping[str, object]],
    ceiling: float | None = None,
    title: str = "Held-out scores by training rows",
) -> Figure:
    """Held-out scores (accuracy, macro-F1, NetML overall: those present) against ``train_rows``,
    one line with markers each, on a 0-1 axis; ``ceiling`` (the best accuracy the held-out rows'
    label conflicts allow) is drawn as a dashed line.

    >>> fig = learning_curve([{"train_rows": 100, "accuracy": 0.5, "macro_f1": 0.4},
    ...                       {"train_rows": 200, "accuracy": 0.6, "macro_f1": 0.45}], ceiling=0.9)
    >>> ax = fig.axes[0]
    >>> ax.get_xlabel(), [line.get_label() for line in ax.get_lines()]
    ('training rows', ['accuracy', 'macro-F1', 'ceiling 0.900'])
    >>> ax.get_lines()[0].get_xydata().tolist()
    [[100.0, 0.5], [200.0, 0.6]]
    """
    frame = curve if isinstance(curve, pd.DataFrame) else pd.DataFrame(list(curve))
    _require(frame, ["train_rows"], "learning_curve")
    shown = [k for k in CURVE_SCORES if k in frame.columns and frame[k].notna().any()]
    if not len(frame) or not shown:
        raise ValueError(f"learning_curve: no points with any of {', '.join(CURVE_SCORES)}")
    frame = frame.sort_values("train_rows")
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    for key in shown:
        colour, name = CURVE_SCORES[key]
        ax.plot(frame["train_rows"], frame[key], marker="o", color=colour, label=name)
    if ceiling is not None and np.isfinite(ceiling):
        ax.axhline(ceiling, color=BLACK, linestyle="--", linewidth=1, label=f"ceiling {ceiling:.3f}")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, frame["train_rows"].max() * 1.05)
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.set_xlabel("training rows")
    ax.set_ylabel("held-out score")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def save_figures(figures: Mapping[str, Figure], folder: str | Path) -> list[Path]:
    """Write each figure to ``<folder>/<name>.png`` (120 dpi, tight bounding box); returns the paths.

    >>> import tempfile, pandas as pd
    >>> fig = latency_histogram(pd.DataFrame({"latency_ms": [1.0, 2.0, 30.0]}))
    >>> [p.name for p in save_figures({"latency": fig}, tempfile.mkdtemp())]
    ['latency.png']
    """
    folder = Path(folder)
    bad = [name for name in figures if not name or Path(name).name != name or name in (".", "..")]
    if bad:
        raise ValueError(f"save_figures: figure names must be plain file names without a folder, got {bad}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    return paths


def _figure(width: float, height: float) -> Figure:
    """A new pyplot figure (inches) whose layout keeps titles, labels and legends inside it."""
    return plt.figure(figsize=(width, height), layout="constrained")


def _require(frame: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: the frame has no column {missing}; it has {list(frame.columns)}")


def _ns(column: pd.Series) -> np.ndarray:
    """Non-missing nanosecond times as int64 (exact, unlike float64 at epoch scale)."""
    return pd.to_numeric(column, errors="coerce").dropna().astype("int64").to_numpy()


def _ms(value: float) -> str:
    """A latency in ms with about three significant digits: 0.123, 2.00, 27.2, 1,234."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


_PLAIN = FuncFormatter(lambda value, _: f"{value:,.10g}")  # 0.1, 1, 10, 2,500: not 10^k on log axes

