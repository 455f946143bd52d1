"""Words as character spans of the original text, and span edits that keep everything else.

Augmenters choose words, then rewrite only those words' character spans: case, punctuation and
whitespace elsewhere stay byte-identical to the input (no lower-casing, no '##'/'Ġ' artefacts).
"""
from __future__ import annotations

import re
from typing import List, NamedTuple, Sequence, Tuple

from distiller.common.errors import UsageError

__all__ = ["Word", "split_words", "editable", "is_clitic", "looks_like_name", "apply_edits",
           "match_case",
           "n_to_change",
           "STOP_WORDS"]

# A word: letters/digits, optionally joined by an apostrophe or hyphen ("don't", "well-made").
_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
_APOSTROPHES = "'\u2019`"

# EDA's stop-word list (Wei & Zou 2019, code/eda.py), plus the clitic pieces of GLUE tokenisation.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves what which who whom this that
these those am is are was were be been being have has had having do does did doing a an the and
but if or because as until while of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here
there when where why how all any both each few more most other some such no nor not only own same
so than too very s t can will just don should now n't 's 're 've 'll 'd 'm
""".split())


class Word(NamedTuple):
    """A word of the text: its characters are text[start:end]."""

    start: int
    end: int
    text: str


def split_words(text: str) -> List[Word]:
    """The words of `text` in order, as spans (punctuation and whitespace are not words)."""
    return [Word(m.start(), m.end(), m.group()) for m in _WORD_RE.finditer(text)]


def is_clitic(text: str, word: Word) -> bool:
    """A piece split off by an apostrophe, like the "s" of "it 's": never moved or replaced."""
    return word.start > 0 and text[word.start - 1] in _APOSTROPHES


def looks_like_name(text: str, word: Word) -> bool:
    """Capitalised but not at the start of a sentence ("Reeve", "Paris"): WordNet synonyms of a
    name are mostly wrong senses ("Christopher" -> "saint"), so EDA leaves names alone."""
    if not word.text[:1].isupper():
        return False
    before = text[:word.start].rstrip(" \t\"'(\u201c")
    return bool(before) and before[-1] not in ".!?\n"


def editable(text: str, word: Word, *, skip_stop_words: bool = False) -> bool:
    """Whether a word may be replaced: it has a letter, is not a clitic ("it 's" -> "s"), and
    (with skip_stop_words) is not a stop word."""
    if not any(c.isalpha() for c in word.text):
        return False
    if is_clitic(text, word):
        return False
    if skip_stop_words and word.text.lower() in STOP_WORDS:
        return False
    return True


def apply_edits(text: str, edits: Sequence[Tuple[int, int, str]]) -> str:
    """Replace each text[start:end] by its string; spans must not overlap."""
    out, pos = [], 0
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < pos:
            raise UsageError(f"overlapping edits at character {start} of {text!r}")
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def match_case(template: str, word: str) -> str:
    """`word` with the case pattern of `template`: "Good"->"Fine", "GOOD"->"FINE", else as-is
    lower-case."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def n_to_change(aug_p: float, n_words: int, aug_min: int = 1, aug_max=None) -> int:
    """How many of n_words to change at fraction aug_p: round(aug_p*n), at least aug_min, at most
    aug_max and n_words."""
    k = max(aug_min, int(aug_p * n_words + 0.5))
    if aug_max is not None:
        k = min(k, aug_max)
    return min(k, n_words)
