"""SQuAD: the official JSON read into one record per question (dead letters for bad entries), the
metrics of the official v1.1 / v2.0 scripts on hand-computed cases, the split by article."""
import json

import pytest

from distiller.taskdata import DeadLetter, builtin_task, plan_splits, read_records
from distiller.taskdata.paths import shared_data
from distiller.taskdata.squad_metrics import (evaluate_v1, evaluate_v2, f1_score,
                                              find_best_threshold, normalize_answer, squad_metrics)

SAMPLE = shared_data("squad", "squad2-sample.json")


def _squad(path, paragraphs, version="v2.0", title="T"):
    path.write_text(json.dumps({"version": version, "data": [
        {"title": title, "paragraphs": paragraphs}]}), encoding="utf-8")
    return str(path)


def test_the_sample_reads_one_record_per_question_split_by_article():
    task = builtin_task("squad2")
    records = list(read_records(SAMPLE, task))
    assert len(records) == 1407 and not any(isinstance(r, DeadLetter) for r in records)
    assert sum(r["is_impossible"] for r in records) == 702
    first = records[0]
    assert first["id"] == "56ddde6b9a695914005b9628"
    assert first["text_a"] == "In what country is Normandy located?"
    assert first["text_b"].startswith("The Normans (Norman: Nourmands;")
    assert first["answers"][0] == {"text": "France", "answer_start": 159}
    impossible = next(r for r in records if r["is_impossible"])
    assert impossible["answers"] == [] and impossible["plausible_answers"][0]["text"]
    splits = list(plan_splits(SAMPLE, task, rows_per_split=300))
    assert [s.max_rows for s in splits] == [626, 324, 457]     # whole articles only
    assert sum(s.max_rows for s in plan_splits(SAMPLE, task, limit=10)) == 10
    # SQuAD 1.1 needs an answer to every question: the 702 unanswerable ones are set aside
    v1 = list(read_records(SAMPLE, builtin_task("squad")))
    dead = [r for r in v1 if isinstance(r, DeadLetter)]
    assert len(dead) == 702 and "squad2" in dead[0].reason


def test_bad_entries_become_dead_letters_naming_the_field(tmp_path):
    ctx = "Rollo led the Normans to Normandy in 911."
    good = {"id": "q0", "question": "Who led them?", "answers": [
        {"text": "Rollo", "answer_start": 0}], "is_impossible": False}
    path = _squad(tmp_path / "bad.json", [
        {"context": ctx, "qas": [
            good,
            {"id": "q1", "question": "When?", "answers": [{"text": "911", "answer_start": 3}]},
            {"id": "q2", "question": "   ", "answers": [{"text": "911", "answer_start": 36}]},
            {"id": "q3", "answers": [{"text": "911", "answer_start": 36}]},
            {"id": "q4", "question": "Where?", "answers": [{"text": "Normandy"}]},
            {"id": "q0", "question": "Again?", "answers": [{"text": "Rollo", "answer_start": 0}]},
            {"id": "q5", "question": "Why?", "answers": [], "is_impossible": False},
            "not an object"]},
        {"context": "", "qas": [{"id": "q6", "question": "What?", "answers": []}]},
        {"qas": []},
    ])
    out = list(read_records(path, builtin_task("squad2")))
    assert [r["id"] for r in out if not isinstance(r, DeadLetter)] == ["q0"]
    reasons = {d.row: d.reason for d in out if isinstance(d, DeadLetter)}
    assert reasons[1].startswith("answer text '911' is not at its answer_start 3") and \
        "reads 'lo '" in reasons[1]
    assert reasons[2] == "empty text in column 'question'"
    assert reasons[3] == "malformed entry: missing field 'question'"
    assert reasons[4] == "malformed entry: answers[0] lacks an 'answer_start' >= 0"
    assert reasons[5] == "duplicate question id 'q0' (first at row 0)"
    assert reasons[6].startswith("missing label: no answers")
    assert reasons[7].startswith("malformed entry: qas[7] of paragraph 0 of article 0 ('T')")
    assert reasons[8] == "empty text in column 'context'"
    assert reasons[9] == "malformed entry: paragraph 2 of article 0 ('T') lacks a 'context' string"
    assert all(d.source == "bad.json" for d in out if isinstance(d, DeadLetter))
    with pytest.raises(ValueError, match="not SQuAD JSON"):
        (tmp_path / "x.json").write_text('{"rows": []}')
        list(read_records(str(tmp_path / "x.json"), builtin_task("squad2")))


def test_the_datasets_layout_reads_from_jsonl(tmp_path):
    ctx = "Rollo led the Normans to Normandy in 911."
    rows = [{"id": "a", "question": "Who?", "context": ctx,
             "answers": {"text": ["Rollo"], "answer_start": [0]}},
            {"id": "b", "question": "Why?", "context": ctx,
             "answers": {"text": [], "answer_start": []}}]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = builtin_task("squad2").replace(format="jsonl")
    a, b = read_records(str(path), task)
    assert a["answers"] == [{"text": "Rollo", "answer_start": 0}] and not a["is_impossible"]
    assert b["answers"] == [] and b["is_impossible"]


