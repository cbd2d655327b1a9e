"""Figures of streaming runs, for researchers: functions that take data frames and return figures.

- :mod:`kstream.analysis.plots.figures`: a finished run's predictions: class counts, latency histogram,
  confusion matrix, throughput over time, learning curve, and :func:`save_figures`;
- :mod:`kstream.analysis.plots.live_view`: a run while it streams (:func:`live_view`), its drift windows
  (:func:`drift_windows`) and its prequential windows (:func:`prequential_windows`).

Every name is importable from ``kstream.analysis.plots`` itself (``plots.class_counts(frame)``).
"""

from kstream.analysis.plots.figures import (
    ANNOTATE_MAX_CLASSES,
    BLACK,
    BLUE,
    CURVE_SCORES,
    ORANGE,
    SKY,
    VERMILLION,
    class_counts,
    confusion_matrix,
    confusion_matrix_from_counts,
    latency_histogram,
    learning_curve,
    save_figures,
    throughput_over_time,
)
from kstream.analysis.plots.live_view import drift_windows, live_view, prequential_windows

__all__ = ["class_counts", "latency_histogram", "confusion_matrix", "confusion_matrix_from_counts",
           "throughput_over_time", "learning_curve", "save_figures", "drift_windows", "live_view",
           "prequential_windows", "ANNOTATE_MAX_CLASSES", "CURVE_SCORES", "BLUE", "ORANGE", "VERMILLION", "SKY",
           "BLACK"]
