"""Token-level teachers (builders/teacher/token_teacher.py, masking.py): a tiny random masked LM
(BERT) and causal LM (GPT-2) scored through `distiller score`; masking deterministic per record
and part of the key; a causal LM's positions and targets; the sparse forms equal those of an
unbatched forward."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.sparse_tokens import topk_tokens
from distiller.builders.cache.store import TeacherCache
from distiller.builders.teacher.config import TeacherConfig
from distiller.builders.teacher.masking import Masker, mask_count
from distiller.builders.teacher.factory import make_teacher
from distiller.cli import main
from distiller.common.errors import UsageError

from .conftest import lm_texts


def teacher(model, head, tokens="topk:4", **kw):
    return make_teacher(TeacherConfig(model=model, head=head, tokens=tokens, device="cpu",
                                      num_threads=1, max_length=48, layers=(), **kw)).load()


@pytest.fixture(scope="module")
def texts():
    return lm_texts(400)[-60:]     # sentences the tokenizers were trained on


def test_masking_is_deterministic_per_record_and_part_of_the_key(tiny_mlm_dir, texts):
    a, b = teacher(tiny_mlm_dir, "masked_lm"), teacher(tiny_mlm_dir, "masked_lm")
    first, again = a.score(texts[:8]), b.score(list(reversed(texts[:8])))[::-1]
    for x, y in zip(first, again):       # another teacher object, other batches: same rows
        assert x["key"] == y["key"]
        for name in ("input_ids", "positions", "targets"):
            assert np.array_equal(x[name], y[name]), name
    seeded = teacher(tiny_mlm_dir, "masked_lm", mask_seed=1).score(texts[:8])
    denser = teacher(tiny_mlm_dir, "masked_lm", mask_prob=0.3).score(texts[:8])
    for x, s, d in zip(first, seeded, denser):
        assert len({x["key"], s["key"], d["key"]}) == 3      # other settings, other keys
        assert len(d["positions"]) > len(x["positions"]) == len(s["positions"])
    assert any(not np.array_equal(x["positions"], s["positions"]) for x, s in zip(first, seeded))
    assert a.spec().tokenization_settings["mask_prob"] == 0.15
    assert a.spec().differences(denser_spec := teacher(tiny_mlm_dir, "masked_lm",
                                                       mask_prob=0.3).spec()) == {
        "tokenization": (a.spec().tokenization, denser_spec.tokenization)}


def test_masked_inputs_follow_the_80_10_10_scheme(tiny_mlm_dir, texts):
    t = teacher(tiny_mlm_dir, "masked_lm")
    tok = t.tokenizer
    special = set(tok.all_special_ids)
    outcomes = {"mask": 0, "random": 0, "kept": 0}
    for out, ids in zip(t.score(texts), t.tokenize(texts)):
        original = ids[0]
        pos = out["positions"]
        maskable = sum(1 for i in original if int(i) not in special)
        assert len(pos) == mask_count(maskable, 0.15) >= 1
        assert np.array_equal(out["targets"], original[pos])
        assert not special & set(original[pos].tolist())          # specials never chosen
        rest = np.setdiff1d(np.arange(len(original)), pos)
        assert np.array_equal(out["input_ids"][rest], original[rest])   # only chosen change
        for p in pos:
            got = int(out["input_ids"][p])
            outcomes["mask" if got == tok.mask_token_id else
                     "kept" if got == original[p] else "random"] += 1
            assert got == tok.mask_token_id or got not in special
    total = sum(outcomes.values())
    assert 0.65 < outcomes["mask"] / total < 0.95 and outcomes["random"] and outcomes["kept"]


def test_masker_counts_and_replacements():
    assert [mask_count(n, 0.15) for n in (0, 1, 3, 10, 20, 100)] == [0, 1, 1, 2, 3, 15]
    m = Masker(mask_id=4, special_ids=[0, 1, 2, 3, 4], vocab_size=9, mask_prob=0.5)
    ids = np.array([2, 5, 6, 7, 8, 5, 6, 3], dtype=np.int32)
    out, pos, targets = m.mask(ids, "k")
    assert len(pos) == 3 and set(pos.tolist()) <= set(range(1, 7))
    assert all(int(x) in (4, 5, 6, 7, 8) for x in out[pos])
    assert all(np.array_equal(a, b) for a, b in zip(m.mask(ids, "k"), (out, pos, targets)))


def test_causal_positions_predict_the_next_token(tiny_gpt2_dir, texts):
    t = teacher(tiny_gpt2_dir, "causal_lm", tokens="topk:5")
    assert t.tokenizer.pad_token_id is None                 # GPT-2: padded with id 0, masked
    outs = t.score(texts[:6])
    for out, (ids, _, _) in zip(outs, t.tokenize(texts[:6])):
        n = len(ids)
        assert np.array_equal(out["input_ids"], ids)        # nothing masked
        assert np.array_equal(out["positions"], np.arange(n - 1))
        assert np.array_equal(out["targets"], ids[1:])
        with torch.no_grad():                                # the record alone, unpadded
            logits = t.model(input_ids=torch.from_numpy(ids.astype(np.int64))[None]).logits[0]
        want = topk_tokens(logits[:-1], 5)
        assert np.array_equal(out["tokens"].ids, want.ids)
        assert np.allclose(out["tokens"].logprobs.astype(np.float32),
                           want.logprobs.astype(np.float32), atol=2e-3)
        assert np.allclose(out["tokens"].log_tail, want.log_tail, atol=1e-4)


def test_masked_lm_distributions_are_those_at_the_masked_input(tiny_mlm_dir, texts):
    t = teacher(tiny_mlm_dir, "masked_lm", tokens="sample:7")
    out = t.score(texts[:3])[2]
    ids = torch.from_numpy(out["input_ids"].astype(np.int64))[None]
    with torch.no_grad():
        logits = t.model(input_ids=ids, token_type_ids=torch.zeros_like(ids)).logits[0]
    logp = torch.log_softmax(logits[torch.from_numpy(out["positions"].astype(np.int64))], -1)
    s = out["tokens"]
    assert s.positions == len(out["positions"]) and (s.counts.sum() == 7 * s.positions)
    rows = np.repeat(np.arange(s.positions), s.sizes)
    assert np.allclose(s.logprobs.astype(np.float32), logp[rows, s.ids.astype(np.int64)].numpy(),
                       atol=5e-3)


def test_the_vocabulary_projection_sees_only_the_masked_positions(tiny_mlm_dir, texts):
    """The LM head's output embeddings project the scored rows alone, not every position of the
    padded batch; the distributions are those at the masked input (test above)."""
    t = teacher(tiny_mlm_dir, "masked_lm", tokens="topk:4")
    seen = []
    handle = t.model.get_output_embeddings().register_forward_hook(
        lambda module, args, out: seen.append(tuple(args[0].shape)))
    try:
        outs = t.score(texts[:6])
    finally:
        handle.remove()
    scored = sum(len(o["positions"]) for o in outs)
    assert seen and sum(shape[0] for shape in seen) == scored
    assert all(len(shape) == 2 for shape in seen)      # [rows, hidden], no [B, W, hidden]
    assert scored < sum(len(o["input_ids"]) for o in outs) / 3


def score(capsys, *args):
    rc = main(["score", "--devices", "cpu", "--max-length", "48", *args])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


@pytest.mark.parametrize("kind,tokens", [("masked_lm", "topk:8"), ("masked_lm", "sample:12"),
                                         ("causal_lm", "topk:8"), ("causal_lm", "sample:12")])
def test_score_end_to_end(tmp_path, capsys, tiny_mlm_dir, tiny_gpt2_dir, texts, kind, tokens):
    data = tmp_path / "wiki.txt"
    data.write_text("\n".join(texts[:30]) + "\n", encoding="utf-8")
    model = tiny_mlm_dir if kind == "masked_lm" else tiny_gpt2_dir
    cache = str(tmp_path / "cache")
    args = ["--input", str(data), "--task", "wiki", "--kind", kind, "--text-a", "text",
            "--teacher", model, "--tokens", tokens, "--cache", cache, "--chunk", "8"]
    plan = score(capsys, *args, "--dry-run")["estimate"]
    first = score(capsys, *args)
    assert first["scored"] == 30 and first["corpus"] == "wiki-wiki"
    again = score(capsys, *args)                         # every key held: nothing scored
    assert again["scored"] == 0 and again["reused"] == 30
    opened = TeacherCache.open(cache)
    assert opened.spec.tokens == tokens and opened.spec.problem_type == kind
    assert opened.spec.layers == () and opened.verify() == []
    rows = opened.read_corpus("wiki-wiki")
    assert len(rows) == 30 and all(r["label"] is None for r in rows)
    reader = CacheReader(cache)
    got = reader.get_many([r["key"] for r in rows])
    positions = sum(len(g["positions"]) for g in got)
    assert opened.stats()["positions"] == positions > 0
    if kind == "causal_lm":                              # the estimate counts them exactly
        assert plan["positions"] == positions
        assert all(np.array_equal(g["targets"], g["input_ids"][1:]) for g in got)
    else:
        assert abs(plan["positions"] - positions) <= 0.2 * positions
    assert main(["cache", "stats", cache]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["bytes_per_token"] == pytest.approx(stats["bytes"] / positions)
    if tokens.startswith("topk"):
        assert stats["sparse_bytes_per_token"] == pytest.approx(8 * 4 + 4, rel=0.05)
    else:
        assert 0 < stats["sparse_bytes_per_token"] <= stats["sparse_bytes_per_token_estimate"] \
            + 1


def test_hidden_states_are_kept_beside_the_sparse_form(tmp_path, capsys, tiny_gpt2_dir, texts):
    data = tmp_path / "t.txt"
    data.write_text("\n".join(texts[:5]) + "\n", encoding="utf-8")
    cache = str(tmp_path / "cache")
    score(capsys, "--input", str(data), "--task", "t", "--kind", "causal_lm", "--text-a", "x",
          "--teacher", tiny_gpt2_dir, "--tokens", "topk:3", "--cache", cache, "--layers", "0,2")
    reader = CacheReader(cache)
    row = reader[0]
    assert sorted(row["hidden"]) == [0, 2]
    assert row["hidden"][2].shape == (len(row["input_ids"]), 32)


def test_refusals(tmp_path, capsys, tiny_mlm_dir, tiny_gpt2_dir, tiny_teacher_dir, texts):
    data = tmp_path / "t.txt"
    data.write_text("\n".join(texts[:3]) + "\n", encoding="utf-8")
    common = ["score", "--input", str(data), "--text-a", "x", "--cache", str(tmp_path / "c"),
              "--devices", "cpu"]
    for args, said in (
            (["--task", "t", "--kind", "masked_lm", "--teacher", tiny_mlm_dir],
             "give --tokens topk:K"),
            (["--task", "sst2", "--teacher", tiny_teacher_dir, "--tokens", "topk:2"],
             "is for language-model tasks"),
            (["--task", "t", "--kind", "masked_lm", "--teacher", tiny_mlm_dir, "--tokens",
              "topk:2", "--logits-topk", "2"], "--logits-topk trims")):
        assert main(common + args) == 2
        assert said in capsys.readouterr().err
    with pytest.raises(UsageError, match="has no AutoModelForMaskedLM head .* --kind causal_lm"):
        teacher(tiny_gpt2_dir, "masked_lm")
    with pytest.raises(UsageError, match="onnx backend"):
        teacher(tiny_mlm_dir, "masked_lm", backend="onnx")
    with pytest.raises(UsageError, match="more tokens than the teacher's vocabulary"):
        teacher(tiny_mlm_dir, "masked_lm", tokens="topk:5000")
    with pytest.raises(UsageError, match="mask_prob"):
        TeacherConfig(model=tiny_mlm_dir, head="masked_lm", tokens="topk:2", mask_prob=1.5)
    with pytest.raises(UsageError, match="mixup"):
        teacher(tiny_mlm_dir, "masked_lm").score_mixed([("a", "b", 0.5)])
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("kind,form", [("masked_lm", "topk:8"), ("causal_lm", "sample:12")])
def test_a_packed_zstd_cache_holds_what_a_plain_one_does_in_fewer_bytes(
        tmp_path, capsys, tiny_mlm_dir, tiny_gpt2_dir, texts, kind, form):
    data = tmp_path / "wiki.txt"
    data.write_text("\n".join(texts[:30]) + "\n", encoding="utf-8")
    model = tiny_mlm_dir if kind == "masked_lm" else tiny_gpt2_dir
    got, stats = {}, {}
    for tokens in (form, form + ":packed:zstd"):
        cache = str(tmp_path / tokens.replace(":", "-"))
        score(capsys, "--input", str(data), "--task", "wiki", "--kind", kind, "--text-a", "text",
              "--teacher", model, "--tokens", tokens, "--cache", cache)
        opened = TeacherCache.open(cache)
        assert opened.spec.tokens == tokens and opened.verify() == []
        keys = [r["key"] for r in opened.read_corpus("wiki-wiki")]
        got[tokens] = CacheReader(cache).get_many(keys)
        assert main(["cache", "stats", cache]) == 0
        stats[tokens] = json.loads(capsys.readouterr().out)
    plain, packed = got[form], got[form + ":packed:zstd"]
    for a, b in zip(plain, packed):        # the same records and positions; values rounded
        np.testing.assert_array_equal(a["positions"], b["positions"])
        column = "token_topk" if form.startswith("topk") else "token_sample"
        ta, tb = a[column], b[column]
        np.testing.assert_array_equal(ta.ids, tb.ids)
        np.testing.assert_allclose(tb.logprobs.astype(np.float32),
                                   ta.logprobs.astype(np.float32), atol=0.05)
    small, big = stats[form + ":packed:zstd"], stats[form]
    assert small["sparse_bytes_per_token"] < big["sparse_bytes_per_token"]
    assert small["bytes"] < big["bytes"]
