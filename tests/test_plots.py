"""Figures of kstream.analysis.plots: what they draw is read back from the Axes and checked against the data."""

import matplotlib

matplotlib.use("Agg")  # this process only: the notebooks the tests run keep their inline backend

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from kstream.analysis import plots  # noqa: E402

LONG_NAMES = [f"Web Attack \u2013 Brute Force variant {i:02d}" if i % 2 else f"class_{i:02d}" for i in range(24)]


def predictions(classes, n=600, error=0.15, seed=0, missing_truth=0.05, span_s=10.0):
    """A predictions frame like the detector's, joined to the truth: `error` of labels replaced at random."""
    rng = np.random.default_rng(seed)
    weights = np.geomspace(1, 0.02, len(classes))
    true = rng.choice(classes, n, p=weights / weights.sum())
    predicted = np.where(rng.random(n) < error, rng.choice(classes, n), true)
    truth = pd.Series(true, dtype=object)
    truth[rng.random(n) < missing_truth] = None
    send = 1_700_000_000_000_000_000 + np.sort(rng.integers(0, int(span_s * 1e9), n))
    latency_ms = rng.lognormal(np.log(8), 1.0, n)
    done = send + (latency_ms * 1e6).astype("int64")
    return pd.DataFrame({
        "record_id": [str(i) for i in range(n)], "predicted_label": predicted, "true_label": truth,
        "score": rng.uniform(0.5, 1.0, n), "send_ns": send, "predicted_ns": done, "latency_ms": (done - send) / 1e6,
    })


@pytest.fixture(scope="module")
def frame():
    return predictions(["benign", "dos", "portscan", "web_attack", "bot"])


@pytest.fixture(scope="module")
def frame24():
    return predictions(LONG_NAMES, n=1500, seed=1)


def bars(ax, label):
    """Widths of the horizontal bars labelled `label`, by class name."""
    (container,) = [c for c in ax.containers if c.get_label() == label]
    names = [t.get_text() for t in ax.get_yticklabels()]
    return dict(zip(names, [int(round(p.get_width())) for p in container]))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def draw(fig):
    """Lay out and draw the figure once, as saving it would; returns the renderer."""
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def shown(ax, axis="x"):
    """The tick labels of `axis` whose ticks are inside the view (the others are not drawn)."""
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    where = 0 if axis == "x" else 1
    return [t for t in labels if t.get_text() and lo - 1e-9 <= t.get_position()[where] <= hi + 1e-9]


def assert_inside(fig, renderer, artists):
    """Every artist is drawn wholly inside the figure (nothing cut off)."""
    page = fig.bbox.padded(1)
    for artist in artists:
        box = artist.get_window_extent(renderer)
        assert page.contains(box.x0, box.y0) and page.contains(box.x1, box.y1), artist


def assert_apart(fig, renderer, ax, ticklabels):
    """Neighbouring tick labels do not overlap. Unrotated labels: their boxes are disjoint. Rotated labels are
    parallel lines of text; the distance across them is the tick spacing times sin(angle to the axis), which
    must exceed the text height."""
    rotation = ticklabels[0].get_rotation() % 180
    if rotation == 0:
        boxes = [t.get_window_extent(renderer) for t in ticklabels]
        for a, b in zip(boxes, boxes[1:]):
            inter = a.intersection(a, b)
            assert inter is None or inter.width * inter.height < 1
        return
    spacing = ax.get_window_extent(renderer).width / len(ticklabels)
    height = ticklabels[0].get_fontsize() * fig.dpi / 72
    assert spacing * abs(np.sin(np.radians(rotation))) >= height


def labels_of(fig):
    """Title, axis labels, shown tick labels and legends of every Axes: what must not be cut off."""
    out = list(fig.legends)
    for ax in fig.axes:
        out += [a for a in (ax.title, ax.xaxis.label, ax.yaxis.label, ax.get_legend()) if a and (a.get_visible())]
        out += shown(ax, "x") + shown(ax, "y")
    return [a for a in out if not hasattr(a, "get_text") or a.get_text()]


