"""Dataset features on real GLUE rows: sizes, labels, the bag-of-words prior, cached embeddings."""
import numpy as np
import pytest

from distiller.autodistiller.features import (HashingEncoder, MiniLMEncoder, compute_features,
                                    load_task_records)
from distiller.taskdata.paths import shared_data

GLUE = shared_data("glue")


class CountingEncoder(HashingEncoder):
    def __init__(self):
        super().__init__(dim=8)
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return super().encode(texts)


def test_classification_features_and_embedding_cache(tmp_path):
    train, dev, regression = load_task_records(f"{GLUE}/SST-2", "sst2", limit=1500)
    assert not regression and len(train) == 1500
    enc = CountingEncoder()
    feats = compute_features(train, dev, encoder=enc, sample_size=64, cache_dir=str(tmp_path))
    assert feats.n_examples == 1500 and feats.n_labels == 2 and not feats.is_regression
    assert 5 < feats.mean_length < 15  # SST-2 phrases are short
    majority = max(np.mean([r["label"] for r in dev]), 1 - np.mean([r["label"] for r in dev]))
    assert feats.difficulty_prior > majority + 0.1  # bag of words does learn sentiment
    assert len(feats.embedding) == 8 and enc.calls == 1
    again = compute_features(train, dev, encoder=enc, sample_size=64, cache_dir=str(tmp_path))
    assert enc.calls == 1 and again == feats  # the cached embedding is reused
    other = compute_features(train, dev, encoder=enc, sample_size=64, seed=1,
                             cache_dir=str(tmp_path))
    assert enc.calls == 2 and other.embedding != feats.embedding  # another sample


def test_a_cached_embedding_is_read_as_numbers_only(tmp_path, monkeypatch):
    """An embedding cache file replaced by a pickled object array is refused, unrun."""
    import os

    from tests.crafted import MARKER, Payload

    train, dev, _ = load_task_records(f"{GLUE}/SST-2", "sst2", limit=200)
    cache = tmp_path / "emb"
    compute_features(train, dev, encoder=HashingEncoder(8), sample_size=16, cache_dir=str(cache))
    (name,) = os.listdir(cache)
    np.save(cache / name, np.array([Payload()], dtype=object), allow_pickle=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        compute_features(train, dev, encoder=HashingEncoder(8), sample_size=16,
                         cache_dir=str(cache))
    assert not (tmp_path / MARKER).exists()
    np.load(cache / name, allow_pickle=True)  # the payload is live: unpickled, it runs
    assert (tmp_path / MARKER).exists()


def test_regression_pairs():
    train, dev, regression = load_task_records(f"{GLUE}/STS-B", "stsb", limit=800)
    assert regression
    feats = compute_features(train, dev, regression=regression, encoder=HashingEncoder(4))
    assert feats.is_regression and feats.n_labels == 0
    assert -1.0 <= feats.difficulty_prior <= 1.0 and feats.difficulty_prior > 0.05
    assert feats.mean_length > 10  # two sentences per example
    row = feats.to_row()
    assert set(row) == {"n_examples", "n_labels", "is_regression", "mean_length",
                        "difficulty_prior", "embedding"}


def test_errors():
    with pytest.raises(ValueError, match="labelled train and dev records"):
        compute_features([], [{"text_a": "x", "text_b": None, "label": 1}],
                         encoder=HashingEncoder())
    with pytest.raises(FileNotFoundError, match="train.tsv"):
        load_task_records("/nonexistent-dir", "rte")


@pytest.mark.slow
def test_minilm_encoder_embeds_meaning():
    enc = MiniLMEncoder()
    x = enc.encode(["a cat sat on the mat", "a kitten sits on a rug",
                    "stock markets fell sharply"])
    assert x.shape == (3, 384)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.3
