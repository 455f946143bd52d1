"""Scoring LM students (distill_train/lm_eval.py): top-1 and perplexity against values computed
by hand, and `distiller evaluate` on text files for a masked and a causal LM."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from distiller.builders.cache.sparse_tokens import TopKTokens
from distiller.cli import main
from distiller.distill_train.lm_eval import lm_metrics
from distiller.distill_train.lm_student import lm_auto_class
from distiller.distill_train.token_data import collate_tokens, token_item
from distiller.distill_train.token_inputs import text_inputs


class _Fixed(torch.nn.Module):
    """A "model" whose logits are given: [1, L, V] per batch, in order."""

    def __init__(self, logits):
        super().__init__()
        self.outputs = list(logits)
        self.config = SimpleNamespace()

    def forward(self, input_ids, attention_mask, **_):
        return SimpleNamespace(logits=self.outputs.pop(0))


def _batch(positions, targets, teacher_best):
    P = len(positions)
    top = TopKTokens(ids=np.array([[t, 0] for t in teacher_best], np.uint16),
                     logprobs=np.full((P, 2), -1.0, np.float16),
                     log_tail=np.full(P, -1.0, np.float32))
    row = {"key": "x", "input_ids": [5, 6, 7], "positions": positions, "targets": targets,
           "token_topk": top}
    return collate_tokens([token_item(row)], spec="topk:2")


def test_top1_and_perplexity_by_hand():
    first = torch.tensor(np.log([[[0.5, 0.25, 0.25], [0.1, 0.2, 0.7], [1, 1, 1]]]),
                         dtype=torch.float32)
    second = torch.tensor(np.log([[[1, 1, 1], [1, 1, 1], [0.25, 0.25, 0.5]]]),
                          dtype=torch.float32)
    batches = [_batch([0, 1], [0, 1], teacher_best=[0, 2]),    # right (p 0.5), wrong (p 0.2)
               _batch([2], [2], teacher_best=[2])]             # right (p 0.5)
    student, teacher = lm_metrics(_Fixed([first, second]), batches, "cpu")
    # nll = (ln 2 + ln 5 + ln 2) / 3 = ln(20) / 3: perplexity 20^(1/3), per token over the set
    assert student["top1"] == pytest.approx(2 / 3)
    assert student["nll"] == pytest.approx(math.log(20) / 3, rel=1e-6)
    assert student["perplexity"] == pytest.approx(20 ** (1 / 3), rel=1e-6)
    assert student["positions"] == 3
    assert teacher == {"top1": pytest.approx(2 / 3)}     # the teacher's first id: 0 / 2 / 2


def _expected(model_dir, problem, records, mask_prob, seed, max_length=128):
    """top1 and nll of the model on each text alone, from its logits at the scored positions."""
    from transformers import AutoTokenizer

    model = lm_auto_class(problem).from_pretrained(model_dir).eval()
    inputs = text_inputs(records, AutoTokenizer.from_pretrained(model_dir), problem,
                         max_length=max_length, mask_prob=mask_prob, seed=seed)
    right, nll, n = 0, 0.0, 0
    with torch.no_grad():
        for item in inputs.values():
            logits = model(input_ids=torch.as_tensor(item["input_ids"])[None]).logits[0]
            logp = torch.log_softmax(logits[torch.as_tensor(item["positions"])], -1)
            gold = torch.as_tensor(item["targets"])
            right += int((logp.argmax(-1) == gold).sum())
            nll -= float(logp.gather(-1, gold[:, None]).sum())
            n += len(gold)
    return right / n, nll / n, n


def test_evaluate_a_masked_lm_on_a_text_file(tmp_path, mlm_teacher_dir, lm_records, capsys):
    records = lm_records[1][:6]
    path = tmp_path / "texts.txt"
    path.write_text("".join(r["text_a"] + "\n" for r in records), encoding="utf-8")
    assert main(["evaluate", "--model", mlm_teacher_dir, "--file", str(path),
                 "--mask-prob", "0.3", "--mask-seed", "3", "--batch-size", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "masked_lm" and out["metric"] == "top1" and out["examples"] == 6
    assert out["teacher"] is None
    ids = [{"id": f"texts.txt:{i}", "text_a": r["text_a"]} for i, r in enumerate(records)]
    top1, nll, n = _expected(mlm_teacher_dir, "masked_lm", ids, 0.3, 3)
    assert out["student"]["positions"] == n > 6
    assert out["student"]["top1"] == pytest.approx(top1)
    assert out["student"]["nll"] == pytest.approx(nll, rel=1e-5)
    assert out["student"]["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)


def test_evaluate_a_causal_lm_on_a_column_of_a_tsv(tmp_path, clm_teacher_dir, lm_records,
                                                   capsys):
    records = lm_records[1][:5]
    path = tmp_path / "dev.tsv"
    path.write_text("".join(f"{r['label']}\t{r['text_a']}\n" for r in records),
                    encoding="utf-8")
    assert main(["evaluate", "--model", clm_teacher_dir, "--file", str(path), "--text-a", "1",
                 "--no-header"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "causal_lm" and out["metric"] == "perplexity"
    ids = [{"id": f"dev.tsv:{i}", "text_a": r["text_a"]} for i, r in enumerate(records)]
    top1, nll, n = _expected(clm_teacher_dir, "causal_lm", ids, 0.15, 0)
    assert out["student"]["positions"] == n
    assert out["student"]["top1"] == pytest.approx(top1)
    assert out["student"]["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)


def test_evaluate_on_a_token_cache_corpus_scores_the_inputs_the_teacher_saw(
        monkeypatch, tmp_path, mlm_teacher_dir, lm_records):
    from distiller.common.errors import UsageError
    from distiller.distill_train import lm_eval
    from tests.tinymodels import tiny_bert_mlm

    from .lm_rows import MASK_PROB, MAX_LENGTH, cached_source

    records = lm_records[1][:6]
    cached, _, rows = cached_source(mlm_teacher_dir, "masked_lm", "topk:8", records)
    cached.read_corpus = lambda name: rows if name == "dev" else []
    monkeypatch.setattr(lm_eval, "CacheTokens", lambda path: cached)   # the cache's source
    out = lm_eval.evaluate_lm(mlm_teacher_dir, "masked_lm", cache="c", corpus="dev",
                              batch_size=4)
    top1, nll, n = _expected(mlm_teacher_dir, "masked_lm", records, MASK_PROB, 0, MAX_LENGTH)
    assert out["examples"] == 6 and out["student"]["positions"] == n
    assert out["student"]["top1"] == pytest.approx(top1)
    assert out["student"]["nll"] == pytest.approx(nll, rel=1e-5)
    assert out["teacher"]["top1"] == out["student"]["top1"]   # the student is the teacher
    other = tiny_bert_mlm(tmp_path / "other", [r["text_a"] for r in records], vocab_size=120)
    with pytest.raises(UsageError, match="predicts"):
        lm_eval.evaluate_lm(other, "masked_lm", cache="c", corpus="dev")
    with pytest.raises(UsageError, match="causal_lm one"):
        lm_eval.evaluate_lm(mlm_teacher_dir, "causal_lm", cache="c", corpus="dev")
