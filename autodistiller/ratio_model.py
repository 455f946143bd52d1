"""The recommender's fitted regressor as plain data, evaluated with numpy.

`AutoDistiller.fit` trains a scikit-learn pipeline (one-hot categorical columns, numeric columns
as they are, PCA of the dataset embedding, then gradient-boosted regression trees);
`RatioModel.from_pipeline` keeps only its numbers: the categories of each one-hot column, the
PCA mean and components, the initial prediction, the learning rate and every tree's nodes. A
model file therefore holds JSON numbers and strings only, so reading one runs no code from it
(unlike a pickle or joblib file), and `from_dict` checks every field before any is used (tree
children point forward, so evaluation always ends at a leaf).

`predict` repeats scikit-learn's arithmetic step by step (features cast to float32 before the
trees compare them with their thresholds, PCA projected then centred in float32, the trees'
values scaled by the learning rate and added in order), so it gives the fitted pipeline's
predictions exactly (tests/autodistiller/test_ratio_model.py).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from distiller.common.errors import UsageError

__all__ = ["RatioModel", "Tree"]

LEAF = -1  # scikit-learn's children index of a leaf


@dataclasses.dataclass(frozen=True)
class Tree:
    """One regression tree: per node (root first) the feature compared and its threshold
    (`x[feature] <= threshold` goes left), the children (LEAF at leaves) and the value."""

    feature: Any     # int64 [n_nodes]
    threshold: Any   # float64 [n_nodes]
    left: Any        # int64 [n_nodes]
    right: Any       # int64 [n_nodes]
    value: Any       # float64 [n_nodes]

    def leaf_values(self, x) -> Any:
        """The value of the leaf each row of `x` (float32 [n_rows, n_features]) reaches."""
        import numpy as np

        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        inner = self.left[node] != LEAF
        while inner.any():  # children point forward: at most n_nodes rounds
            at, idx = node[inner], rows[inner]
            go_left = x[idx, self.feature[at]] <= self.threshold[at]
            node[idx] = np.where(go_left, self.left[at], self.right[at])
            inner = self.left[node] != LEAF
        return self.value[node]

    def to_dict(self) -> Dict[str, List[Any]]:
        return {"feature": self.feature.tolist(), "threshold": self.threshold.tolist(),
                "left": self.left.tolist(), "right": self.right.tolist(),
                "value": self.value.tolist()}


@dataclasses.dataclass(frozen=True)
class RatioModel:
    """The regressor of `AutoDistiller`: its input columns and fitted numbers (module doc)."""

    categorical: Tuple[Tuple[str, Tuple[str, ...]], ...]  # (column, its categories), in order
    numeric: Tuple[str, ...]
    pca_mean: Any          # float32 [embedding_dim], None without the embedding PCA
    pca_components: Any    # float32 [n_components, embedding_dim], None likewise
    init: float            # the prediction before any tree (the mean training ratio)
    learning_rate: float
    trees: Tuple[Tree, ...]

    @property
    def n_features(self) -> int:
        pca = 0 if self.pca_components is None else len(self.pca_components)
        return sum(len(cats) for _, cats in self.categorical) + len(self.numeric) + pca

    def features(self, design) -> Any:
        """The trees' input, float32 [n_rows, n_features], from a design frame (categorical
        columns as str, numeric as float, the embedding as emb_0..emb_{d-1})."""
        import numpy as np

        parts = []
        for column, cats in self.categorical:  # unknown categories: all zeros
            values = design[column].to_numpy(dtype=object)
            parts.append(np.stack([values == c for c in cats], axis=1).astype(np.float64))
        parts.append(design[list(self.numeric)].to_numpy(dtype=np.float64))
        if self.pca_components is not None:
            emb = design[[f"emb_{i}" for i in range(len(self.pca_mean))]]
            emb = np.asarray(emb, dtype=np.float32)
            projected = emb @ self.pca_components.T
            projected -= self.pca_mean.reshape(1, -1) @ self.pca_components.T
            parts.append(projected)
        return np.hstack(parts).astype(np.float32)

    def predict(self, design) -> Any:
        """float64 [n_rows]: the predicted ratios of a design frame's rows."""
        import numpy as np

        x = self.features(design)
        raw = np.full(len(x), self.init, dtype=np.float64)
        for tree in self.trees:
            raw += self.learning_rate * tree.leaf_values(x)
        return raw

    @classmethod
    def from_pipeline(cls, pipeline, *, categorical: Sequence[str], numeric: Sequence[str]
                      ) -> "RatioModel":
        """The numbers of a fitted pipeline as AutoDistiller.fit builds it (steps "features": a
        ColumnTransformer of "cat" OneHotEncoder, "num" passthrough and optionally "emb" PCA;
        "gbr": a squared-error GradientBoostingRegressor)."""
        import numpy as np

        columns, gbr = pipeline.named_steps["features"], pipeline.named_steps["gbr"]
        encoder = columns.named_transformers_["cat"]
        pca = columns.named_transformers_.get("emb")
        if encoder.drop_idx_ is not None or getattr(encoder, "infrequent_categories_", None) \
                or gbr.loss != "squared_error" or getattr(pca, "whiten", False):
            raise UsageError("the pipeline is not the one AutoDistiller.fit builds (one-hot "
                             "without dropped or infrequent categories, PCA without whitening, "
                             "squared-error boosting)")
        cats = tuple((col, tuple(str(c) for c in found))
                     for col, found in zip(categorical, encoder.categories_))
        expected = [f"cat__{col}_{c}" for col, found in cats for c in found]
        expected += [f"num__{col}" for col in numeric]
        if pca is not None:
            expected += [f"emb__pca{i}" for i in range(pca.n_components_)]
        if list(columns.get_feature_names_out()) != expected:
            raise UsageError("the pipeline's feature columns are not one-hot, numeric, PCA in "
                             "that order")
        trees = []
        for estimator in gbr.estimators_[:, 0]:
            t = estimator.tree_
            trees.append(Tree(feature=np.asarray(t.feature, dtype=np.int64),
                              threshold=np.asarray(t.threshold, dtype=np.float64),
                              left=np.asarray(t.children_left, dtype=np.int64),
                              right=np.asarray(t.children_right, dtype=np.int64),
                              value=np.asarray(t.value[:, 0, 0], dtype=np.float64)))
        return cls(categorical=cats, numeric=tuple(numeric),
                   pca_mean=None if pca is None else np.asarray(pca.mean_, dtype=np.float32),
                   pca_components=(None if pca is None
                                   else np.asarray(pca.components_, dtype=np.float32)),
                   init=float(np.ravel(gbr.init_.constant_)[0]),
                   learning_rate=float(gbr.learning_rate), trees=tuple(trees))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready numbers and strings (float32 values written exactly as doubles)."""
        embedding = None if self.pca_mean is None else {
            "mean": self.pca_mean.tolist(), "components": self.pca_components.tolist()}
        return {"categorical": [[col, list(cats)] for col, cats in self.categorical],
                "numeric": list(self.numeric), "embedding_pca": embedding, "init": self.init,
                "learning_rate": self.learning_rate,
                "trees": [tree.to_dict() for tree in self.trees]}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "RatioModel":
        """A model from `to_dict`'s form, every field checked (ValueError naming `where` and the
        field that is wrong)."""
        import numpy as np

        data = _mapping(data, "model", where)
        categorical = []
        for i, entry in enumerate(_list(data.get("categorical"), "model.categorical", where)):
            ok = (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                  and isinstance(entry[1], list) and entry[1]
                  and all(isinstance(c, str) for c in entry[1]))
            if not ok:
                raise UsageError(f"{where}: model.categorical[{i}] must be [column, [category, "
                                 "...]] (strings)")
            categorical.append((entry[0], tuple(entry[1])))
        numeric = _list(data.get("numeric"), "model.numeric", where)
        if not all(isinstance(c, str) for c in numeric):
            raise UsageError(f"{where}: model.numeric must be a list of column names")
        mean = components = None
        if data.get("embedding_pca") is not None:
            pca = _mapping(data["embedding_pca"], "model.embedding_pca", where)
            mean = _floats(pca.get("mean"), "model.embedding_pca.mean", where, np.float32)
            components = _floats(pca.get("components"), "model.embedding_pca.components",
                                 where, np.float32, ndim=2)
            if mean.ndim != 1 or components.shape[1:] != mean.shape or not len(components):
                raise UsageError(f"{where}: model.embedding_pca: components must be "
                                 f"[n, {len(mean)}] for a mean of {len(mean)}")
        init = _number(data.get("init"), "model.init", where)
        rate = _number(data.get("learning_rate"), "model.learning_rate", where)
        model = cls(categorical=tuple(categorical), numeric=tuple(numeric), pca_mean=mean,
                    pca_components=components, init=init, learning_rate=rate, trees=())
        trees = tuple(_tree(t, f"model.trees[{i}]", where, model.n_features)
                      for i, t in enumerate(_list(data.get("trees"), "model.trees", where)))
        return dataclasses.replace(model, trees=trees)


def _tree(data: Any, field: str, where: str, n_features: int) -> Tree:
    """A Tree whose nodes are checked: equal lengths, children after their parent and inside
    the tree (so every path ends at a leaf), inner nodes' features in range, finite numbers."""
    import numpy as np

    data = _mapping(data, field, where)
    feature = _ints(data.get("feature"), f"{field}.feature", where)
    left = _ints(data.get("left"), f"{field}.left", where)
    right = _ints(data.get("right"), f"{field}.right", where)
    threshold = _floats(data.get("threshold"), f"{field}.threshold", where, np.float64,
                        finite=False)
    value = _floats(data.get("value"), f"{field}.value", where, np.float64)
    n = len(value)
    if n == 0 or any(len(a) != n for a in (feature, left, right, threshold)):
        raise UsageError(f"{where}: {field}: feature, threshold, left, right and value must be "
                         "equally long lists, one entry per node")
    index = np.arange(n)
    leaf = left == LEAF
    inner = ~leaf
    bad = (leaf & (right != LEAF)) | (inner & ((left <= index) | (left >= n) | (right <= index)
                                               | (right >= n) | (feature < 0)
                                               | (feature >= n_features)
                                               | ~np.isfinite(threshold)))
    if bad.any():
        node = int(np.flatnonzero(bad)[0])
        raise UsageError(f"{where}: {field}: node {node} is malformed (children must come after "
                         f"their node and inside the tree, features in [0, {n_features}))")
    return Tree(feature=feature, threshold=threshold, left=left, right=right, value=value)


