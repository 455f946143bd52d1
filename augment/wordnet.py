"""Real WordNet 3.0 through nltk's reader, loaded once per process, with memoised synonyms.

Where nltk's own ``wordnet`` corpus is installed it is used. Otherwise the Debian packages
``wordnet-base`` and ``wordnet-sense-index`` (database under /usr/share/wordnet) are made readable
by nltk: a directory ``<cache>/nltk_data/corpora/wordnet`` is built once, atomically (a temporary
directory renamed into place), holding copies of the Debian files (nltk
>= 3.10 refuses symlinks leaving the corpus root and hard links) plus the ``lexnames`` table of
lexnames(5WN), which Debian does not ship as a file. ``<cache>`` is ``$DISTILLER_CACHE`` or
``~/.cache/distiller``. The same code runs inside Beam worker processes (it is idempotent).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import warnings
from typing import Dict, Optional, Tuple

from distiller.common.errors import UsageError

__all__ = ["WordNetMissing", "load_wordnet", "synonyms", "WORDNET_DIR", "INSTALL_HINT"]

log = logging.getLogger(__name__)

WORDNET_DIR = os.environ.get("DISTILLER_WORDNET_DIR", "/usr/share/wordnet")
INSTALL_HINT = "apt-get install wordnet-base wordnet-sense-index"

# lexnames(5WN): file number, lexicographer file name, syntactic category (1 n, 2 v, 3 adj, 4 adv).
_LEXNAMES = (
    ["adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
     "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
     "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
     "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
     "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
     "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
     "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
     "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
     "adj.ppl"])
_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
_REQUIRED = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb",
             "index.adj", "index.adv", "index.sense", "noun.exc", "verb.exc", "adj.exc",
             "adv.exc")

_lock = threading.Lock()
_wordnet = None
_memo: Dict[Tuple[str, Optional[str]], Tuple[str, ...]] = {}
_index = None
_ADJ_MARKER = re.compile(r"\((a|p|ip)\)$")


class WordNetMissing(RuntimeError):
    """WordNet 3.0 is neither in nltk's data nor installed from Debian packages."""


def lexnames_text() -> str:
    """The 45-line lexnames file: "NN\\tname\\tcategory" per line."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n"
                   for i, name in enumerate(_LEXNAMES))


def _cache_root() -> str:
    root = os.environ.get("DISTILLER_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "distiller")
    return os.path.join(root, "nltk_data")


def _link_or_copy(src: str, dst: str) -> None:
    # nltk >= 3.10's path hardening refuses both symlinks leaving the corpus root and
    # multiply-linked files (st_nlink > 1), so the 36 MB of database files are copied.
    shutil.copyfile(src, dst)


def _build_nltk_dir(source: str, nltk_root: str) -> None:
    """Create nltk_root/corpora/wordnet (symlinks + lexnames) atomically if absent."""
    target = os.path.join(nltk_root, "corpora", "wordnet")
    if os.path.isfile(os.path.join(target, "lexnames")):
        return
    missing = [f for f in _REQUIRED if not os.path.isfile(os.path.join(source, f))]
    if missing:
        raise WordNetMissing(
            f"WordNet 3.0 not found: {source!r} lacks {missing[:4]}; install it with "
            f"`{INSTALL_HINT}` (or nltk.download('wordnet'))")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".wordnet-", dir=os.path.dirname(target))
    os.chmod(tmp, 0o755)
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if os.path.isfile(path):
            _link_or_copy(path, os.path.join(tmp, name))
    with open(os.path.join(tmp, "lexnames"), "w", encoding="ascii") as fh:
        fh.write(lexnames_text())
    try:
        os.rename(tmp, target)  # atomic; another process may have won the race
    except OSError:
        if not os.path.isfile(os.path.join(target, "lexnames")):
            raise
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def load_wordnet():
    """nltk's WordNet corpus reader, loaded once per process; WordNetMissing if unavailable."""
    global _wordnet
    if _wordnet is not None:
        return _wordnet
    with _lock:
        if _wordnet is not None:
            return _wordnet
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader

        try:
            root = nltk.data.find("corpora/wordnet")
            source = "nltk_data"
        except LookupError:
            nltk_root = _cache_root()
            _build_nltk_dir(WORDNET_DIR, nltk_root)
            if nltk_root not in nltk.data.path:
                nltk.data.path.append(nltk_root)
            root = nltk.data.find("corpora/wordnet")
            source = WORDNET_DIR

        class EnglishWordNet(WordNetCorpusReader):
            """nltk's reader without the map from WordNet 3.0 offsets that it builds on load for
            multilingual (OMW) data only: about half its load time on Debian's WordNet 3.1, paid
            by every worker process; no OMW data is loaded here."""

            def map_wn(self, version="wordnet"):
                return None

        with warnings.catch_warnings():  # "multilingual functions are not available": no OMW
            warnings.simplefilter("ignore", UserWarning)
            reader = EnglishWordNet(root, None)
        reader.synsets("dog")  # fail here, not in the middle of a run
        log.info("WordNet %s loaded from %s", reader.get_version(), source)
        _wordnet = reader
        return _wordnet


