"""A cell becomes a text or a typed reason (`Unusable`), never a marked string: a text is kept
whatever its first character, and a cell that is not a text (a list, an object, a boolean) is a
dead letter saying so."""
import json
import string

import pytest

from distiller.taskdata import DeadLetter, builtin_task, parse_row, read_records
from distiller.taskdata.records import Unusable, cell_text
from distiller.taskdata.squad import span_record

SST2 = builtin_task("sst2")
SQUAD2 = builtin_task("squad2")


@pytest.mark.parametrize("mark", list(string.punctuation))
def test_a_text_starting_with_any_punctuation_is_kept(mark):
    text = f"{mark}{mark} best film ever"
    record = parse_row({"sentence": text, "label": "1"}, task=SST2, source="f", index=0)
    assert record == {"id": "f:0", "text_a": text, "text_b": None, "label": 1}
    pair = parse_row({"sentence1": text, "sentence2": mark, "label": "entailment"},
                     task=builtin_task("rte"), source="f", index=1)
    assert pair["text_a"] == text and pair["text_b"] == mark
    context = f"{mark}Rollo led the Normans."
    qa = span_record({"id": "q", "question": text, "context": context,
                      "answers": [{"text": "Rollo", "answer_start": len(mark)}]},
                     task=SQUAD2, source="f", index=0, raw="")
    assert qa["text_a"] == text and qa["text_b"] == context


def test_a_reason_is_a_typed_value_not_a_text():
    assert cell_text("!empty text in column 'x'", "x") == "!empty text in column 'x'"
    assert cell_text("   ", "x") == Unusable("empty text in column 'x'")
    assert cell_text(b"caf\xe9", "x") == Unusable("undecodable bytes in column 'x'")
    assert cell_text(7, "x") == "7" and cell_text(1.5, "x") == "1.5"   # numbers as decimal text
    dead = span_record({"id": "q", "question": "\x00", "context": "c", "answers": []},
                       task=SQUAD2, source="f", index=3, raw="r")
    assert dead == DeadLetter(source="f", row=3,
                              reason="NUL byte in column 'question' (a damaged or binary row)",
                              raw="r")


def test_jsonl_cells_of_the_wrong_type_are_dead_letters(tmp_path):
    rows = [{"sentence": ["a", "b"], "label": 1}, {"sentence": {"x": 1}, "label": 0},
            {"sentence": True, "label": 0}, {"sentence": 12, "label": 0},
            {"sentence": "fine", "label": [1]}, {"sentence": "!fine", "label": 1}]
    path = tmp_path / "typed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = list(read_records(str(path), SST2))
    assert [d.reason for d in out[:3]] == [
        "wrong type in column 'sentence': a list, not a text",
        "wrong type in column 'sentence': an object, not a text",
        "wrong type in column 'sentence': a boolean (true), not a text"]
    assert out[3]["text_a"] == "12"
    assert out[4].reason == "wrong type in column 'label': a list, not a label"
    assert out[5]["text_a"] == "!fine" and out[5]["label"] == 1
