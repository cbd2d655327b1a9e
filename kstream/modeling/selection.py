"""Feature selection learnt on the training rows, saved inside the model's Pipeline.

This is the "SELECTED" step that the original system, whose dataset names
(``SELECTED_CICIDS``, ``SELECTED_NET``) kstream still accepts, named but never
built. The dataset loaders already keep identifiers, addresses, timestamps and
label-derived columns out of the features (see :mod:`kstream.data.datasets`);
what is left is pruned here, on the training rows only:

- constant columns (a single value, or nothing but missing values) carry no signal;
- a column identical to an earlier one adds nothing but weight.

Because the selector is the Pipeline's first step, the detector keeps sending
the card's full feature list and the saved model drops the same columns it
dropped in training.

>>> x = np.array([[1.0, 5.0, 1.0, 0.0], [2.0, 5.0, 2.0, 1.0], [3.0, 5.0, 3.0, 0.0]])
>>> sel = DropConstantAndDuplicate(["a", "const", "a_copy", "b"]).fit(x)
>>> sel.kept_names_, sel.report()["dropped"]
(['a', 'b'], {'constant': ['const'], 'duplicate': {'a_copy': 'a'}})
>>> sel.transform(x).shape
(3, 2)
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["DropConstantAndDuplicate"]


class DropConstantAndDuplicate(TransformerMixin, BaseEstimator):
    """Drop columns that are constant, or duplicates of an earlier column, in the training data.

    ``feature_names`` (optional) name the input columns for the report.
    """

    def __init__(self, feature_names: list[str] | None = None) -> None:
        self.feature_names = feature_names

    def fit(self, x: Any, y: Any = None) -> DropConstantAndDuplicate:
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[1]
        names = list(self.feature_names) if self.feature_names is not None else [f"x{i}" for i in range(n)]
        if len(names) != n:
            raise ValueError(f"{len(names)} feature names for {n} columns")
        constant: list[str] = []
        duplicate: dict[str, str] = {}
        seen: dict[bytes, list[int]] = {}
        keep: list[int] = []
        for j in range(n):
            col = x[:, j]
            present = col[~np.isnan(col)]
            if present.size == 0 or np.all(present == present[0]):
                constant.append(names[j])
                continue
            # hash to find candidate twins fast; equality (NaN == NaN) is then checked exactly
            digest = hashlib.blake2b(np.nan_to_num(col, nan=0.0).tobytes(), digest_size=16).digest()
            twin = next(
                (k for k in seen.get(digest, []) if np.array_equal(x[:, k], col, equal_nan=True)),
                None,
            )
            if twin is not None:
                duplicate[names[j]] = names[twin]
                continue
            seen.setdefault(digest, []).append(j)
            keep.append(j)
        self.n_features_in_ = n
        self.keep_ = np.array(keep, dtype=np.intp)
        self.kept_names_ = [names[j] for j in keep]
        self.dropped_: dict[str, Any] = {"constant": constant, "duplicate": duplicate}
        return self

    def transform(self, x: Any) -> np.ndarray:
        check_is_fitted(self, "keep_")
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {x.shape[1]}")
        return x[:, self.keep_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "keep_")
        return np.array(self.kept_names_, dtype=object)

    def report(self) -> dict[str, Any]:
        """What the selection kept and dropped, for the model card."""
        check_is_fitted(self, "keep_")
        return {
            "input": self.n_features_in_,
            "kept": len(self.kept_names_),
            "dropped": {"constant": list(self.dropped_["constant"]), "duplicate": dict(self.dropped_["duplicate"])},
            "reasons": {
                "constant": "one value (or only missing values) over the training rows: no signal",
                "duplicate": "identical to an earlier column over the training rows (value -> the column kept)",
            },
        }
