"""Token-level caches (builders/cache: spec `tokens`, shard columns, reader, stats) on synthetic
outputs: the round trip of ids, values and tail through a cache, what the reader returns, the
manifest's positions and bytes per token, and sentence-level caches left byte for byte as they
were."""
from __future__ import annotations

import ast
import hashlib
import json
import os
import zlib

import numpy as np
import pyarrow
import pytest
import torch

from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.shards import shard_schema
from distiller.builders.cache.sparse_tokens import sample_tokens, topk_tokens
from distiller.builders.cache.spec import CacheSpec
from distiller.builders.cache.store import TeacherCache
from distiller.common.errors import UsageError

from .synthetic import make_outputs, make_spec

V = 70


def token_spec(tokens="topk:4", problem_type="masked_lm", **kw):
    return make_spec(problem_type=problem_type, tokens=tokens, num_labels=V,
                     **{"layers": (0,), **kw})


def token_outputs(keys, spec, *, empty=()):
    """Outputs as a token-level teacher gives them (random logits; `empty`: keys with no
    predicted position)."""
    kind, k = spec.tokens.split(":")
    out = []
    for key in keys:
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        n = int(rng.integers(4, 14))
        ids = rng.integers(5, V, n).astype(np.int32)
        p = 0 if key in empty else int(rng.integers(1, n))
        positions = np.sort(rng.choice(n, size=p, replace=False)).astype(np.int32)
        logits = torch.from_numpy(rng.normal(size=(p, V)).astype(np.float32) * 3)
        tokens = topk_tokens(logits, int(k)) if kind == "topk" else \
            sample_tokens(logits, int(k), seed=zlib.crc32(key.encode()))
        out.append({"key": key, "input_ids": ids, "token_type_ids": np.zeros(n, np.int8),
                    "truncated": False, "positions": positions, "targets": ids[positions],
                    "tokens": tokens,
                    "hidden": {0: rng.normal(size=(n, 8)).astype(np.float32)}})
    return out