def test_normalisation_and_token_f1_by_hand():
    assert normalize_answer("The  Quick, brown-fox!") == "quick brownfox"
    assert normalize_answer("an apple a day") == "apple day"
    # gold {cat, sat, on, mat}, prediction {cat, on, mat}: P = 1, R = 3/4, F1 = 6/7
    assert f1_score("the cat sat on the mat", "cat on a mat") == pytest.approx(6 / 7)
    assert f1_score("", "") == 1.0 and f1_score("", "x") == 0.0          # v2.0 empty answers
    assert f1_score("", "", empty_match=False) == 0.0                      # v1.1


GOLD = {"q1": ["France"], "q2": ["10th and 11th centuries", "in the 10th and 11th centuries"],
        "q3": [], "q4": []}


def test_v1_and_v2_scores_by_hand():
    v1 = evaluate_v1({"a": ["Denver Broncos", "The Denver Broncos"], "b": ["Rollo"]},
                     {"a": "denver broncos"})        # b has no prediction: it scores 0
    assert v1 == {"exact": 50.0, "f1": 50.0, "total": 2}
    preds = {"q1": "France", "q2": "11th centuries", "q3": "", "q4": "Rollo"}
    out = evaluate_v2(GOLD, preds)
    # q2: F1 2/3 against the first answer (P 1, R 1/2), 4/7 against the second: the best counts
    assert out["exact"] == 50.0 and out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 4)
    assert out["HasAns_exact"] == 50.0 and out["HasAns_f1"] == pytest.approx(100 * 5 / 6)
    assert out["NoAns_exact"] == 50.0 and out["NoAns_f1"] == 50.0
    assert out["HasAns_total"] == 2 and out["total"] == 4


def test_v2_drops_gold_answers_that_normalise_to_nothing():
    # evaluate-v2.0.py: gold texts that normalise to "" are dropped, and a question left
    # without any is scored as unanswerable (gold ""); v1.1 keeps every gold text as given
    gold = {"a": ["The", "Rollo"], "b": ["a"], "c": ["the"]}
    out = evaluate_v2(gold, {"a": "", "b": "", "c": "Rollo"})
    assert out["exact"] == pytest.approx(100 / 3) and out["f1"] == pytest.approx(100 / 3)
    assert out["HasAns_total"] == 3 and "NoAns_total" not in out    # has_answer: gold given
    v1 = evaluate_v1({"a": ["The"]}, {"a": ""})
    assert v1 == {"exact": 100.0, "f1": 0.0, "total": 1}     # "" == "" but no shared token


def test_no_answer_threshold_chosen_as_the_official_script_does():
    spans = {"q1": "France", "q2": "11th centuries", "q3": "Normans", "q4": "Rollo"}
    odds = {"q1": -3.0, "q2": 0.5, "q3": 2.0, "q4": -1.0}
    has = {q: bool(a) for q, a in GOLD.items()}
    f1_raw = {"q1": 1.0, "q2": 2 / 3, "q3": 0.0, "q4": 0.0}
    # start: 2 right (both unanswerable), q1 +1 -> 3 (best, threshold -3), q4 -1, q2 +2/3, q3 -1
    assert find_best_threshold(spans, f1_raw, odds, has) == (75.0, -3.0)
    metrics, final = squad_metrics(["f1", "exact", "HasAns_f1", "NoAns_f1", "best_f1"], GOLD,
                                   spans, null_odds=odds)
    assert final == {"q1": "France", "q2": "", "q3": "", "q4": ""}
    assert metrics["threshold"] == -3.0 and metrics["f1"] == 75.0 == metrics["best_f1"]
    assert metrics["HasAns_f1"] == 50.0 and metrics["NoAns_f1"] == 100.0
    at_zero, final = squad_metrics(["f1", "exact"], GOLD, spans, null_odds=odds, threshold=0.0)
    assert final == {"q1": "France", "q2": "", "q3": "", "q4": "Rollo"}
    assert at_zero["exact"] == 50.0 and at_zero["f1"] == 50.0
    v1, final = squad_metrics(["f1", "exact"], {"q1": ["France"]}, {"q1": "in France"})
    assert final == {"q1": "in France"} and v1["exact"] == 0.0
    assert v1["f1"] == pytest.approx(100 * 2 / 3)


def test_split_by_article_keeps_the_official_format(tmp_path):
    from distiller.taskdata.squad_split import main

    assert main([SAMPLE, "--out", str(tmp_path)]) == 0
    train = json.loads((tmp_path / "train.json").read_text())
    dev = json.loads((tmp_path / "dev.json").read_text())
    assert dev["version"] == "v2.0" and [a["title"] for a in dev["data"]] == [
        "Victoria_(Australia)"]
    assert len(train["data"]) == 4
    assert len(list(read_records(str(tmp_path / "dev.json"), builtin_task("squad2")))) == 247
    assert main([SAMPLE, "--out", str(tmp_path), "--dev-titles", "Nope"]) == 2
    # the same as a `distiller` subcommand; bad input is one line
    from distiller.cli import main as distiller

    other = tmp_path / "by-title"
    assert distiller(["squad-split", SAMPLE, "--out", str(other), "--dev-titles",
                      "Normans"]) == 0
    dev = json.loads((other / "dev.json").read_text())
    assert [a["title"] for a in dev["data"]] == ["Normans"]
    assert distiller(["squad-split", str(tmp_path / "missing.json"), "--out",
                      str(other)]) == 2
