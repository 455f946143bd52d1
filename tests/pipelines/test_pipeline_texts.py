"""Every valid text is kept: texts starting with each ASCII punctuation character go through
`distiller build` and `distiller evaluate` (from the cache and from the file) and all are scored;
the rows that are not texts are dead letters under their own summary categories."""
import json
import string

import pytest

from distiller.builders.cache.store import TeacherCache
from distiller.cli import main
from distiller.pipelines.parts import reason_category

pytestmark = pytest.mark.slow


def _json(capsys):
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_texts_starting_with_any_punctuation_are_built_and_evaluated(tmp_path, tiny_teacher,
                                                                    capsys):
    rows = [{"sentence": f"{mark}{mark} best film ever", "label": i % 2}
            for i, mark in enumerate(string.punctuation)]
    bad = [{"sentence": "a\x00b", "label": 1}, {"sentence": ["a", "list"], "label": 0}]
    data = tmp_path / "marks.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows + bad), encoding="utf-8")
    cache = str(tmp_path / "cache")
    assert main(["build", "--input", str(data), "--task", "sst2", "--teacher", tiny_teacher,
                 "--cache", cache, "--max-length", "32", "--workers", "1", "--no-progress",
                 "--json"]) == 0
    built = _json(capsys)
    kept = [f"marks.jsonl:{i}" for i in range(len(string.punctuation))]   # the 32 texts
    assert [r["id"] for r in TeacherCache.open(cache).read_corpus("sst2-train")] == sorted(kept)
    assert built["records_read"] == built["unique_keys"] == 32 and built["dead_letters"] == 2
    assert built["dead_letter_reasons"] == {"NUL byte": 1, "wrong type": 1}

    assert main(["evaluate", "--model", tiny_teacher, "--cache", cache, "--corpus",
                 "sst2-train"]) == 0
    assert _json(capsys)["examples"] == 32
    preds = tmp_path / "preds.jsonl"
    assert main(["evaluate", "--model", tiny_teacher, "--task", "sst2", "--file", str(data),
                 "--max-length", "32", "--predictions", str(preds)]) == 0
    assert _json(capsys)["examples"] == 32
    with open(preds, encoding="utf-8") as fh:
        assert [json.loads(line)["id"] for line in fh] == kept


def test_reasons_group_into_their_own_categories():
    assert reason_category("NUL byte in column 'sentence' (a damaged or binary row)") == \
        "NUL byte"
    assert reason_category("wrong type in column 'sentence': a list, not a text") == \
        "wrong type"
    assert reason_category("empty text in column 'sentence'") == "empty text"
