"""Question answering in training: decoding spans across windows, the span losses, training from
the cache equal to training with the teacher online, resume, and the CLI from finetune to the
official prediction files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distiller.distill_train.qa_decode import DecodeConfig, decode_spans
from distiller.distill_train.span_losses import SpanGoldLoss, SpanKDLoss
from distiller.taskdata.paths import shared_data

SAMPLE = shared_data("squad", "squad2-sample.json")


# ------------------------------------------------------------------ decoding, by hand
def _question(words):
    context = " ".join(words)
    offsets, pos = [], 0
    for w in words:
        offsets += [pos, pos + len(w)]
        pos += len(w) + 1
    return {"context": context, "offsets": offsets, "answers": ["x"], "is_impossible": False}


def _row(window, first, n, ctx_start=3):
    return {"id": "q", "window": window, "ctx_start": ctx_start, "ctx_end": ctx_start + n,
            "ctx_first": first, "cls_index": 0}


def test_decoding_takes_the_best_span_over_windows_and_the_smallest_null_score():
    words = [f"w{i}" for i in range(10)]
    questions = {"q": _question(words)}
    # two windows of 6 context tokens (positions 3..8), starting at context tokens 0 and 4
    rows = [_row(0, 0, 6), _row(1, 4, 6)]
    z0, z1 = np.zeros((10, 2)), np.zeros((10, 2))
    z0[0] = [1.0, 1.0]                     # null score 2 in window 0
    z1[0] = [0.5, 0.0]                     # null score 0.5 in window 1: the smallest counts
    z0[3 + 1, 0], z0[3 + 2, 1] = 3.0, 2.0  # w1..w2, score 5 (w1 has its most context here)
    z1[3 + 3, 0], z1[3 + 5, 1] = 4.0, 3.0  # w7..w9, score 7: the best over both windows
    spans = decode_spans(rows, [z0, z1], questions)
    assert spans["q"].text == "w7 w8 w9" and spans["q"].score == 7.0
    assert spans["q"].null_score == 0.5 and spans["q"].odds == 0.5 - 7.0
    # at most 2 tokens per answer: w7..w9 is too long; w7 alone (4 + 0) loses to w1..w2 (5)
    short = decode_spans(rows, [z0, z1], questions, DecodeConfig(max_answer_length=2))
    assert short["q"].text == "w1 w2"
    # a start in the overlap (w4, w5) counts only in the window where it has the most context
    z1[3 + 0, 0] = 10.0                     # w4 in window 1: at its left edge, less context
    z1[3 + 0, 1] = 10.0
    assert decode_spans(rows, [z0, z1], questions)["q"].text == "w7 w8 w9"
    z0[3 + 4, 0] = z0[3 + 4, 1] = 10.0      # w4 in window 0 (its most context): taken
    assert decode_spans(rows, [z0, z1], questions)["q"].text == "w4"
    # an end before its start is no span. Starts w5 (9), w2 (1), w0 (0); ends w1 (9), w0 (0),
    # w2 (0): with 2 candidates each no pair is valid (no answer); with 3, w0..w1 (0 + 9) wins
    z = np.zeros((10, 2))
    z[3 + 5, 0], z[3 + 1, 1], z[3 + 2, 0] = 9.0, 9.0, 1.0
    none = decode_spans([_row(0, 0, 6)], [z], questions, DecodeConfig(n_best=2))["q"]
    assert none.text == "" and none.odds == 1e9
    best = decode_spans([_row(0, 0, 6)], [z], questions, DecodeConfig(n_best=3))["q"]
    assert best.text == "w0 w1" and best.score == 9.0


# ------------------------------------------------------------------ losses, by hand
def test_span_losses_use_only_context_and_cls_positions():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 2), torch.randn(2, 5, 2)
    mask = torch.tensor([[1, 0, 1, 1, 0], [1, 0, 0, 1, 1]], dtype=torch.bool)
    kd = SpanKDLoss(2.0, kind="kl")(s, t, mask)
    want = 0.0
    for b in range(2):
        for k in range(2):
            ls = torch.log_softmax(s[b, mask[b], k] / 2, 0)
            lt = torch.log_softmax(t[b, mask[b], k] / 2, 0)
            want += float((lt.exp() * (lt - ls)).sum())
    assert float(kd) == pytest.approx(4.0 * want / 2, rel=1e-5)    # tau^2 x mean over B
    s2 = s.clone()
    s2[0, 1], s2[1, 2] = 99.0, -99.0          # masked positions change nothing
    assert float(SpanKDLoss(2.0)(s2, t, mask)) == pytest.approx(float(kd), rel=1e-6)
    labels = torch.tensor([[2, 3], [-100, -100]])
    gold = SpanGoldLoss()(s, labels, mask)
    ls = torch.log_softmax(s[0, mask[0]], 0)                      # positions 0, 2, 3
    assert float(gold) == pytest.approx(float(-(ls[1, 0] + ls[2, 1]) / 2), rel=1e-5)
    assert float(SpanGoldLoss()(s, torch.full((2, 2), -100), mask)) == 0.0
    mse = SpanKDLoss(kind="mse")(s, t, mask)
    diff = ((s - t) ** 2)[mask]
    assert float(mse) == pytest.approx(float(diff.mean(0).sum()), rel=1e-5)


# ------------------------------------------------------------------ cache vs online, resume
@pytest.fixture(scope="module")
def qa_setup(tmp_path_factory):
    from distiller.builders.cli import score_file
    from distiller.builders.teacher.model import TeacherConfig
    from distiller.taskdata.squad_split import main as split
    from tests.tinymodels import squad_texts, tiny_bert_qa

    root = tmp_path_factory.mktemp("qa")
    assert split([SAMPLE, "--out", str(root / "data")]) == 0
    dev = json.loads((root / "data" / "dev.json").read_text())
    para = dev["data"][0]["paragraphs"][0]
    dev["data"][0]["paragraphs"] = [dict(para, qas=para["qas"][:12])]   # its 10 questions
    (root / "data" / "dev_small.json").write_text(json.dumps(dev))
    teacher = tiny_bert_qa(root / "teacher", squad_texts(limit=600), layers=2,
                           vocab_size=1500)
    cfg = TeacherConfig(model=teacher, max_length=64, head="span", doc_stride=32,
                        max_query_length=16, device="cpu", num_threads=1)
    cache = str(root / "cache")
    for split_name, limit in (("train", 24), ("dev", 12)):
        score_file(cfg, input_path=str(root / "data" / f"{split_name}.json"), task="squad2",
                   cache_dir=cache, dtype="float32", limit=limit, corpus=f"qa-{split_name}")
    return {"root": root, "teacher": teacher, "cache": cache}


def _config(qa_setup, tmp_path, **extra):
    from distiller.distill_train.config import TrainConfig

    base = dict(cache=qa_setup["cache"], train_corpus="qa-train", dev_corpus="qa-dev",
                student=qa_setup["teacher"], student_init="truncate", student_num_layers=1,
                inter_loss="mse", w_gold=0.5, temperature=2.0, epochs=2, batch_size=8,
                lr=1e-3, progress=False, run_dir=str(tmp_path / "cached"))
    base.update(extra)
    return TrainConfig(**base)


def test_training_from_the_cache_equals_the_online_teacher_step_by_step(qa_setup, tmp_path):
    from transformers import AutoModelForQuestionAnswering

    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.cache.reader import CacheReader
    from distiller.distill_train.data import OnlineTokenProvider
    from distiller.distill_train.train import train

    cfg = _config(qa_setup, tmp_path)
    cached, online = [], []
    res_c = train(cfg, on_step=lambda s, p: cached.append(p))
    store = TeacherCache.open(qa_setup["cache"])
    rows = {n: store.read_corpus(n) for n in ("qa-train", "qa-dev")}
    reader = CacheReader(qa_setup["cache"], layers=[])
    tokens = {r["key"]: (o["input_ids"], o["token_type_ids"]) for n in rows
              for r, o in zip(rows[n], reader.get_many([r["key"] for r in rows[n]]))}
    model = AutoModelForQuestionAnswering.from_pretrained(qa_setup["teacher"])
    provider = OnlineTokenProvider(model, tokens)
    res_o = train(cfg.replace(run_dir=str(tmp_path / "online")), provider=provider,
                  train_rows=rows["qa-train"], dev_rows=rows["qa-dev"],
                  on_step=lambda s, p: online.append(p))
    assert len(cached) == len(online) > 4
    for a, b in zip(cached, online):
        assert a.keys() == b.keys() == {"loss", "pred", "inter", "gold"}
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), (k, a[k], b[k])
    assert res_c.best_dev == res_o.best_dev and res_c.teacher_dev == res_o.teacher_dev
    assert set(res_c.best_dev) >= {"f1", "exact", "HasAns_f1", "NoAns_f1", "best_f1"}


def test_a_stopped_run_resumes_to_the_same_result(qa_setup, tmp_path):
    from distiller.distill_train.train import train

    cfg = _config(qa_setup, tmp_path, inter_loss="none", run_dir=str(tmp_path / "full"))
    full = train(cfg)

    def stop(epoch, entry):
        raise KeyboardInterrupt

    half = cfg.replace(run_dir=str(tmp_path / "half"))
    with pytest.raises(KeyboardInterrupt):
        train(half, on_epoch=stop)
    resumed = train(half)
    assert [h["train"] for h in resumed.history] == [h["train"] for h in full.history]
    assert resumed.best_dev == full.best_dev


def test_cli_finetune_train_evaluate_with_official_prediction_files(qa_setup, tmp_path,
                                                                     capsys):
    from distiller.cli import main
    from distiller.taskdata.squad_metrics import evaluate_v2

    data = qa_setup["root"] / "data"
    out = str(tmp_path / "ft")
    common = ["--max-length", "64", "--doc-stride", "32", "--max-query-length", "16",
              "--epochs", "1", "--batch-size", "16", "--no-progress"]
    assert main(["finetune", "--task", "squad2", "--train", str(data / "train.json"), "--dev",
                 str(data / "dev_small.json"), "--model", qa_setup["teacher"], "--out", out,
                 "--limit-train", "40", *common]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric_name"] == "f1" and "NoAns_f1" in result["best_dev"]
    assert main(["train", "--cache", qa_setup["cache"], "--train-corpus", "qa-train",
                 "--dev-corpus", "qa-dev", "--student", f"{out}/best_model", "--student-init",
                 "truncate", "--student-num-layers", "1", "--run-dir", str(tmp_path / "kd"),
                 "--epochs", "1", "--no-progress"]) == 0
    capsys.readouterr()
    pred = str(tmp_path / "pred.json")
    assert main(["evaluate", "--model", str(tmp_path / "kd" / "best_model"), "--cache",
                 qa_setup["cache"], "--corpus", "qa-dev", "--predictions", pred,
                 "--null-threshold", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 12 and report["student"]["threshold"] == 0.0
    assert report["teacher"] is not None and report["null_odds"].endswith(".null_odds.json")
    predictions = json.load(open(pred, encoding="utf-8"))
    odds = json.load(open(report["null_odds"], encoding="utf-8"))
    assert len(predictions) == 12 == len(odds)
    # the official v2.0 scoring of the written files gives the figures printed
    gold = {}
    for article in json.load(open(data / "dev.json", encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                if qa["id"] in predictions:
                    gold[qa["id"]] = [a["text"] for a in qa["answers"]]
    official = evaluate_v2(gold, predictions)
    assert official["f1"] == pytest.approx(report["student"]["f1"])
    assert official["exact"] == pytest.approx(report["student"]["exact"])
    assert main(["evaluate", "--model", str(tmp_path / "kd" / "best_model"), "--task",
                 "squad2", "--file", str(data / "dev_small.json"), "--max-length", "64",
                 "--doc-stride", "32", "--max-query-length", "16"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 10


# ------------------------------------------------------------------ windows -> decoding -> metric
def test_gold_logits_on_real_windows_decode_to_the_gold_answers():
    """Windows of real contexts (more than three each, answers crossing window boundaries),
    logits that point at each window's gold positions: decoding merges the windows back into
    the gold answers' text and the official v2.0 scoring of the result is (near) perfect."""
    from distiller.builders.teacher.qa_windows import (WindowSettings, make_windows, question_row,
                                                       window_row)
    from distiller.taskdata import builtin_task, read_records
    from distiller.taskdata.squad_metrics import squad_metrics
    from tests.tinymodels import squad_texts, wordpiece_tokenizer

    tok = wordpiece_tokenizer(squad_texts(limit=600), 500)
    records = [r for r in read_records(SAMPLE, builtin_task("squad2"), limit=150)
               if isinstance(r, dict)]
    settings = WindowSettings(max_length=64, doc_stride=20, max_query_length=16)
    windowed = make_windows(tok, [(r["text_a"], r["text_b"]) for r in records], settings)
    rows, logits, questions, crossing = [], [], {}, 0
    for record, wd in zip(records, windowed):
        questions[record["id"]] = question_row(record, wd)
        cut = False
        if record["answers"]:    # the answer's context tokens, from their character offsets
            a = record["answers"][0]["answer_start"]
            b = a + len(record["answers"][0]["text"])
            inside = np.nonzero((wd.offsets[:, 0] < b) & (wd.offsets[:, 1] > a))[0]
            t0, t1 = int(inside.min()), int(inside.max())
        for w in wd.windows:
            row = dict(window_row(record, w, wd.offsets), id=record["id"])
            z = np.zeros((len(w.input_ids), 2))
            start, end = row["label"]
            z[start, 0] = z[end, 1] = 10.0          # [CLS] when the window lacks the answer
            rows.append(row)
            logits.append(z)
            if record["answers"]:    # a window boundary inside the answer
                last = w.ctx_first + w.ctx_end - w.ctx_start - 1
                cut |= w.ctx_first <= t1 and last >= t0 and not w.ctx_first <= t0 <= t1 <= last
        crossing += cut
    assert sum(len(wd.windows) > 3 for wd in windowed) > 40 and crossing > 15, crossing
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))         # rows of a question need not be adjacent
    spans = decode_spans([rows[i] for i in order], [logits[i] for i in order], questions,
                         DecodeConfig(max_answer_length=64))
    gold = {r["id"]: [a["text"] for a in r["answers"]] for r in records}
    for r in records:
        span = spans[r["id"]]
        if r["answers"]:        # the gold span (whole tokens) wins over every null score
            assert span.odds < 0 and r["answers"][0]["text"].lower() in span.text.lower(), \
                (r["id"], span.text, r["answers"][0]["text"])
        else:                   # no window holds an answer: null (20) beats every span (0)
            assert span.odds > 0
    metrics, final = squad_metrics(["exact", "f1", "HasAns_exact", "NoAns_exact"], gold,
                                   {q: s.text for q, s in spans.items()},
                                   null_odds={q: s.odds for q, s in spans.items()},
                                   threshold=0.0)
    assert metrics["NoAns_exact"] == 100.0 and metrics["HasAns_exact"] > 99.0
    assert all(final[r["id"]] == "" for r in records if not r["answers"])