# class_counts


def test_class_counts_bars_are_the_true_and_predicted_counts(frame):
    ax = plots.class_counts(frame).axes[0]
    assert bars(ax, "true") == frame["true_label"].dropna().value_counts().to_dict()
    predicted = bars(ax, "predicted")
    assert {k: v for k, v in predicted.items() if v} == frame["predicted_label"].value_counts().to_dict()


def test_class_counts_sorted_by_true_count_largest_on_top(frame):
    ax = plots.class_counts(frame).axes[0]
    true = bars(ax, "true")
    assert list(true.values()) == sorted(true.values(), reverse=True)
    top_label = ax.get_yticklabels()[0]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # y axis inverted: first class drawn on top
    assert top_label.get_text() == frame["true_label"].value_counts().index[0]


def test_class_counts_labels_legend_and_annotations(frame):
    fig = plots.class_counts(frame, title="my run")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "records" and ax.get_title() == "my run"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["true", "predicted"]
    written = sorted(int(t.get_text().replace(",", "")) for t in ax.texts)
    assert written == sorted(list(bars(ax, "true").values()) + list(bars(ax, "predicted").values()))


def test_class_counts_predicted_only_class_has_zero_true_bar():
    frame = pd.DataFrame({"true_label": ["a", "a", "b", None], "predicted_label": ["a", "c", "b", "c"]})
    ax = plots.class_counts(frame, log=False).axes[0]
    assert bars(ax, "true") == {"a": 2, "b": 1, "c": 0}
    assert bars(ax, "predicted") == {"a": 1, "b": 1, "c": 2}


def test_class_counts_uses_log_axis_only_when_counts_span_two_decades():
    even = pd.DataFrame({"true_label": ["a"] * 50 + ["b"] * 5, "predicted_label": ["a"] * 50 + ["b"] * 5})
    skewed = pd.DataFrame({"true_label": ["a"] * 500 + ["b"] * 2, "predicted_label": ["a"] * 502})
    assert plots.class_counts(even).axes[0].get_xscale() == "linear"
    ax = plots.class_counts(skewed).axes[0]
    assert ax.get_xscale() == "log"
    assert sorted(t.get_text() for t in ax.texts if t.get_text()) == ["0", "2", "500", "502"]  # the zero is written too


def test_class_counts_many_classes_readable(frame24):
    fig = plots.class_counts(frame24)
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 24 and not ax.texts  # too many to annotate
    assert fig.get_figheight() > plots.class_counts(predictions(["a", "b"])).get_figheight()
    renderer = draw(fig)
    assert_inside(fig, renderer, labels_of(fig))
    assert_apart(fig, renderer, ax, ax.get_yticklabels())


# latency_histogram


def test_latency_lines_at_the_true_percentiles(frame):
    ax = plots.latency_histogram(frame).axes[0]
    want = np.percentile(frame["latency_ms"], [50, 95, 99])
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose([line.get_xdata()[0] for line in lines], want)
    labels = [line.get_label() for line in lines]
    assert [label.split(" = ")[0] for label in labels] == ["p50", "p95", "p99"]
    for label, value in zip(labels, want):
        assert label.endswith(" ms")
        assert float(label.split(" = ")[1].removesuffix(" ms").replace(",", "")) == pytest.approx(value, rel=0.01)


def test_latency_histogram_counts_every_latency_and_skips_missing():
    latency = pd.Series([1.0, 2.0, 2.5, 3.0, np.nan, 4.0])
    ax = plots.latency_histogram(pd.DataFrame({"latency_ms": latency})).axes[0]
    assert sum(p.get_height() for p in ax.patches) == 5
    assert ax.get_xlabel() == "latency (ms)" and ax.get_ylabel() == "records"
    assert ax.get_xscale() == "linear"


