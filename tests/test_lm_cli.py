"""A language model distilled from the command line, end to end: `distiller score` a text corpus
with a tiny masked or causal LM teacher into a token-level cache (--tokens topk:4), `distiller
train` a student cut from it on that cache, `distiller evaluate` the student on the cache's dev
corpus. The two halves meet here: the cache the teacher side writes (spec, rows, vocabulary)
is what the student side reads."""
from __future__ import annotations

import json
import math

import pytest

from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.store import TeacherCache
from distiller.cli import main
from distiller.taskdata.paths import shared_data
from tests.tinymodels import tiny_bert_mlm, tiny_gpt2_lm

PRIMARY = {"masked_lm": "top1", "causal_lm": "perplexity"}


def _texts(limit: int):
    """Real sentences of the shared SUBJ corpus (its text column)."""
    with open(shared_data("text", "SUBJ", "train.txt"), encoding="utf-8") as fh:
        return [line.split("\t", 1)[1].strip() for _, line in zip(range(limit), fh)]


def _run(capsys, *argv: str) -> dict:
    """`distiller ARGV`: exit 0, and its JSON output."""
    rc = main(list(argv))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize("kind", ["masked_lm", "causal_lm"])
def test_score_train_evaluate_a_language_model_from_the_command_line(tmp_path, capsys, kind):
    texts = _texts(48)
    model_dir = tmp_path / "teacher"
    teacher = (tiny_bert_mlm(model_dir, texts, vocab_size=200) if kind == "masked_lm" else
               tiny_gpt2_lm(model_dir, texts, vocab_size=200, bpe=True))  # no padding token
    cache = str(tmp_path / "cache")
    for split, part in (("train", texts[:36]), ("dev", texts[36:])):
        path = tmp_path / f"{split}.txt"
        path.write_text("\n".join(part) + "\n", encoding="utf-8")
        scored = _run(capsys, "score", "--input", str(path), "--task", "lm", "--kind", kind,
                      "--text-a", "text", "--teacher", teacher, "--tokens", "topk:4",
                      "--cache", cache, "--corpus", f"lm-{split}", "--devices", "cpu",
                      "--max-length", "32")
        assert scored["scored"] == len(part)
    spec = TeacherCache.open(cache).spec
    assert (spec.problem_type, spec.tokens, spec.layers) == (kind, "topk:4", ())

    run_dir = str(tmp_path / "run")
    trained = _run(capsys, "train", "--cache", cache, "--train-corpus", "lm-train",
                   "--dev-corpus", "lm-dev", "--student", teacher, "--student-init", "truncate",
                   "--student-num-layers", "1", "--w-gold", "0.5", "--epochs", "1",
                   "--max-steps", "3", "--batch-size", "12", "--device", "cpu",
                   "--run-dir", run_dir, "--no-progress")
    assert trained["metric_name"] == PRIMARY[kind] and trained["history"][0]["global_step"] == 3
    assert set(trained["history"][0]["train"]) == {"loss", "pred", "gold"}   # KD + gold LM loss

    out = _run(capsys, "evaluate", "--model", f"{run_dir}/best_model", "--cache", cache,
               "--corpus", "lm-dev", "--device", "cpu")
    assert out["task"] == kind and out["metric"] == PRIMARY[kind] and out["examples"] == 12
    student = out["student"]
    reader = CacheReader(cache)
    rows = TeacherCache.open(cache).read_corpus("lm-dev")
    stored = sum(len(reader.get(r["key"])["positions"]) for r in rows)
    assert student["positions"] == stored > 12      # every position the teacher scored
    assert 0.0 <= student["top1"] <= 1.0
    assert 1.0 < student["perplexity"] < math.inf
    assert student["perplexity"] == pytest.approx(math.exp(student["nll"]), rel=1e-6)
    assert 0.0 <= out["teacher"]["top1"] <= 1.0     # a top-k cache gives the teacher's top-1
    # the run's dev score is the one `evaluate` gives its saved model, on the same positions
    assert trained["best_dev"]["positions"] == stored
    assert trained["best_dev"]["nll"] == pytest.approx(student["nll"], rel=1e-5)
