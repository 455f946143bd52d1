"""Extractive QA input: the official SQuAD JSON (v1.1 and v2.0) and span records of any format.

The SQuAD file is ``{"version", "data": [article]}``, an article ``{"title", "paragraphs":
[{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}],
"is_impossible", "plausible_answers"}]}]}``. Every ``qas`` entry is one row (numbered in file
order from 0, the row of its dead letter); a paragraph or an article that is not what the format
says is one dead row too. Splits are runs of whole articles (``Split.start``/``end`` are article
indices); the file is parsed once per process.

`span_record` turns one row (from this file, or a JSONL / Parquet / `datasets` row of the
`datasets` SQuAD layout, ``answers = {"text": [...], "answer_start": [...]}``) into a record::

    {"id": question id, "text_a": question, "text_b": context, "label": None,
     "answers": [{"text", "answer_start"}], "is_impossible": bool, "plausible_answers": [...]}

or a DeadLetter: an answer whose text is not at its ``answer_start`` in the context, an empty
question or context, a question without an answer in a task that needs one (SQuAD 1.1), a
malformed entry (naming the field), a repeated question id.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Dict, Iterator, List, Optional, Tuple

from distiller.common.errors import UsageError

from .rows import MISSING, DeadLetter, Unusable, cell_text, column_value, record_id
from .sources import Input
from .splits import Split

__all__ = ["FIELDS", "plan_squad", "read_squad_split", "span_record", "load_squad",
           "questions_of"]

FIELDS = ("id", "title", "question", "context", "answers", "is_impossible", "plausible_answers")
_RAW_LIMIT = 2000   # characters of an entry kept in its dead letter


def _raw(obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, default=str)
    return text if len(text) <= _RAW_LIMIT else text[:_RAW_LIMIT] + "..."


@functools.lru_cache(maxsize=4)
def _load(url: str, compression: Optional[str]):
    inp = Input(url=url, name=url, fmt="squad", compression=compression)
    with inp.open() as fh:
        try:
            data = json.loads(fh.read().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"{url}: not readable SQuAD JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise UsageError(f"{url}: not SQuAD JSON: expected an object with a 'data' list of "
                         "articles (the official SQuAD format); for one JSON object per line "
                         "use --format jsonl")
    rows = list(_entries(data["data"]))
    return data["data"], rows


def load_squad(inp) -> Tuple[list, List[Tuple[int, Optional[Dict], Optional[str], str]]]:
    """(articles, one (article index, row or None, error or None, raw) per row, in file order).
    Rows carry FIELDS; repeated question ids are errors after their first occurrence."""
    return _load(inp.url, inp.compression)


def _entries(articles: list) -> Iterator[Tuple[int, Optional[Dict], Optional[str], str]]:
    seen: Dict[str, int] = {}
    row = 0
    for a, article in enumerate(articles):
        title = article.get("title") if isinstance(article, dict) else None
        where = f"article {a}" + (f" ({title!r})" if title else "")
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            yield a, None, f"malformed entry: {where} has no 'paragraphs' list", _raw(article)
            row += 1
            continue
        for p, para in enumerate(paragraphs):
            at = f"paragraph {p} of {where}"
            context = para.get("context") if isinstance(para, dict) else None
            qas = para.get("qas") if isinstance(para, dict) else None
            if not isinstance(context, str) or not isinstance(qas, list):
                field = "a 'context' string" if not isinstance(context, str) else "a 'qas' list"
                yield a, None, f"malformed entry: {at} lacks {field}", _raw(para)
                row += 1
                continue
            for q, qa in enumerate(qas):
                raw = _raw({"title": title, "paragraph": p, "qas_index": q, "qa": qa})
                if not isinstance(qa, dict):
                    yield a, None, f"malformed entry: qas[{q}] of {at} is not an object", raw
                    row += 1
                    continue
                qid = qa.get("id")
                if isinstance(qid, str) and qid in seen:
                    yield a, None, (f"duplicate question id {qid!r} (first at row "
                                    f"{seen[qid]})"), raw
                    row += 1
                    continue
                if isinstance(qid, str):
                    seen[qid] = row
                entry = {k: qa[k] for k in FIELDS if k in qa}
                entry.update(title=title, context=context)
                yield a, entry, None, raw
                row += 1


def plan_squad(inp, rows_per_split: int, limit: Optional[int]):
    """Splits of whole articles holding about `rows_per_split` rows (the first `limit` rows)."""
    _, rows = load_squad(inp)
    total = len(rows) if limit is None else min(limit, len(rows))
    first = 0
    while first < total:
        last = first + 1   # an article is never cut: a split ends where an article ends
        while last < total and not (last - first >= rows_per_split
                                    and rows[last][0] != rows[last - 1][0]):
            last += 1
        yield Split(inp, first, rows[first][0], rows[last - 1][0] + 1, max_rows=last - first)
        first = last


def read_squad_split(split) -> Iterator[Tuple[int, Optional[Dict], Optional[str], str]]:
    """(row index, row or None, error or None, raw) for the rows of a split."""
    _, rows = load_squad(split.input)
    end = split.first_row + (split.max_rows if split.max_rows is not None else len(rows))
    for index in range(split.first_row, min(end, len(rows))):
        _, row, error, raw = rows[index]
        yield index, row, error, raw


def _answers(value: Any, field: str) -> Tuple[Optional[List[Dict[str, Any]]], Optional[str]]:
    """(answers as [{"text", "answer_start"}], None) or (None, reason) from either layout."""
    if value is None or value is MISSING:
        return [], None
    if isinstance(value, dict):   # datasets layout: {"text": [...], "answer_start": [...]}
        texts, starts = value.get("text"), value.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or \
                len(texts) != len(starts):
            return None, (f"malformed entry: {field!r} must hold equally long 'text' and "
                          f"'answer_start' lists, got {_raw(value)[:200]}")
        value = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    if not isinstance(value, list):
        return None, f"malformed entry: {field!r} is not a list of answers"
    out = []
    for i, ans in enumerate(value):
        if not isinstance(ans, dict):
            return None, f"malformed entry: {field}[{i}] is not an object"
        text, start = ans.get("text"), ans.get("answer_start")
        if not isinstance(text, str) or not text:
            return None, f"malformed entry: {field}[{i}] lacks a non-empty 'text'"
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            return None, f"malformed entry: {field}[{i}] lacks an 'answer_start' >= 0"
        out.append({"text": text, "answer_start": int(start)})
    return out, None


def _misplaced(answers: List[Dict[str, Any]], context: str, field: str) -> Optional[str]:
    for i, ans in enumerate(answers):
        start, text = ans["answer_start"], ans["text"]
        found = context[start:start + len(text)]
        if found != text:
            return (f"answer text {text!r} is not at its answer_start {start} ({field}[{i}]): "
                    f"the context there reads {found!r}")
    return None


def span_record(row: Dict[Any, Any], *, task, source: str, index: int, raw: str,
                labelled: bool = True):
    """A span task's record for one row, or a DeadLetter with the reason (see module doc)."""
    def dead(reason: str) -> DeadLetter:
        return DeadLetter(source=source, row=index, reason=reason, raw=raw)

    texts = []
    for column in (task.text_a, task.text_b):
        value = column_value(row, column)
        if value is MISSING:
            return dead(f"malformed entry: missing field {column!r}")
        text = cell_text(value, column)
        if isinstance(text, Unusable):
            return dead(text.reason)
        texts.append(text)
    question, context = texts
    qid = column_value(row, task.id) if task.id is not None else MISSING
    if isinstance(qid, bytes):
        qid = qid.decode("utf-8", "replace")
    if qid is MISSING or qid in (None, ""):
        qid = record_id(source, index)
    record: Dict[str, Any] = {"id": str(qid), "text_a": question, "text_b": context,
                              "label": None, "answers": None, "is_impossible": None}
    if not labelled:
        return record
    field = task.label if isinstance(task.label, str) else "answers"
    answers, problem = _answers(column_value(row, task.label), field)
    if problem:
        return dead(problem)
    impossible = row.get("is_impossible")
    if impossible is not None and not isinstance(impossible, bool):
        return dead(f"malformed entry: 'is_impossible' must be true or false, got "
                    f"{impossible!r}")
    impossible = (not answers) if impossible is None else impossible
    if impossible and answers:
        return dead(f"malformed entry: is_impossible is true but {len(answers)} answer(s) "
                    "are given")
    if not impossible and not answers:
        return dead(f"missing label: no answers in {field!r} and is_impossible is not true")
    if impossible and not task.unanswerable:
        return dead(f"question without an answer (is_impossible) in task {task.name}, whose "
                    "questions all have one (SQuAD 1.1): use a task with unanswerable "
                    "questions (squad2)")
    plausible, problem = _answers(row.get("plausible_answers"), "plausible_answers")
    if problem:
        return dead(problem)
    problem = _misplaced(answers, context, field) or _misplaced(plausible, context,
                                                                "plausible_answers")
    if problem:
        return dead(problem)
    record.update(answers=answers, is_impossible=bool(impossible))
    if plausible:
        record["plausible_answers"] = plausible
    return record


def questions_of(records) -> Dict[str, Dict[str, Any]]:
    """{id: {"answers": [texts], "is_impossible"}} of labelled span records: the gold answers
    the metric scores predictions against."""
    return {r["id"]: {"answers": [a["text"] for a in r["answers"] or []],
                      "is_impossible": bool(r["is_impossible"])}
            for r in records if r.get("answers") is not None}