def test_latency_histogram_log_bins_when_spanning_two_decades(frame):
    assert frame["latency_ms"].max() / frame["latency_ms"].min() > 100
    ax = plots.latency_histogram(frame).axes[0]
    assert ax.get_xscale() == "log"
    edges = np.array([p.get_x() for p in ax.patches] + [ax.patches[-1].get_x() + ax.patches[-1].get_width()])
    ratios = edges[1:] / edges[:-1]
    np.testing.assert_allclose(ratios, ratios[0])  # log-spaced: constant ratio
    assert sum(p.get_height() for p in ax.patches) == len(frame)


# confusion_matrix


def test_confusion_matrix_rows_are_shares_and_cells_are_counts(frame):
    classes = sorted(set(frame["true_label"].dropna()) | set(frame["predicted_label"]))
    fig = plots.confusion_matrix(frame)
    ax = fig.axes[0]
    shares = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    scored = frame.dropna(subset=["true_label"])
    counts = pd.crosstab(scored["true_label"], scored["predicted_label"])
    counts = counts.reindex(index=classes, columns=classes, fill_value=0)
    np.testing.assert_allclose(shares, counts.to_numpy() / counts.to_numpy().sum(axis=1, keepdims=True))
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text().replace(",", ""))
               for t in ax.texts}
    want = {(i, j): int(v) for (i, j), v in np.ndenumerate(counts.to_numpy()) if v}
    assert written == want
    assert [t.get_text() for t in ax.get_yticklabels()] == classes == [t.get_text() for t in ax.get_xticklabels()]
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("true class", "predicted class")
    assert fig.axes[1].get_ylabel() == "share of true class"


def test_confusion_matrix_classes_fix_order_and_counts_mode(frame):
    classes = ["web_attack", "portscan", "dos", "bot", "benign", "never_seen"]
    fig = plots.confusion_matrix(frame, classes, normalize=False)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    values = np.ma.getdata(ax.images[0].get_array())
    assert values.sum() == frame["true_label"].notna().sum()
    dos = classes.index("dos")
    assert values[dos, dos] == ((frame.true_label == "dos") & (frame.predicted_label == "dos")).sum()
    assert values[-1].sum() == 0 and values[:, -1].sum() == 0
    assert fig.axes[1].get_ylabel() == "records"


def test_confusion_matrix_row_without_true_records_is_masked():
    frame = pd.DataFrame({"true_label": ["a", "a", "b"], "predicted_label": ["a", "c", "b"]})
    image = plots.confusion_matrix(frame).axes[0].images[0].get_array()
    assert np.ma.getmaskarray(image)[2].all() and not np.ma.getmaskarray(image)[:2].any()


def test_confusion_matrix_rejects_labels_outside_classes(frame):
    with pytest.raises(ValueError, match="not in classes"):
        plots.confusion_matrix(frame, ["benign", "dos"])


def test_confusion_matrix_many_classes_readable(frame24):
    fig = plots.confusion_matrix(frame24)
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (24, 24) and not ax.texts
    renderer = draw(fig)
    assert_inside(fig, renderer, labels_of(fig))
    assert_apart(fig, renderer, ax, ax.get_yticklabels())
    assert_apart(fig, renderer, ax, ax.get_xticklabels())
    assert ax.get_xticklabels()[0].get_rotation() == 45 and ax.get_xticklabels()[0].get_ha() == "right"


# throughput_over_time


def stairs(ax):
    return {p.get_label(): p.get_data() for p in ax.patches}


def test_throughput_bins_sum_to_the_records(frame):
    ax = plots.throughput_over_time(frame, bin_s=0.5).axes[0]
    data = stairs(ax)
    assert set(data) == {"predicted", "sent"}
    for series in data.values():
        assert np.sum(series.values * np.diff(series.edges)) == pytest.approx(len(frame))
        widths = np.diff(series.edges)
        np.testing.assert_allclose(widths[:-1], 0.5)
        assert 0.25 <= widths[-1] <= 0.75
    assert data["predicted"].edges[0] == 0.0
    assert data["predicted"].edges[-1] == pytest.approx((frame.predicted_ns.max() - frame.send_ns.min()) / 1e9)
    assert ax.get_xlabel() == "time since first send (s)" and ax.get_ylabel() == "records/s"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["predicted", "sent"]


