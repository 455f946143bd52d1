"""A SQuAD build through the real argv: questions augmented (contexts and answers untouched),
cut into context windows, scored once per window, indexed with their question rows; bad entries
end as dead letters with their reasons."""
import json

import pytest

from distiller.cli import main
from distiller.taskdata.paths import shared_data


@pytest.fixture(scope="module")
def qa_teacher(tmp_path_factory):
    from tests.tinymodels import squad_texts, tiny_bert_qa

    return tiny_bert_qa(tmp_path_factory.mktemp("qa"), squad_texts(limit=600))


def _small_squad(path, n=10):
    with open(shared_data("squad", "squad2-sample.json"), encoding="utf-8") as fh:
        data = json.load(fh)
    para = data["data"][4]["paragraphs"][0]        # Victoria_(Australia)
    qas = para["qas"][:n] + [
        {"id": "bad-start", "question": "Where?", "is_impossible": False,
         "answers": [{"text": "Victoria", "answer_start": 1}]},
        {"id": "no-question", "answers": [], "is_impossible": True}]
    data["data"] = [{"title": "Victoria", "paragraphs": [dict(para, qas=qas)]}]
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path), {q["id"]: q for q in para["qas"][:n]}


@pytest.mark.slow    # a Beam run: ~30 s on a loaded 2-core machine
def test_squad_build_augments_questions_and_indexes_windows(tmp_path, qa_teacher, capsys):
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.cache.reader import CacheReader

    path, qas = _small_squad(tmp_path / "dev.json")
    cache = str(tmp_path / "cache")
    rc = main(["build", "--no-progress", "--json", "--input", path, "--task", "squad2",
               "--teacher", qa_teacher, "--cache", cache, "--augment", "eda_swap:0.3",
               "--max-length", "64", "--doc-stride", "24", "--max-query-length", "16",
               "--split", "dev", "--workers", "1"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records_read"] == 10 and summary["augmented_copies"] >= 8
    assert summary["dead_letters"] == 2 and summary["dead_letter_reasons"] == {
        "answer not in context": 1, "malformed row": 1}
    assert summary["windows"] > 2 * 18 and summary["newly_scored"] == summary["unique_keys"]
    store = TeacherCache.open(cache)
    name = next(n for n in store.corpora() if "+" in n)
    rows = store.read_corpus(name)
    questions = {q["id"]: q for q in store.read_questions(name)}
    assert set(questions) == set(qas)                # one question row per original
    copies = [r for r in rows if r["parent_id"]]
    assert copies and all(r["chain"] == name.split("+", 1)[1] for r in copies)
    reader = CacheReader(cache, layers=[])
    for row in copies[:12]:
        parent = questions[row["parent_id"]]
        start, end = row["label"]
        if start == row["cls_index"]:
            continue                                  # this window does not hold the answer
        # the copy's context is its parent's: its gold tokens point at the parent's answer
        offsets = parent["offsets"]
        first = row["ctx_first"] - row["ctx_start"]
        text = parent["context"][offsets[2 * (first + start)]:offsets[2 * (first + end) + 1]]
        assert text.lower().startswith(parent["answers"][0].lower()[:3])
        out = reader.get(row["key"])
        assert tuple(out["logits"].shape) == (len(out["input_ids"]), 2)
    dead = [json.loads(line) for line in open(summary["dead_letter_file"], encoding="utf-8")]
    assert {d["reason"].split(":")[0] for d in dead} == {
        "answer text 'Victoria' is not at its answer_start 1 (answers[0])",
        "malformed entry"}
    assert main(["cache", "verify", cache]) == 0
