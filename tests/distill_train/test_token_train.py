"""Training masked and causal LM students on token-level teacher rows (distill_train/token_run.py,
token_objective.py, lm_student.py): the loss, a few steps, the trainer end to end, the students
it builds and the refusals before training."""
from __future__ import annotations

import json
import os

import pytest
import torch

from distiller.common.errors import UsageError
from distiller.distill_train.config import TrainConfig
from distiller.distill_train.forward import scored_logits
from distiller.distill_train.lm_student import build_lm_student
from distiller.distill_train.token_data import InMemoryTokens, token_fetcher
from distiller.distill_train.token_objective import TokenObjective
from distiller.distill_train.train import train

from .lm_rows import cached_source


def _teacher(problem, mlm_teacher_dir, clm_teacher_dir):
    return mlm_teacher_dir if problem == "masked_lm" else clm_teacher_dir


def _config(tmp_path, student, **kw):
    base = dict(cache="in-memory", train_corpus="train", student=student,
                student_init="truncate", student_num_layers=2, w_gold=0.5, temperature=2.0,
                epochs=2, batch_size=8, lr=1e-3, progress=False, run_dir=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


def _loss(model, objective, batch):
    return objective(student_logits=scored_logits(model, batch), batch=batch)


@pytest.mark.parametrize("problem,spec", [("masked_lm", "topk:8"), ("causal_lm", "sample:6")])
def test_a_student_equal_to_its_teacher_has_kd_loss_near_zero(problem, spec, lm_records,
                                                              mlm_teacher_dir, clm_teacher_dir,
                                                              tmp_path):
    teacher = _teacher(problem, mlm_teacher_dir, clm_teacher_dir)
    cached, _, rows = cached_source(teacher, problem, spec, lm_records[0][:8])
    model, _ = build_lm_student(_config(tmp_path, teacher, student_init="pretrained"), problem)
    batch = token_fetcher(cached, spec=cached.tokens)(rows)
    assert int(batch["position_mask"].sum()) > 8
    kd = TokenObjective(form=cached.tokens.kind, loss="kl", w_kd=1.0)
    total, parts = _loss(model.eval(), kd, batch)
    # only the float16 storage of the teacher's log-probabilities separates them
    assert abs(total.item()) < 2e-3 and set(parts) == {"loss", "pred"}
    cut, _ = build_lm_student(_config(tmp_path, teacher), problem)      # 2 of 4 layers
    assert _loss(cut.eval(), kd, batch)[0].item() > 100 * abs(total.item())


@pytest.mark.parametrize("problem,spec,kind", [("masked_lm", "topk:8", "kl"),
                                               ("causal_lm", "sample:6", "soft_ce"),
                                               ("causal_lm", "topk:4", "kl"),
                                               ("masked_lm", "topk:8:packed", "kl"),
                                               ("causal_lm", "sample:6:packed", "kl")])
def test_training_steps_decrease_the_token_loss(problem, spec, kind, lm_records, tmp_path,
                                                mlm_teacher_dir, clm_teacher_dir):
    teacher = _teacher(problem, mlm_teacher_dir, clm_teacher_dir)
    cached, _, rows = cached_source(teacher, problem, spec, lm_records[0][:8])
    model, _ = build_lm_student(_config(tmp_path, teacher, student_num_layers=1), problem)
    model.eval()   # no dropout: the same batch, a deterministic descent
    batch = token_fetcher(cached, spec=cached.tokens)(rows)
    objective = TokenObjective(form=cached.tokens.kind, loss=kind, temperature=2.0, w_kd=1.0,
                               w_gold=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        total, parts = _loss(model, objective, batch)
        assert set(parts) == {"loss", "pred", "gold"}
        assert parts["loss"] == pytest.approx(parts["pred"] + 0.5 * parts["gold"], rel=1e-5)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_train_dispatches_a_causal_lm_teacher_and_selects_by_perplexity(tmp_path, lm_records,
                                                                         clm_teacher_dir):
    train_recs, dev_recs = lm_records
    cached, _, rows = cached_source(clm_teacher_dir, "causal_lm", "topk:8",
                                    train_recs[:24] + dev_recs[:8])
    steps = []
    res = train(_config(tmp_path, clm_teacher_dir, dev_corpus="dev"), provider=cached,
                train_rows=rows[:24], dev_rows=rows[24:], on_step=lambda s, p: steps.append(p))
    assert len(steps) == 6 and all(set(p) == {"loss", "pred", "gold"} for p in steps)
    assert res.metric_name == "perplexity"
    ppl = [h["dev"]["perplexity"] for h in res.history]
    assert res.best_metric == min(ppl) and res.best_epoch == ppl.index(min(ppl))
    assert set(res.history[0]["dev"]) == {"top1", "perplexity", "nll", "positions"}
    assert res.teacher_dev is not None and 0 <= res.teacher_dev["top1"] <= 1
    best = os.path.join(res.run_dir, "best_model")
    assert not os.path.exists(os.path.join(best, "distiller_task.json"))
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(best).config.n_layer == 2
    with open(os.path.join(res.run_dir, "result.json"), encoding="utf-8") as fh:
        assert json.load(fh)["metric_name"] == "perplexity"


def test_a_masked_lm_student_from_a_config_trains_on_sampled_rows(tmp_path, lm_records,
                                                                   mlm_teacher_dir):
    train_recs, dev_recs = lm_records
    cached, _, rows = cached_source(mlm_teacher_dir, "masked_lm", "sample:6",
                                    train_recs[:16] + dev_recs[:8])
    cfg = _config(tmp_path, mlm_teacher_dir, student_init="config", student_num_layers=1,
                  student_hidden=16, student_heads=2, dev_corpus="dev", pred_loss="soft_ce")
    res = train(cfg, provider=cached, train_rows=rows[:16], dev_rows=rows[16:])
    assert res.metric_name == "top1" and res.teacher_dev is None
    assert res.best_metric == max(h["dev"]["top1"] for h in res.history)
    from transformers import AutoConfig

    saved = AutoConfig.from_pretrained(os.path.join(res.run_dir, "best_model"))
    assert (saved.num_hidden_layers, saved.hidden_size, saved.intermediate_size) == (1, 16, 64)


def test_the_lm_loss_alone_is_the_no_kd_baseline(tmp_path, lm_records, clm_teacher_dir):
    cached, _, rows = cached_source(clm_teacher_dir, "causal_lm", "topk:4", lm_records[0][:8])
    steps = []
    train(_config(tmp_path, clm_teacher_dir, pred_loss="none", w_gold=1.0, epochs=1),
          provider=cached, train_rows=rows, on_step=lambda s, p: steps.append(p))
    assert steps and all(set(p) == {"loss", "gold"} and p["loss"] == p["gold"] for p in steps)


def _refused(tmp_path, cfg, source, rows, match):
    steps = []
    with pytest.raises(UsageError, match=match):
        train(cfg, provider=source, train_rows=rows, on_step=lambda s, p: steps.append(p))
    assert not steps and not os.path.exists(os.path.join(cfg.run_dir, "checkpoint.pt"))


def test_a_student_of_another_vocabulary_is_refused_before_training(tmp_path, lm_records,
                                                                    clm_teacher_dir):
    from tests.tinymodels import tiny_gpt2_lm

    train_recs, _ = lm_records
    cached, _, rows = cached_source(clm_teacher_dir, "causal_lm", "topk:4", train_recs[:8])
    other = tiny_gpt2_lm(tmp_path / "other", [r["text_a"] for r in train_recs], vocab_size=200)
    _refused(tmp_path, _config(tmp_path, other), cached, rows,
             r"predicts \d+ tokens but the teacher's distributions are over \d+")
    # the same size, but two ids hold each other's tokens in the teacher's recorded vocabulary
    vocab = list(cached.vocab)
    vocab[10], vocab[11] = vocab[11], vocab[10]
    swapped = InMemoryTokens(cached.outputs, problem_type="causal_lm", tokens="topk:4",
                             vocab_size=cached.vocab_size, vocab=vocab, vocab_source="test")
    _refused(tmp_path, _config(tmp_path, clm_teacher_dir), swapped, rows,
             r"2 of the ids both have differ .*id 10")


@pytest.mark.parametrize("change,match", [(dict(inter_loss="mse"), "keeps no hidden states"),
                                          (dict(pred_loss="mse"), "does not apply")])
def test_objectives_a_token_cache_cannot_serve_are_refused(tmp_path, lm_records,
                                                           clm_teacher_dir, change, match):
    cached, _, rows = cached_source(clm_teacher_dir, "causal_lm", "topk:4", lm_records[0][:4])
    _refused(tmp_path, _config(tmp_path, clm_teacher_dir, **change), cached, rows, match)


def test_a_llama_style_decoder_is_cut_to_renumbered_layers(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=4,
                                 num_attention_heads=2, num_key_value_heads=1,
                                 intermediate_size=32, max_position_embeddings=32)
                     ).save_pretrained(tmp_path / "llama")
    cfg = _config(tmp_path, str(tmp_path / "llama"), student_layers=(2, 4),
                  student_num_layers=None)
    model, tokenizer = build_lm_student(cfg, "causal_lm")
    layers = model.model.layers
    assert tokenizer is None and len(layers) == 2 and model.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in layers] == [0, 1]
    out = model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=True)
    assert out.logits.shape == (1, 3, 64) and len(out.past_key_values) == 2