def test_throughput_rate_is_records_per_second():
    second = 1_000_000_000
    frame = pd.DataFrame({"send_ns": [0] * 4 + [second] * 2, "predicted_ns": [second // 2] * 4 + [2 * second] * 2})
    data = stairs(plots.throughput_over_time(frame).axes[0])
    assert data["sent"].values.tolist() == [4.0, 2.0]
    assert data["predicted"].values.tolist() == [4.0, 2.0]


def test_throughput_without_send_times(frame):
    ax = plots.throughput_over_time(frame[["predicted_ns"]]).axes[0]
    assert set(stairs(ax)) == {"predicted"}
    assert ax.get_xlabel() == "time since first prediction (s)"
    with pytest.raises(ValueError, match="bin_s"):
        plots.throughput_over_time(frame, bin_s=0)


# learning_curve


CURVE = [  # a card's learning curve, out of order: the figure sorts it by training rows
    {"fraction": 0.4, "train_rows": 400, "accuracy": 0.71, "macro_f1": 0.52, "netml_overall": 0.30},
    {"fraction": 0.1, "train_rows": 100, "accuracy": 0.60, "macro_f1": 0.41, "netml_overall": 0.21},
    {"fraction": 1.0, "train_rows": 1000, "accuracy": 0.75, "macro_f1": 0.58, "netml_overall": 0.33},
]


def test_learning_curve_draws_each_score_against_the_training_rows():
    ax = plots.learning_curve(CURVE, ceiling=0.9).axes[0]
    lines = {line.get_label(): line.get_xydata().tolist() for line in ax.get_lines()}
    ordered = sorted(CURVE, key=lambda p: p["train_rows"])
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("netml_overall", "NetML overall")):
        assert lines[name] == [[p["train_rows"], p[key]] for p in ordered]
    assert lines["ceiling 0.900"][0][1] == 0.9  # the dashed ceiling, across the axes
    assert ax.get_ylim() == (0, 1.02) and ax.get_xlim()[1] >= 1000
    assert ax.get_xlabel() == "training rows" and ax.get_ylabel() == "held-out score" and ax.get_title()


def test_learning_curve_draws_only_the_scores_it_has_and_no_ceiling_unless_given():
    frame = pd.DataFrame(CURVE).drop(columns=["netml_overall", "macro_f1"])
    ax = plots.learning_curve(frame).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["accuracy"]
    fig = plots.learning_curve(CURVE, ceiling=float("nan"))
    assert len(fig.axes[0].get_lines()) == 3
    assert_inside(fig, draw(fig), labels_of(fig))
    with pytest.raises(ValueError, match="train_rows"):
        plots.learning_curve([{"accuracy": 0.5}])
    with pytest.raises(ValueError, match="no points with any of accuracy, macro_f1, netml_overall"):
        plots.learning_curve([{"train_rows": 10, "tpr": 0.5}])


# save_figures and the module as a whole


def test_save_figures_writes_readable_pngs(tmp_path, frame):
    figs = {"throughput": plots.throughput_over_time(frame), "latency": plots.latency_histogram(frame)}
    paths = plots.save_figures(figs, tmp_path / "figures")
    assert paths == [tmp_path / "figures" / "throughput.png", tmp_path / "figures" / "latency.png"]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert matplotlib.image.imread(path).shape[0] > 200
    with pytest.raises(ValueError, match="plain file names"):
        plots.save_figures({"../escape": figs["latency"]}, tmp_path)


def test_every_figure_has_title_and_labels_with_units_and_is_a_pyplot_figure(frame):
    figs = [plots.class_counts(frame), plots.latency_histogram(frame), plots.confusion_matrix(frame),
            plots.throughput_over_time(frame)]
    assert plt.get_fignums()[-4:] == [fig.number for fig in figs]  # open: a notebook shows them at the cell's end
    for fig in figs:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "(ms)" in figs[1].axes[0].get_xlabel()
    assert "(s)" in figs[3].axes[0].get_xlabel() and figs[3].axes[0].get_ylabel() == "records/s"


def test_two_classes_all_figures_draw_inside_the_page():
    frame = predictions(["benign", "attack"], n=300, seed=2)
    figs = [plots.class_counts(frame), plots.latency_histogram(frame), plots.confusion_matrix(frame),
            plots.throughput_over_time(frame)]
    for fig in figs:
        assert_inside(fig, draw(fig), labels_of(fig))
    assert figs[2].axes[0].get_xticklabels()[0].get_rotation() == 0  # short names need no rotation


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="latency_ms"):
        plots.latency_histogram(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ValueError, match="true_label"):
        plots.confusion_matrix(pd.DataFrame({"predicted_label": ["a"]}))


# --- the live view and drift windows -------------------------------------------------------------


def windows_frame(n=6, drifted_from=4):
    return pd.DataFrame({
        "start_ns": [i * 10**9 for i in range(n)], "end_ns": [(i + 1) * 10**9 for i in range(n)],
        "records": [500] * (n - 1) + [40], "judged": [True] * (n - 1) + [False],
        "share_drifting": [0.0] * drifted_from + [0.6] * (n - drifted_from), "max_psi": [0.05] * drifted_from
        + [2.5] * (n - drifted_from), "attack_rate": [0.9] * n, "mean_score": [0.95] * n,
        "drifted": [False] * drifted_from + [True] * (n - drifted_from - 1) + [False],
        "alerts": [[] for _ in range(drifted_from)] + [["max_psi > 1"]] * (n - drifted_from - 1) + [[]],
    })


def test_drift_windows_marks_drifted_windows_alerts_and_unjudged_ones():
    fig = plots.drift_windows(windows_frame(), share_threshold=0.1, title="Drift")
    ax = fig.axes[0]
    assert ax.get_title() == "Drift: 1 of 6 windows drifted"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"share of features drifting", "drifted window", "too few records: not judged", "alert (1)",
            "share threshold 0.1", "attack rate", "mean score"} <= set(legend)
    share_line = next(line for line in ax.get_lines() if line.get_label() == "share of features drifting")
    assert share_line.get_ydata().tolist() == [0.0] * 4 + [0.6]  # the unjudged window is not on the line
    with pytest.raises(ValueError, match="no drift windows"):
        plots.drift_windows(windows_frame().iloc[:0])


def test_live_view_draws_every_panel_from_the_frames(frame):
    fig = plots.live_view(frame, windows_frame(), dead_lettered=3, sent=len(frame) + 3, title="Live")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "Predicted classes" and titles[2] == "Records/s" and titles[3] == "Totals"
    p99 = np.percentile(frame["latency_ms"], 99)
    assert titles[1].startswith("Latency: p50") and f"p99 {plots.figures._ms(p99)} ms" in titles[1]
    totals = fig.axes[3].texts[0].get_text()
    assert f"predicted      {len(frame):,}" in totals and "dead-lettered  3" in totals and "alerts         1" in totals
    assert bars_total(fig.axes[0]) == len(frame)
    draw(fig)


def bars_total(ax):
    return int(sum(p.get_width() for c in ax.containers for p in c))


def test_live_view_before_any_prediction_and_without_drift():
    empty = pd.DataFrame({"predicted_label": [], "latency_ms": [], "predicted_ns": []})
    fig = plots.live_view(empty, None)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no predictions yet" in texts and "drift monitoring is off" in texts
    draw(fig)