def _synonym_index():
    """{pos: {lemma: [synset index]}} and [synset words] parsed from the data.* files once.

    nltk builds a Synset object (and parses its pointers) for every lookup, about 2 ms a word;
    reading the synset word lists once makes a lookup a dictionary access after nltk's morphy.
    """
    global _index
    if _index is not None:
        return _index
    wn = load_wordnet()
    with _lock:
        if _index is None:
            by_pos: Dict[str, Dict[str, list]] = {p: {} for p in "nvar"}
            words: list = []
            for pos, fileid in (("n", "data.noun"), ("v", "data.verb"), ("a", "data.adj"),
                                ("r", "data.adv")):
                raw = wn.open(fileid).read()
                lemmas = by_pos[pos]
                for line in (raw.decode("utf-8") if isinstance(raw, bytes) else raw).splitlines():
                    if not line or line[0] == " ":
                        continue  # licence header
                    fields = line.split(" ", 4 + 2 * 255)
                    n = int(fields[3], 16)
                    names = tuple(_ADJ_MARKER.sub("", fields[4 + 2 * i]) for i in range(n))
                    idx = len(words)
                    words.append(names)
                    for name in names:
                        lemmas.setdefault(name.lower(), []).append(idx)
            _index = (by_pos, words)
            log.info("WordNet synonym index: %d synsets", len(words))
    return _index


def synonyms(word: str, pos: Optional[str] = None) -> Tuple[str, ...]:
    """Sorted WordNet synonyms of `word` (lower-cased lemma names, '_'/'-' -> ' '), memoised.

    pos: None for all parts of speech, else one of 'n', 'v', 'a', 'r'. Inflected forms are
    lemmatised with WordNet's morphy, as nltk's ``synsets`` does. The word itself is excluded.
    The tuple is sorted so sampling from it never depends on set iteration order.
    """
    key = (word.lower(), pos)
    hit = _memo.get(key)
    if hit is not None:
        return hit
    if pos is not None and pos not in "nvar":
        raise UsageError(f"pos must be None or one of 'n', 'v', 'a', 'r', got {pos!r}")
    by_pos, words = _synonym_index()
    wn = load_wordnet()
    found = set()
    for p in ([pos] if pos else "nvar"):
        for form in wn._morphy(key[0], p):
            for idx in by_pos[p].get(form, ()):
                for lemma in words[idx]:
                    name = lemma.replace("_", " ").replace("-", " ").lower()
                    if name != key[0] and all(c.isalpha() or c in " '" for c in name):
                        found.add(name)
    result = tuple(sorted(found))
    _memo[key] = result
    return result
