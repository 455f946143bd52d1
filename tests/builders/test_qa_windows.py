"""Context windows of extractive QA: coverage, offsets back to characters, gold positions of an
answer that crosses a window boundary, contexts longer than three windows, question cutting."""
import numpy as np
import pytest

from distiller.builders.teacher.qa_windows import (WindowSettings, gold_span, make_windows,
question_row,
                                 window_label)
from distiller.taskdata import builtin_task, read_records
from distiller.taskdata.paths import shared_data

from ..tinymodels import squad_texts, wordpiece_tokenizer


@pytest.fixture(scope="module")
def tok():
    return wordpiece_tokenizer(squad_texts(limit=600), 500)


@pytest.fixture(scope="module")
def records():
    out = read_records(shared_data("squad", "squad2-sample.json"), builtin_task("squad2"),
                       limit=120)
    return [r for r in out if isinstance(r, dict)]


def _context_tokens(tok, context):
    enc = tok(context, add_special_tokens=False, return_offsets_mapping=True)
    return enc["input_ids"], np.asarray(enc["offset_mapping"])


def test_windows_cover_every_context_token_and_map_back_to_characters(tok, records):
    settings = WindowSettings(max_length=48, doc_stride=12, max_query_length=16)
    windowed = make_windows(tok, [(r["text_a"], r["text_b"]) for r in records], settings)
    many = [(r, wd) for r, wd in zip(records, windowed) if len(wd.windows) > 3]
    assert len(many) > 50     # long contexts: more than three windows each
    for record, wd in many:
        ids, offsets = _context_tokens(tok, record["text_b"])
        assert np.array_equal(wd.offsets, offsets)          # the whole context, in order
        room = wd.windows[0].ctx_end - wd.windows[0].ctx_start
        for w in wd.windows:
            n = w.ctx_end - w.ctx_start
            assert w.ctx_first == w.index * min(12, room)
            assert len(w.input_ids) <= 48 and w.input_ids[w.cls_index] == tok.cls_token_id
            assert list(w.input_ids[w.ctx_start:w.ctx_end]) == ids[w.ctx_first:w.ctx_first + n]
            assert set(w.token_type_ids[w.ctx_start:w.ctx_end]) == {1}
        last = wd.windows[-1]
        assert last.ctx_first + last.ctx_end - last.ctx_start == len(ids)   # reaches the end
        row = question_row(record, wd)
        assert row["offsets"] == offsets.reshape(-1).tolist() and row["context"] == \
            record["text_b"]


def test_an_answer_across_a_window_boundary_is_found_in_the_window_that_holds_it(tok, records):
    record = next(r for r in records if r["answers"] and len(r["answers"][0]["text"]) > 15)
    ans = record["answers"][0]
    a, b = ans["answer_start"], ans["answer_start"] + len(ans["text"])
    _, offsets = _context_tokens(tok, record["text_b"])
    first = int(np.searchsorted(offsets[:, 0], a, side="right")) - 1
    last = int(np.searchsorted(offsets[:, 1], b, side="left"))
    assert last - first >= 2
    n_q = len(tok(record["text_a"], add_special_tokens=False)["input_ids"])
    room = first + 1 + (last - first) // 2       # window 0 ends inside the answer
    settings = WindowSettings(max_length=room + n_q + 3, doc_stride=first, max_query_length=n_q)
    (wd,) = make_windows(tok, [(record["text_a"], record["text_b"])], settings)
    w0, w1 = wd.windows[:2]
    assert w0.ctx_first + (w0.ctx_end - w0.ctx_start) - 1 < last     # cut by the boundary
    assert window_label(record, w0, wd.offsets) == [w0.cls_index, w0.cls_index]
    start, end = window_label(record, w1, wd.offsets)
    assert w1.ctx_start <= start <= end < w1.ctx_end
    chars = wd.offsets[w1.ctx_first + start - w1.ctx_start][0], \
        wd.offsets[w1.ctx_first + end - w1.ctx_start][1]
    assert record["text_b"][chars[0]:chars[1]].lower() == ans["text"].lower()
    assert gold_span(w1, wd.offsets, a, b) == (start, end)
    impossible = dict(record, answers=[], is_impossible=True)
    assert window_label(impossible, w1, wd.offsets) == [w1.cls_index] * 2
    assert window_label(dict(record, answers=None), w1, wd.offsets) is None


def test_long_questions_are_cut_and_settings_checked(tok, records):
    question = " ".join(["what about the normans of normandy"] * 8)
    (wd,) = make_windows(tok, [(question, records[0]["text_b"])],
                         WindowSettings(max_length=64, doc_stride=16, max_query_length=10))
    assert wd.question_truncated
    w = wd.windows[0]
    assert w.ctx_start == 10 + 2     # [CLS] + 10 question tokens + [SEP]
    with pytest.raises(ValueError, match="leaves no room"):
        WindowSettings(max_length=64, doc_stride=16, max_query_length=63)
    with pytest.raises(ValueError, match="doc_stride must be a positive integer"):
        WindowSettings(doc_stride=0)
