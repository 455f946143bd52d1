"""SQuAD metrics computed as the official evaluation scripts compute them (v1.1 and v2.0).

Answers are normalised (lower case, punctuation removed, the articles a/an/the removed, runs of
whitespace collapsed); exact match is equality of normalised strings, F1 the harmonic mean of
token precision and recall (tokens counted with multiplicity); each question takes the best
over its gold answers; figures are percentages.

v1.1 (`evaluate_v1`): every gold answer counts as given; a question without a prediction scores
0 and still counts. v2.0 (`evaluate_v2`): gold answers that normalise to nothing are dropped, a
question without any is unanswerable (gold ""); F1 against or of an empty answer is 1 when both
are empty, else 0; questions without a prediction are left out; with no-answer probabilities
(here: null odds, null score minus best span score) a prediction is replaced by "" above
`na_prob_thresh`, and ``best_exact``/``best_f1`` with their thresholds come from sweeping the
threshold over the questions in order of their odds (official `find_best_thresh`).

`squad_metrics` is what training and `distiller evaluate` call: the task's metrics for
predicted spans and null odds, with the no-answer threshold chosen on those questions (the
official best-F1 threshold) unless one is given.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["normalize_answer", "exact_score", "f1_score", "evaluate_v1", "evaluate_v2",
           "find_best_threshold", "apply_threshold", "squad_metrics"]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)

Gold = Mapping[str, Sequence[str]]   # question id -> gold answer texts ([] = unanswerable)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the official normalisation)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> List[str]:
    return normalize_answer(text).split() if text else []


def exact_score(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str, *, empty_match: bool = True) -> float:
    """Token F1. empty_match (v2.0): if either side has no tokens, 1 when both have none, else
    0; v1.1 (False) scores 0 whenever nothing is shared."""
    gold_toks, pred_toks = _tokens(gold), _tokens(prediction)
    if empty_match and (not gold_toks or not pred_toks):
        return float(gold_toks == pred_toks)
    same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def evaluate_v1(gold: Gold, predictions: Mapping[str, str]) -> Dict[str, float]:
    """{"exact", "f1", "total"} as evaluate-v1.1.py: the best over each question's gold answers;
    a question without a prediction scores 0."""
    exact = f1 = 0.0
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        pred = predictions[qid]
        exact += max((float(normalize_answer(pred) == normalize_answer(a)) for a in answers),
                     default=0.0)
        f1 += max((f1_score(a, pred, empty_match=False) for a in answers), default=0.0)
    total = len(gold)
    return {"exact": 100.0 * exact / total if total else 0.0,
            "f1": 100.0 * f1 / total if total else 0.0, "total": total}


def _raw_scores(gold: Gold, predictions: Mapping[str, str]
                ) -> Tuple[Dict[str, float], Dict[str, float]]:
    exact, f1 = {}, {}
    for qid, answers in gold.items():
        texts = [a for a in answers if normalize_answer(a)] or [""]
        if qid not in predictions:
            continue
        pred = predictions[qid]
        exact[qid] = float(max(exact_score(a, pred) for a in texts))
        f1[qid] = max(f1_score(a, pred) for a in texts)
    return exact, f1


def apply_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float],
                    has_answer: Mapping[str, bool], threshold: float) -> Dict[str, float]:
    """Scores with "no answer" predicted where the no-answer probability exceeds `threshold`."""
    return {qid: (float(not has_answer[qid]) if na_probs[qid] > threshold else s)
            for qid, s in scores.items()}


def find_best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float],
                        na_probs: Mapping[str, float], has_answer: Mapping[str, bool]
                        ) -> Tuple[float, float]:
    """(best score in %, its threshold): start from "no answer" everywhere, then answer the
    questions in increasing order of no-answer probability, keeping the best running total."""
    current = best = float(sum(1 for qid in has_answer if not has_answer[qid]))
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, threshold = current, na_probs[qid]
    return 100.0 * best / len(scores), threshold


def _summary(exact: Mapping[str, float], f1: Mapping[str, float],
             qids: Optional[Sequence[str]] = None) -> Dict[str, float]:
    qids = list(exact) if qids is None else list(qids)
    total = len(qids)
    return {"exact": 100.0 * sum(exact[q] for q in qids) / total if total else 0.0,
            "f1": 100.0 * sum(f1[q] for q in qids) / total if total else 0.0, "total": total}


def evaluate_v2(gold: Gold, predictions: Mapping[str, str],
                na_probs: Optional[Mapping[str, float]] = None, na_prob_thresh: float = 1.0
                ) -> Dict[str, float]:
    """The dictionary evaluate-v2.0.py prints: exact, f1, total, HasAns_*/NoAns_* breakdowns
    and, with `na_probs`, best_exact/best_f1 and their thresholds."""
    has_answer = {qid: bool(answers) for qid, answers in gold.items()}
    probs = dict(na_probs) if na_probs is not None else {qid: 0.0 for qid in predictions}
    exact_raw, f1_raw = _raw_scores(gold, predictions)
    exact = apply_threshold(exact_raw, probs, has_answer, na_prob_thresh)
    f1 = apply_threshold(f1_raw, probs, has_answer, na_prob_thresh)
    out = _summary(exact, f1)
    for name, want in (("HasAns", True), ("NoAns", False)):
        qids = [q for q in gold if has_answer[q] == want and q in exact]
        if qids:
            out.update({f"{name}_{k}": v for k, v in _summary(exact, f1, qids).items()})
    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = find_best_threshold(
            predictions, exact_raw, probs, has_answer)
        out["best_f1"], out["best_f1_thresh"] = find_best_threshold(
            predictions, f1_raw, probs, has_answer)
    return out


def squad_metrics(metrics: Sequence[str], gold: Gold, spans: Mapping[str, str], *,
                  null_odds: Optional[Mapping[str, float]] = None,
                  threshold: Optional[float] = None) -> Tuple[Dict[str, float], Dict[str, str]]:
    """(the requested metrics, the final predictions {qid: answer text, "" = no answer}).

    spans: each question's best non-null answer. Without `null_odds` (SQuAD 1.1) the spans are
    the predictions (v1.1 rules). With them (SQuAD 2.0), a question is answered "" when its null
    odds exceed the threshold: `threshold`, or when None the official best-F1 threshold found on
    these very questions (best_f1 then equals f1); exact, f1 and the HasAns/NoAns figures are
    those of the final predictions; best_* come from the official sweep over the spans' odds.
    Extra keys: ``threshold`` (v2.0), ``total``."""
    if null_odds is None:
        result = evaluate_v1(gold, spans)
        return {m: result[m] for m in metrics if m in result} | {"total": result["total"]}, \
            dict(spans)
    sweep = evaluate_v2(gold, spans, null_odds)
    chosen = sweep["best_f1_thresh"] if threshold is None else float(threshold)
    final = {qid: ("" if null_odds[qid] > chosen else text) for qid, text in spans.items()}
    result = evaluate_v2(gold, final)
    result.update({k: sweep[k] for k in ("best_exact", "best_f1", "best_exact_thresh",
                                         "best_f1_thresh")})
    out = {m: result.get(m, 0.0) for m in metrics}
    out.update(threshold=chosen, total=result["total"])
    return out, final
