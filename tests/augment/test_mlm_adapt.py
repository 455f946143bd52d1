"""`distiller mlm-adapt` on tiny data: a tiny random encoder without an MLM head (tokenizer trained
here on SST-2) becomes a masked LM that learns, resumes to the same weights after a kill, and is
loaded by the contextual augmenter."""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from distiller.augment import Job, create
from distiller.augment.mlm_adapt import MlmAdaptConfig, adapt
from distiller.augment.mlm_data import IGNORE, MaskingConfig, TextSource, apply_masks, collect_texts
from distiller.augment.mlm_heldout import Encoded, random_ids
from distiller.cli import main
from tests.tinymodels import tiny_bert_encoder

from .augment_testlib import SST2_DEV, SST2_TRAIN, sst2_sentences

RESULTS_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "results.py")
SPECIAL = ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "##")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_bert_encoder(tmp_path_factory.mktemp("tiny-encoder"),
                             sst2_sentences(SST2_TRAIN, 3000), vocab_size=400)


@pytest.fixture(scope="module")
def corpus_txt(tmp_path_factory):
    """2,000 real SST-2 training phrases, one per line (the plain-text input form)."""
    path = tmp_path_factory.mktemp("corpus") / "train.txt"
    path.write_text("\n".join(sst2_sentences(SST2_TRAIN, 2000)) + "\n", encoding="utf-8")
    return str(path)


def _config(tmp_path, encoder, **kw):
    base = dict(encoder=encoder, output=str(tmp_path / "mlm"), batch_size=32, lr=2e-3,
                progress=False, seed=5)
    base.update(kw)
    return MlmAdaptConfig(**base)


