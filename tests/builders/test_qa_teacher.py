"""The question-answering teacher: windows keyed by content, start/end logits [L, 2] cached
exactly, the dry-run plan counting windows and bytes, question rows beside the corpus, heads
checked against the task."""
from __future__ import annotations

import json

import numpy as np
import pytest

from distiller.cli import main
from distiller.taskdata import builtin_task, read_records
from distiller.taskdata.paths import shared_data

from ..tinymodels import squad_texts, tiny_bert_classifier, tiny_bert_qa

SAMPLE = shared_data("squad", "squad2-sample.json")


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory):
    return tiny_bert_qa(tmp_path_factory.mktemp("qa"), squad_texts(limit=600))


@pytest.fixture(scope="module")
def teacher(qa_dir):
    from distiller.builders.teacher.factory import make_teacher
    from distiller.builders.teacher.model import TeacherConfig

    return make_teacher(TeacherConfig(model=qa_dir, max_length=64, head="span", doc_stride=24,
                                      max_query_length=16, device="cpu", num_threads=1,
                                      max_tokens_per_batch=512)).load()


def test_windows_are_keyed_by_content_and_scored_per_token(teacher, qa_dir):
    import torch
    from transformers import AutoModelForQuestionAnswering

    recs = [r for r in read_records(SAMPLE, builtin_task("squad2"), limit=6)]
    parts = teacher.window_records(recs)
    windows = [w for _, rows in parts for w in rows]
    keys = [w["key"] for w in windows]
    assert len(set(keys)) == len(keys) and len(keys) > len(recs)
    assert keys == [w["key"] for _, rows in teacher.window_records(recs) for w in rows]
    assert teacher.window_key("q", "c", 0) != teacher.window_key("q", "c", 1)
    assert all("answers" not in w and w["label"] is not None for w in windows)
    spec = teacher.spec("float32")
    assert spec.problem_type == "question_answering" and spec.num_labels == 2
    assert dict(spec.tokenization)["doc_stride"] == 24
    outputs = teacher.score(windows)
    model = AutoModelForQuestionAnswering.from_pretrained(qa_dir).eval()
    for w, out in zip(windows[:5], outputs[:5]):
        assert out["key"] == w["key"] and out["logits"].shape == (len(w["input_ids"]), 2)
        with torch.no_grad():
            ref = model(input_ids=torch.as_tensor(w["input_ids"][None], dtype=torch.long),
                        token_type_ids=torch.as_tensor(w["token_type_ids"][None],
                                                       dtype=torch.long))
        assert np.allclose(out["logits"][:, 0], ref.start_logits[0].numpy(), atol=1e-5)
        assert np.allclose(out["logits"][:, 1], ref.end_logits[0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="window records"):
        teacher.record_key({"text_a": "q", "text_b": "c"})
    with pytest.raises(ValueError, match="logits_topk 0"):
        spec.with_(logits_topk=2)


def test_score_dry_run_counts_windows_then_scores_into_a_verified_cache(tmp_path, qa_dir,
                                                                       capsys):
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.cache.reader import CacheReader

    cache = str(tmp_path / "cache")
    base = ["score", "--input", SAMPLE, "--task", "squad2", "--teacher", qa_dir, "--cache",
            cache, "--max-length", "64", "--doc-stride", "24", "--max-query-length", "16",
            "--device", "cpu", "--limit", "30", "--corpus", "qa"]
    assert main(base + ["--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["questions"] == 30 and dry["windows"] > 30
    assert dry["estimate"]["examples"] == dry["windows"]
    # logits [L, 2] float32 per window: at least 8 bytes per token beside the hidden states
    assert dry["estimate"]["bytes_per_example"] > 8 * 40
    assert main(base) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["scored"] == dry["windows"] and done["stats"]["examples"] == dry["windows"]
    store = TeacherCache.open(cache)
    rows, questions = store.read_corpus("qa"), store.read_questions("qa")
    assert len(rows) == dry["windows"] and len(questions) == 30
    assert {r["id"] for r in rows} == {q["id"] for q in questions}
    assert store.corpus_task("qa").is_span and store.verify() == []
    out = CacheReader(cache, layers=[0]).get(rows[0]["key"])
    assert tuple(out["logits"].shape) == (len(out["input_ids"]), 2)
    assert main(["cache", "verify", cache]) == 0


def test_a_classification_head_is_refused_for_a_span_task(tmp_path, capsys):
    clf = tiny_bert_classifier(tmp_path / "clf", squad_texts(limit=200))
    assert main(["score", "--input", SAMPLE, "--task", "squad2", "--teacher", clf, "--cache",
                 str(tmp_path / "c"), "--max-length", "64", "--max-query-length", "16",
                 "--limit", "3"]) == 2
    err = capsys.readouterr().err
    assert "sequence-classification head" in err and "question answering" in err


def test_the_onnx_backend_scores_windows_as_eager_does(teacher, qa_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is an extra: pip install .[onnx]")
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.teacher.factory import make_teacher
    from distiller.builders.teacher.model import TeacherConfig

    recs = [r for r in read_records(SAMPLE, builtin_task("squad2"), limit=4)]
    windows = [w for _, rows in teacher.window_records(recs) for w in rows]
    onnx = make_teacher(TeacherConfig(model=qa_dir, max_length=64, head="span", doc_stride=24,
                                      max_query_length=16, device="cpu", num_threads=1,
                                      max_tokens_per_batch=512, backend="onnx")).load()
    assert onnx.fingerprint == teacher.fingerprint
    eager, fast = teacher.score(windows), onnx.score(windows, store_as="float16")
    lengths = {len(w["input_ids"]) for w in windows}
    assert len(lengths) > 1           # windows of several lengths share the dynamic axes
    for a, b in zip(eager, fast):
        assert b["logits"].shape == (len(a["input_ids"]), 2)
        assert np.abs(a["logits"] - b["logits"]).max() < 1e-4
    cache = TeacherCache.create(str(tmp_path / "onnx"), onnx.spec("float16"))
    cache.add(fast)
    assert cache.spec.backend == "onnx" and cache.verify() == []
