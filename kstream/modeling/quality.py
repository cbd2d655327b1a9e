"""How well predictions match the truth: the one place kstream computes its quality scores.

Offline evaluation, held-out scores on model cards, run summaries and reports all call
:func:`score`, so the numbers they print are the same numbers.

Always: accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows
= true class, columns = predicted, in ``classes`` order). Binary: TPR (attacks detected), FAR
(benign flows flagged) and the NetML challenge's overall score TPR x (1 - FAR). Multi-class: the
NetML challenge's F1 (support-weighted), mAP (mean over classes of the average precision of the
one-hot predictions) and overall score F1 x mAP, computed as the challenge's evaluation defined
them (Barut et al. 2020, arXiv:2004.13006).

Beside any score, :func:`unseen_scores` says how many scored rows carry a feature vector the
model saw in training (``seen_in_training``) and gives the headline scores of the other rows
(``unseen``): a row whose vector was a training row's measures recall, not generalisation.

>>> m = score(["attack", "attack", "benign", "benign"], ["attack", "benign", "benign", "attack"], task="binary_class")
>>> m["accuracy"], m["tpr"], m["far"], m["netml_overall"]
(0.5, 0.5, 0.5, 0.25)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    f1_score,
)

from kstream.data import leakage
from kstream.data.datasets import ATTACK, BENIGN
from kstream.tables import text_table

__all__ = ["HEADLINE", "score", "unseen_scores", "scores_with_leakage", "format_leakage", "format_absent",
           "format_scores"]

#: The scalar scores a table of runs or models shows, in order.
HEADLINE = ("accuracy", "macro_f1", "tpr", "far", "netml_f1", "netml_map", "netml_overall")


def score(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    classes: Sequence[str] | None = None,
    task: str = "multi_class",
) -> dict[str, Any]:
    """Scores of ``y_pred`` against ``y_true``; ``classes`` fixes the order (default: every class seen)."""
    y_true = np.asarray(y_true).astype(str)
    y_pred = np.asarray(y_pred).astype(str)
    classes = list(classes) if classes is not None else sorted(set(y_true) | set(y_pred))
    out: dict[str, Any] = {"rows": int(len(y_true))}
    if not len(y_true):
        return out
    report = classification_report(y_true, y_pred, labels=classes, output_dict=True, zero_division=0)
    out.update(
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        per_class={c: {k: float(v) for k, v in report[c].items()} for c in classes},
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        classes=classes,
    )
    if task == "binary_class" and set(classes) <= {BENIGN, ATTACK}:
        attack, benign = y_true == ATTACK, y_true == BENIGN
        flagged = y_pred == ATTACK
        tpr = float(flagged[attack].mean()) if attack.any() else float("nan")
        far = float(flagged[benign].mean()) if benign.any() else float("nan")
        out.update(tpr=tpr, far=far, netml_overall=tpr * (1 - far))
    else:
        present = [c for c in classes if (y_true == c).any()]
        ap = [average_precision_score(y_true == c, y_pred == c) for c in present]
        f1w = float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0))
        m_ap = float(np.mean(ap)) if ap else float("nan")
        out.update(netml_f1=f1w, netml_map=m_ap, netml_overall=f1w * m_ap)
    return out


def unseen_scores(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    seen: Sequence[bool] | np.ndarray | None,
    task: str = "multi_class",
) -> dict[str, Any]:
    """``seen_in_training`` (rows whose vector a training row had) and ``unseen``: the row count and
    headline scores (:data:`HEADLINE`) of the other rows, macro-averaged over the classes those rows
    have or are predicted as. ``seen`` None means unknown: both are None.

    >>> u = unseen_scores(["a", "a", "b"], ["a", "b", "b"], [True, False, False])
    >>> u["seen_in_training"], u["unseen"]["rows"], u["unseen"]["accuracy"]
    (1, 2, 0.5)
    """
    if seen is None:
        return {"seen_in_training": None, "unseen": None}
    seen = np.asarray(seen, dtype=bool)
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    if not (len(seen) == len(y_true) == len(y_pred)):
        raise ValueError(f"seen has {len(seen)} rows for {len(y_true)} labels and {len(y_pred)} predictions")
    full = score(y_true[~seen], y_pred[~seen], None, task)
    return {"seen_in_training": int(seen.sum()),
            "unseen": {k: full[k] for k in ("rows", *HEADLINE) if k in full}}


def scores_with_leakage(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    classes: Sequence[str] | None,
    task: str,
    hashes: np.ndarray,
    seen: Sequence[bool] | np.ndarray | None,
) -> dict[str, Any]:
    """:func:`score`, :func:`unseen_scores`, and the ``ceiling`` (best accuracy any model can reach
    on these rows) with ``multi_label_rows`` (rows whose vector carries two labels or more among
    them); ``hashes`` are the rows' vector hashes (:func:`kstream.data.leakage.vector_hashes`).

    >>> s = scores_with_leakage(["a", "b", "a"], ["a", "a", "a"], None, "multi_class",
    ...                         np.array([1, 1, 2], dtype=np.uint64), [False, False, True])
    >>> s["accuracy"], s["seen_in_training"], s["unseen"]["accuracy"], s["ceiling"], s["multi_label_rows"]
    (0.6666666666666666, 1, 0.5, 0.6666666666666666, 2)
    """
    out = score(y_true, y_pred, classes, task)
    out.update(unseen_scores(y_true, y_pred, seen, task))
    found = leakage.conflicts(hashes, y_true)
    out.update(ceiling=found["ceiling"], multi_label_rows=found["multi_label_rows"])
    return out


def format_leakage(scores: dict[str, Any]) -> list[str]:
    """The lines that say how many scored rows were seen in training, the unseen rows' scores and
    the accuracy ceiling, as far as ``scores`` holds them.

    >>> s = {"rows": 4, "seen_in_training": 1, "ceiling": 0.75, "multi_label_rows": 2,
    ...      "unseen": {"rows": 3, "accuracy": 0.5, "macro_f1": 0.4}}
    >>> print("\\n".join(format_leakage(s)))
    seen in training: 1 of 4 rows (25.0%) have a feature vector the model was trained on
    unseen vectors: rows 3   accuracy 0.5000   macro-F1 0.4000
    ceiling: accuracy 0.7500 at best (2 rows on vectors labelled more than one way)
    """
    lines = []
    seen, rows = scores.get("seen_in_training", "absent"), scores.get("rows") or 0
    if seen is None:
        lines.append("seen in training: unknown (the model was saved without train-vectors.npy; retrain it)")
    elif seen == 0:
        lines.append(f"seen in training: none of the {rows} rows has a feature vector the model was trained on")
    elif seen != "absent":
        lines.append(f"seen in training: {seen} of {rows} rows ({seen / rows:.1%}) have a feature vector the "
                     "model was trained on")
        unseen = scores.get("unseen") or {}
        if unseen.get("rows"):
            extra = "".join(f"   {name} {unseen[key]:.4f}" for key, name in
                            (("tpr", "TPR"), ("far", "FAR"), ("netml_overall", "NetML overall")) if key in unseen)
            lines.append(f"unseen vectors: rows {unseen['rows']}   accuracy {unseen['accuracy']:.4f}   "
                         f"macro-F1 {unseen['macro_f1']:.4f}{extra}")
    if scores.get("ceiling") is not None and scores.get("rows"):
        lines.append(f"ceiling: accuracy {scores['ceiling']:.4f} at best ({scores.get('multi_label_rows', 0)} rows on "
                     "vectors labelled more than one way)")
    return lines


def format_absent(absent: dict[str, int]) -> str:
    """One line naming the scored classes no training row had (``classes_absent_from_training``).

    >>> format_absent({"DDoS": 500, "Botnet": 12})
    'absent from training: 2 scored class(es), 512 rows: DDoS (500), Botnet (12)'
    """
    return (f"absent from training: {len(absent)} scored class(es), {sum(absent.values())} rows: "
            + ", ".join(f"{name} ({n})" for name, n in absent.items()))


def format_scores(scores: dict[str, Any]) -> str:
    """The scores as a few lines for a terminal: headline numbers, then a per-class table.

    >>> print(format_scores(score(["a", "b"], ["a", "a"])).splitlines()[0])
    rows 2   accuracy 0.5000   macro-F1 0.3333
    """
    if not scores.get("rows"):
        return "rows 0"
    lines = [f"rows {scores['rows']}   accuracy {scores['accuracy']:.4f}   macro-F1 {scores['macro_f1']:.4f}"]
    if "tpr" in scores:
        lines.append(f"TPR {scores['tpr']:.4f}   FAR {scores['far']:.4f}   NetML overall TPR*(1-FAR) "
                     f"{scores['netml_overall']:.4f}")
    else:
        lines.append(f"NetML F1 {scores['netml_f1']:.4f}   mAP {scores['netml_map']:.4f}   overall "
                     f"{scores['netml_overall']:.4f}")
    missing = scores.get("missing_features") or []
    if missing:
        lines.append(f"imputed: {len(missing)} of the model's {scores.get('model_features', '?')} features are not in "
                     f"the data ({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''})")
    lines += format_leakage(scores)
    if scores.get("classes_absent_from_training"):
        lines.append(format_absent(scores["classes_absent_from_training"]))
    rows = [{"class": c, **v} for c, v in scores["per_class"].items()]
    lines.append(text_table(rows, ["class", "precision", "recall", "f1-score", "support"]))
    return "\n".join(lines)