def test_masking_rates_whole_words_and_80_10_10(encoder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(encoder)
    texts = sst2_sentences(SST2_DEV, 300)
    replacements = random_ids(tok)
    for whole_word in (False, True):
        enc = Encoded(tok, texts, 128, whole_word)
        cfg = MaskingConfig(whole_word=whole_word)
        chosen = masked = randomised = kept = total = multi = 0
        for i, (ids, units) in enumerate(zip(enc.ids, enc.units)):
            inputs, labels = apply_masks(ids, units, cfg, np.random.default_rng(i),
                                         mask_id=tok.mask_token_id, random_ids=replacements)
            assert labels[0] == IGNORE and labels[-1] == IGNORE  # [CLS], [SEP] never chosen
            total += len(ids) - 2
            for unit in units:
                picked = {labels[p] != IGNORE for p in unit}
                assert len(picked) == 1  # a unit is chosen whole or not at all
                if not picked.pop():
                    continue
                chosen += len(unit)
                states = {"mask" if inputs[p] == tok.mask_token_id else
                          "kept" if inputs[p] == ids[p] else "random" for p in unit}
                if whole_word:  # every piece of a word gets the same treatment
                    assert len(states) == 1 or states <= {"kept", "random"}
                masked += sum(inputs[p] == tok.mask_token_id for p in unit)
                randomised += sum(inputs[p] not in (ids[p], tok.mask_token_id) for p in unit)
                kept += sum(inputs[p] == ids[p] for p in unit)
            multi += sum(len(u) > 1 for u in units)
        assert (multi > 100) == whole_word  # word pieces grouped only with whole-word masking
        assert 0.12 < chosen / total < 0.18, (whole_word, chosen / total)
        assert 0.74 < masked / chosen < 0.86 and 0.06 < randomised / chosen < 0.14
        assert 0.06 < kept / chosen < 0.14
    # the held-out form masks every chosen unit
    inputs, labels = apply_masks([2, 10, 11, 12, 3], [[1], [2], [3]], MaskingConfig(mask_prob=1),
                                 np.random.default_rng(0), mask_id=4, random_ids=replacements,
                                 always_mask=True)
    assert inputs == [2, 4, 4, 4, 3] and labels == [IGNORE, 10, 11, 12, IGNORE]


def test_collect_dedupes_excludes_and_holds_out(tmp_path):
    train = tmp_path / "pairs.tsv"
    train.write_text("sentence1\tsentence2\tlabel\n"
                     "A dog runs.\tThe  cat sleeps.\t0\n"
                     "a dog RUNS.\tA secret dev sentence.\t1\n"
                     "Birds sing at dawn.\tA dog runs.\t0\n"
                     "broken row without fields\n", encoding="utf-8")
    dev = tmp_path / "dev.txt"
    dev.write_text("a secret DEV sentence.\n", encoding="utf-8")
    held = tmp_path / "held.txt"
    held.write_text("the cat sleeps.\nSomething new.\n", encoding="utf-8")
    from distiller.taskdata import builtin_task

    src = [TextSource(str(train), builtin_task("rte"))]
    corpus = collect_texts(src, exclude=[TextSource(str(dev))], held_out=[TextSource(str(held))])
    assert corpus.train == ["A dog runs.", "Birds sing at dawn."]
    assert corpus.held_out == ["the cat sleeps.", "Something new."]
    assert corpus.stats["duplicates"] == 2 and corpus.stats["excluded"] == 1
    assert corpus.stats["held_out_overlap"] == 1 and sum(corpus.dead_letters.values()) == 1
    # without --eval a seeded share of the corpus is held out, the same every time
    a = collect_texts([TextSource(SST2_DEV)], held_out_fraction=0.1)
    b = collect_texts([TextSource(SST2_DEV)], held_out_fraction=0.1)
    assert a.held_out == b.held_out and 80 < len(a.held_out) < 90
    assert not set(a.held_out) & set(a.train)
    with pytest.raises(ValueError, match="cannot tell which column"):
        collect_texts([TextSource(str(tmp_path / "pairs.tsv"))])


def test_head_learns_and_the_model_drives_contextual(tmp_path, encoder, corpus_txt):
    corpus = collect_texts([TextSource(corpus_txt)], held_out=[TextSource(SST2_DEV)],
                           held_out_max=300)
    cfg = _config(tmp_path, encoder, epochs=2, unigram_bias=False, eval_every=40)
    losses = []
    result = adapt(cfg, corpus, on_step=lambda step, loss: losses.append(loss))
    first, last = result["history"][0], result["history"][-1]
    chance = 100.0 / 400
    assert first["step"] == 0 and last["step"] == result["steps"] == len(losses) == 2 * 63
    assert first["top1"] < 3 * chance  # a fresh head guesses
    assert last["loss"] < first["loss"] - 0.4  # held-out loss falls
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.3  # training loss falls (~0.4)
    assert last["top1"] > 8 * chance and last["top5"] > last["top1"]
    assert result["tied"] and result["fresh_head"]
    assert [h["reason"] for h in result["history"]].count("every") == 3
    saved = json.load(open(os.path.join(cfg.output, "mlm_adapt.json")))
    assert saved["final"] == last and not os.path.exists(os.path.join(cfg.output,
                                                                      "checkpoint.pt"))
    # the output is a standard masked LM: the contextual augmenter loads and uses it
    aug = create("contextual", model=cfg.output, aug_p=0.3)
    texts = sst2_sentences(SST2_DEV, 40)
    outs, stats = aug.augment([Job(t, seed=i) for i, t in enumerate(texts)])
    assert stats["changed"] >= 35 and not any(s in o for o in outs for s in SPECIAL)
    # run again: the finished model is reported, not trained again
    assert adapt(cfg, corpus)["reused"]


PAIRED = ("amber basil cedar dune ember fjord grove heath inlet jade knoll larch marsh nectar "
          "onyx pine quartz reed slate thorn").split()


def _paired_texts(n: int, seed: int):
    """Texts made of word pairs that always occur together ("amber basil", "cedar dune", ...):
    a masked word is given by its neighbour, a unigram guess is right 1 time in 20."""
    import random

    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        units = [rng.randrange(len(PAIRED) // 2) for _ in range(rng.randint(3, 7))]
        texts.append(" ".join(f"{PAIRED[2 * u]} {PAIRED[2 * u + 1]}" for u in units))
    return texts


def test_the_head_learns_from_context_far_above_the_unigram_baseline(tmp_path):
    encoder = tiny_bert_encoder(tmp_path / "enc", _paired_texts(500, 0), vocab_size=120)
    (tmp_path / "train.txt").write_text("\n".join(_paired_texts(2000, 1)) + "\n")
    (tmp_path / "dev.txt").write_text("\n".join(_paired_texts(200, 2)) + "\n")
    corpus = collect_texts([TextSource(str(tmp_path / "train.txt"))],
                           held_out=[TextSource(str(tmp_path / "dev.txt"))])
    result = adapt(_config(tmp_path, encoder, epochs=10), corpus)
    base, first, last = result["unigram_baseline"], result["history"][0], result["history"][-1]
    assert base["top1"] < 8 and first["top1"] < 10      # one word in 20: a guess
    assert last["top1"] > base["top1"] + 50             # measured: 86 vs 5
    assert last["top5"] > base["top5"] + 40


class _Kill(Exception):
    pass


def test_killed_and_resumed_equals_uninterrupted(tmp_path, encoder, corpus_txt):
    import torch
    from safetensors.torch import load_file

    corpus = collect_texts([TextSource(corpus_txt)], held_out_fraction=0.05, held_out_max=100)
    kw = dict(max_steps=18, save_every=5, eval_every=7, batch_size=64,
              masking=MaskingConfig(whole_word=True))
    full = adapt(_config(tmp_path / "a", encoder, **kw), corpus)
    cfg = _config(tmp_path / "b", encoder, **kw)

    def kill(step, loss):
        if step == 13:
            raise _Kill()

    with pytest.raises(_Kill):
        adapt(cfg, corpus, on_step=kill)
    assert os.path.exists(os.path.join(cfg.output, "checkpoint.pt"))
    assert not os.path.exists(os.path.join(cfg.output, "model.safetensors"))
    steps = []
    resumed = adapt(cfg, corpus, on_step=lambda step, loss: steps.append(step))
    assert steps[0] == 11  # from the checkpoint at step 10
    drop = ("minutes", "cpu_minutes")
    assert [{k: v for k, v in h.items() if k not in drop} for h in resumed["history"]] == \
        [{k: v for k, v in h.items() if k not in drop} for h in full["history"]]
    a = load_file(os.path.join(full["config"]["output"], "model.safetensors"))
    b = load_file(os.path.join(cfg.output, "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("damage", ["crafted", "truncated"])
def test_a_crafted_or_truncated_checkpoint_is_one_line(tmp_path, encoder, corpus_txt, capsys,
                                                       monkeypatch, damage):
    """The output's checkpoint.pt is loaded as data only: a pickle payload in it does not run
    (crafted.MARKER is not created), a cut file is one line; --fresh, as it says, starts over."""
    import torch

    from tests.crafted import MARKER, Payload, assert_live

    out = tmp_path / "out"
    out.mkdir()
    ckpt = str(out / "checkpoint.pt")
    if damage == "crafted":
        torch.save({"state": {"step": 1}, "model": {}, "x": Payload()}, ckpt)
        assert_live(lambda p: torch.load(p, weights_only=False), ckpt, str(tmp_path / "probe"))
        expected = "is not a checkpoint that loads as data only (the unpickler refused: "
    else:
        torch.save({"state": {"step": 1}, "model": {"w": torch.zeros(4096)}}, ckpt)
        with open(ckpt, "r+b") as fh:
            fh.truncate(os.path.getsize(ckpt) // 2)
        expected = "is damaged or truncated and cannot be resumed ("
    monkeypatch.chdir(tmp_path)
    args = ["mlm-adapt", "--encoder", encoder, "--input", corpus_txt, "--max-steps", "2",
            "--eval-size", "20", "--no-progress", "--threads", "1", "--device", "cpu",
            "--output", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert not (tmp_path / MARKER).exists() and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1]
    assert errors[0].startswith(f"distiller mlm-adapt: error: {ckpt} {expected}")
    assert errors[0].endswith(f"start over with --fresh (or delete {str(out)!r})")
    assert main(args + ["--fresh"]) == 0


def test_cli_reads_tasks_freezes_and_refuses_clearly(tmp_path, encoder, corpus_txt, capsys):
    from safetensors.torch import load_file

    out = str(tmp_path / "cli")
    glue = tmp_path / "SST-2"  # a folder named after a built-in task: read as that task
    glue.mkdir()
    with open(SST2_TRAIN, encoding="utf-8") as fh:
        (glue / "train.tsv").write_text("".join(next(fh) for _ in range(301)), encoding="utf-8")
    args = ["mlm-adapt", "--encoder", encoder, "--input", str(glue / "train.tsv"), corpus_txt,
            "--exclude", SST2_DEV, "--eval", SST2_DEV, "--eval-size", "50", "--max-steps", "4",
            "--freeze-up-to", "1", "--no-progress", "--threads", "1", "--device", "cpu",
            "--output", out]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["steps"] == 4 and len(summary["curve"]) == 2
    assert "training texts" in captured.err
    before, after = load_file(os.path.join(encoder, "model.safetensors")), \
        load_file(os.path.join(out, "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    assert (before[key] == after["bert." + key]).all()  # frozen (and tied to the decoder)
    layer = "encoder.layer.{}.attention.self.query.weight"
    assert (before[layer.format(0)] == after["bert." + layer.format(0)]).all()
    assert not (before[layer.format(1)] == after["bert." + layer.format(1)]).all()
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["reused"]
    # another run's settings in the same output: one line, no traceback
    assert main(args + ["--lr", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert "built by another mlm-adapt run" in err and "Traceback" not in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["mlm-adapt", "--encoder", encoder, "--input", corpus_txt, "--output",
                 str(foreign), "--no-progress"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["mlm-adapt", "--encoder", encoder, "--input", corpus_txt, "--output",
                 str(tmp_path / "x"), "--freeze-up-to", "5", "--no-progress"]) == 2
    assert "has only 2 layers" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():  # a GPU asked for where there is none: one line
        assert main(["mlm-adapt", "--encoder", encoder, "--input", corpus_txt, "--output",
                     str(tmp_path / "y"), "--device", "cuda", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "no CUDA GPU" in err and "Traceback" not in err


def test_a_missing_masked_lm_says_how_to_build_one(tmp_path, capsys):
    missing = str(tmp_path / "runs" / "mlm" / "none")
    aug = create("contextual", model=missing)
    with pytest.raises(FileNotFoundError, match="distiller mlm-adapt"):
        aug.load()
    # the command line: one line, exit 2, nothing written
    out = tmp_path / "out.jsonl"
    assert main(["augment", "--input", SST2_DEV, "--task", "sst2", "--limit", "5", "--policy",
                 f"contextual(model={missing}):0.3", "--output", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "mlm-adapt" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    # a build refuses before its teacher loads or any worker starts: one line, no cache
    from tests.tinymodels import tiny_bert_classifier

    teacher = tiny_bert_classifier(tmp_path / "teacher", sst2_sentences(SST2_DEV, 200))
    cache = tmp_path / "cache"
    assert main(["build", "--input", SST2_DEV, "--task", "sst2", "--teacher", teacher,
                 "--cache", str(cache), "--augment", f"contextual(model={missing}):0.3",
                 "--limit", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "mlm-adapt" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not cache.exists()
    # the results script refuses before it trains a teacher or builds a cache
    spec = importlib.util.spec_from_file_location("results_script", RESULTS_SCRIPT)
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    runs = tmp_path / "results"
    assert results.main(["--out", str(runs), "--tasks", "sst2,rte", "--configs",
                         "nokd,pred+ctx,pred+ctx+swap", "--mlm-model", missing]) == 2
    err = capsys.readouterr().err
    assert "pred+ctx, pred+ctx+swap need the masked LM" in err and "make mlm" in err
    assert not runs.exists()