def _mapping(value: Any, field: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: {field} must be a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, field: str, where: str) -> List[Any]:
    if not isinstance(value, list):
        raise UsageError(f"{where}: {field} must be a list, got {type(value).__name__}")
    return value


def _number(value: Any, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise UsageError(f"{where}: {field} must be a finite number, got {value!r}")
    return float(value)


def _ints(value: Any, field: str, where: str):
    import numpy as np

    items = _list(value, field, where)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise UsageError(f"{where}: {field} must be a list of integers")
    return np.asarray(items, dtype=np.int64)


def _floats(value: Any, field: str, where: str, dtype, *, ndim: int = 1,
            finite: bool = True):
    """A numeric array of `ndim` dimensions from nested lists of numbers."""
    import numpy as np

    rows = _list(value, field, where)
    flat: Optional[List[Any]] = rows
    if ndim == 2:
        if not all(isinstance(r, list) for r in rows) or len({len(r) for r in rows}) > 1:
            raise UsageError(f"{where}: {field} must be a list of equally long lists")
        flat = [v for r in rows for v in r]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise UsageError(f"{where}: {field} must hold numbers only")
    out = np.asarray(rows, dtype=dtype)
    if ndim == 2 and out.ndim == 1:  # an empty list of rows
        out = out.reshape(0, 0)
    if finite and not np.isfinite(out).all():
        raise UsageError(f"{where}: {field} holds a value that is not a finite number")
    return out