@pytest.mark.parametrize("problem,spec", [("masked_lm", "topk:8"), ("causal_lm", "sample:6")])
def test_the_lm_head_at_the_scored_positions_equals_the_gathered_full_logits(
        problem, spec, lm_records, mlm_teacher_dir, clm_teacher_dir, tmp_path):
    from distiller.distill_train.forward import gather_positions, student_forward

    teacher = _teacher(problem, mlm_teacher_dir, clm_teacher_dir)
    cached, _, rows = cached_source(teacher, problem, spec, lm_records[0][:8])
    model, _ = build_lm_student(_config(tmp_path, teacher), problem)
    batch = token_fetcher(cached, spec=cached.tokens)(rows)
    mask = batch["position_mask"]
    head = model.get_output_embeddings()

    seen = []  # the rows the vocabulary projection is fed: the scored positions only
    hook = head.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[:2])))
    z = scored_logits(model, batch)
    hook.remove()
    assert seen == [tuple(batch["positions"].shape)]
    assert tuple(z.shape[:2]) == tuple(batch["positions"].shape)
    z[mask].sum().backward()
    grad = head.weight.grad.clone()
    model.zero_grad()

    full = gather_positions(student_forward(model, batch).logits, batch["positions"])
    torch.testing.assert_close(z, full, rtol=1e-5, atol=1e-5)
    full[mask].sum().backward()
    torch.testing.assert_close(grad, head.weight.grad, rtol=1e-4, atol=1e-5)

    # a head the hook cannot reach: the full logits, gathered
    model.get_output_embeddings = lambda: None
    torch.testing.assert_close(scored_logits(model, batch), full.detach(), rtol=1e-5, atol=1e-5)
