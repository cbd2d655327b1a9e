"""How well predictions match the truth: the one place kstream computes its quality scores.

Offline evaluation, held-out scores on model cards, run summaries and reports all call
:func:`score`, so the numbers they print are the same numbers.

Always: accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows
= true class, columns = predicted, in ``classes`` order). Binary: TPR (attacks detected), FAR
(benign flows flagged) and the NetML challenge's overall score TPR x (1 - FAR). Multi-class: the
NetML challenge's F1 (support-weighted), mAP (mean over classes of the average precision of the
one-hot predictions) and overall score F1 x mAP, computed as the challenge's evaluation defined
them (Barut et al. 2020, arXiv:2004.13006).

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

from kstream.datasets import ATTACK, BENIGN
from kstream.tables import text_table

__all__ = ["HEADLINE", "score", "format_scores"]

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
    rows = [{"class": c, **v} for c, v in scores["per_class"].items()]
    lines.append(text_table(rows, ["class", "precision", "recall", "f1-score", "support"]))
    return "\n".join(lines)