@pytest.mark.parametrize("tokens", ["topk:4", "sample:6"])
def test_token_rows_round_trip_through_a_cache_and_the_reader(tmp_path, tokens):
    spec = token_spec(tokens)
    cache = TeacherCache.create(str(tmp_path / "c"), spec)
    outs = token_outputs([f"k{i}" for i in range(9)], spec, empty={"k3"})
    cache.add(outs[:5])
    cache.add(outs[5:])
    reader = CacheReader(cache.path)
    assert len(reader) == 9
    for o in outs:
        row = reader.get(o["key"])
        for name in ("input_ids", "positions", "targets"):
            assert row[name].dtype == np.int32 and np.array_equal(row[name], o[name]), name
        assert np.array_equal(row["token_type_ids"], o["token_type_ids"])
        column = "token_topk" if tokens.startswith("topk") else "token_sample"
        assert "tokens" not in row and "logits" not in row
        got, want = row[column], o["tokens"]
        assert type(got) is type(want) and got.positions == len(o["positions"])
        names = ("ids", "logprobs", "log_tail") if tokens.startswith("topk") else \
            ("sizes", "ids", "counts", "logprobs")
        for name in names:
            a, b = getattr(got, name), getattr(want, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        assert np.allclose(row["hidden"][0], o["hidden"][0], atol=2e-2)   # float16 storage
    assert reader.get("k3")[column].positions == 0


def test_reader_rows_feed_pad_topk_and_pad_samples(tmp_path):
    from distiller.distill_train.token_losses import pad_samples, pad_topk

    for tokens in ("topk:4", "sample:6"):
        spec = token_spec(tokens)
        cache = TeacherCache.create(str(tmp_path / tokens.replace(":", "")), spec)
        outs = token_outputs(["a", "b", "c"], spec)
        cache.add(outs)
        rows = CacheReader(cache.path).get_many(["c", "a"])
        batch = pad_topk([r["token_topk"] for r in rows], 4) if tokens.startswith("topk") \
            else pad_samples([r["token_sample"] for r in rows])
        counts = [len(o["positions"]) for o in (outs[2], outs[0])]
        assert batch.mask.sum(1).tolist() == counts


def test_manifest_counts_positions_and_stats_give_bytes_per_token(tmp_path):
    spec = token_spec("topk:4")
    cache = TeacherCache.create(str(tmp_path / "c"), spec)
    outs = token_outputs([f"k{i}" for i in range(7)], spec)
    cache.add(outs)
    manifest = json.load(open(os.path.join(cache.path, "manifest.json")))
    assert manifest["spec"]["tokens"] == "topk:4"
    positions = sum(len(o["positions"]) for o in outs)
    assert [s["positions"] for s in manifest["shards"]] == [positions]
    stats = cache.stats()
    assert stats["positions"] == positions and stats["token_spec"] == "topk:4"
    assert stats["vocab_size"] == V and stats["problem_type"] == "masked_lm"
    assert stats["bytes_per_token"] == pytest.approx(stats["bytes"] / positions)
    assert stats["sparse_bytes_per_token_estimate"] == 4 * (2 + 2) + 4   # uint16 ids, float16
    assert cache.verify() == []


def test_adopted_and_merged_token_shards_keep_their_positions(tmp_path):
    spec = token_spec("sample:3")
    donor = TeacherCache.create(str(tmp_path / "donor"), spec)
    outs = token_outputs([f"k{i}" for i in range(6)], spec)
    info = donor.write_shard(outs)            # written, never committed: an interrupted build
    adopted = donor.adopt_uncommitted()
    assert [a.positions for a in adopted] == [info.positions] and info.positions == sum(
        len(o["positions"]) for o in outs)
    other = TeacherCache.create(str(tmp_path / "other"), spec)
    other.merge(donor.path)
    assert other.stats()["positions"] == info.positions and other.verify() == []


def test_token_spec_rules():
    spec = token_spec(" sample:006 ")
    assert spec.tokens == "sample:6" and spec.token_level
    assert CacheSpec.from_dict(spec.to_dict()) == spec
    assert spec.vocab_size == spec.num_labels == V      # an LM's labels are its tokens
    with pytest.raises(UsageError, match="has classes, not a vocabulary"):
        make_spec().vocab_size
    with pytest.raises(UsageError, match="needs its token spec"):
        make_spec(problem_type="causal_lm", num_labels=V)
    with pytest.raises(UsageError, match="is for the problem types"):
        make_spec(tokens="topk:2")
    with pytest.raises(UsageError, match="logits_topk must be 0"):
        token_spec(logits_topk=2)
    with pytest.raises(UsageError, match="more tokens than the teacher's vocabulary"):
        token_spec(f"topk:{V + 1}")
    with pytest.raises(UsageError, match="topk:K or sample:N"):
        token_spec("top:3")
    a, b = token_spec("topk:4"), token_spec("topk:8")
    assert set(a.differences(b)) == {"tokens"}


def test_a_row_whose_positions_and_distributions_disagree_is_refused(tmp_path):
    spec = token_spec("topk:4")
    cache = TeacherCache.create(str(tmp_path / "c"), spec)
    (o,) = token_outputs(["a"], spec)
    o["targets"] = o["targets"][:-1]
    with pytest.raises(UsageError, match="one of each per predicted position"):
        cache.add([o])
    (o,) = token_outputs(["b"], spec)
    o["positions"] = o["positions"] + len(o["input_ids"])
    with pytest.raises(UsageError, match="outside its"):
        cache.add([o])


# Sentence-level caches: written on tok-int (4b98956, before token-level caches) by the same
# code as below, under pyarrow 25.0.1 (whose version Parquet files record: another version
# writes other bytes, so the pin holds for that version only).
PINNED_PYARROW = "25.0.1"
PINNED = {"plain": "ec6ac919939fcb812da99b807cc6ae4ed933d30805d3acdf904dd8bcdc129f35",
          "logits_topk": "53d8dffd2bda1a16a55bffbd67f78fa8ce2eff188380343a355b72c720fa1c5d",
          "qa": "3b2ade613c11bb0e3f90fe0f35491c007ce105861209891f1c1bffc9238bc36f"}


def _cache_digest(path):
    h = hashlib.sha256()
    for root in ("manifest.json", "shards", "corpora"):
        full = os.path.join(path, root)
        files = [full] if os.path.isfile(full) else [os.path.join(full, n)
                                                     for n in sorted(os.listdir(full))]
        for f in files:
            with open(f, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


@pytest.mark.parametrize("name,kw", [("plain", {}), ("logits_topk", {"logits_topk": 2}),
                                     ("qa", {"problem_type": "question_answering",
                                             "num_labels": 2})])
def test_sentence_level_caches_keep_their_bytes(tmp_path, name, kw):
    spec = make_spec(**kw)
    assert "tokens" not in spec.to_dict() and not spec.token_level
    assert "positions" not in shard_schema(spec).names and "logits" in shard_schema(spec).names
    cache = TeacherCache.create(str(tmp_path / name), spec)
    outs = make_outputs([f"k{i}" for i in range(6)])
    if kw.get("problem_type"):
        for o in outs:
            o["logits"] = o["logits"][:2][None].repeat(len(o["input_ids"]), 0)
    cache.add(outs)
    cache.write_corpus("c", [{"id": o["key"], "key": o["key"], "label": 0} for o in outs])
    manifest = json.load(open(os.path.join(cache.path, "manifest.json")))
    assert all("positions" not in s for s in manifest["shards"])
    assert "positions" not in manifest["stats"] and "positions" not in cache.stats()
    if pyarrow.__version__ != PINNED_PYARROW:
        pytest.skip(f"the bytes were pinned under pyarrow {PINNED_PYARROW}")
    assert _cache_digest(cache.path) == PINNED[name]


def test_the_cache_never_imports_the_teacher():
    """builders.cache is read by trainers that load no teacher: no module of it imports
    builders.teacher (at the top or inside a function)."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "builders", "cache")
    offenders = []
    for name in sorted(os.listdir(root)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(root, name), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.ImportFrom):
                mods = ["." * node.level + (node.module or "")]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            for mod in mods:
                if "teacher" in mod.split("."):
                    offenders.append(f"{name}:{node.lineno} {mod}")
    assert os.path.exists(os.path.join(root, "spec.py")) and offenders == []
