"""WordNet loading (real Debian WordNet 3.0) and the word-span helpers."""
import os

import pytest

from distiller.augment import wordnet
from distiller.augment.words import (STOP_WORDS, apply_edits, editable, is_clitic, match_case,
                                     n_to_change, split_words)


def test_lexnames_table_has_45_lines_in_man_page_format():
    lines = wordnet.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3"
    assert lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2"
    assert lines[44] == "44\tadj.ppl\t3"


def test_build_dir_in_a_fresh_cache(tmp_path):
    root = tmp_path / "nltk_data"
    wordnet._build_nltk_dir(wordnet.WORDNET_DIR, str(root))
    target = root / "corpora" / "wordnet"
    assert (target / "lexnames").read_text() == wordnet.lexnames_text()
    assert (target / "data.noun").stat().st_size == os.path.getsize(
        os.path.join(wordnet.WORDNET_DIR, "data.noun"))
    wordnet._build_nltk_dir(wordnet.WORDNET_DIR, str(root))  # idempotent
    assert not [p for p in os.listdir(root / "corpora") if p.startswith(".wordnet-")]
    assert not (target / "data.noun").is_symlink()  # nltk's path hardening refuses links


def test_load_wordnet_reads_the_real_database():
    wn = wordnet.load_wordnet()
    assert wn.get_version() == "3.0" and wordnet.load_wordnet() is wn  # once per process
    assert "travel" in {lemma.name() for s in wn.synsets("journey") for lemma in s.lemmas()}


def test_missing_wordnet_names_the_install_command(tmp_path):
    with pytest.raises(wordnet.WordNetMissing, match="apt-get install wordnet-base "
                                                     "wordnet-sense-index"):
        wordnet._build_nltk_dir(str(tmp_path / "empty"), str(tmp_path / "nltk_data"))


def test_synonyms_sorted_memoised_and_exclude_the_word():
    syns = wordnet.synonyms("journey")
    assert syns == tuple(sorted(syns)) and "travel" in syns and "journey" not in syns
    assert wordnet.synonyms("Journey") is syns  # memoised per (lower-cased word, pos)
    assert wordnet.synonyms("journey", "v") != syns
    assert wordnet.synonyms("qwxzv") == ()


def test_split_words_spans_and_clitics():
    text = "It 's a well-made, don't-miss film!"
    words = split_words(text)
    assert [w.text for w in words] == ["It", "s", "a", "well-made", "don't-miss", "film"]
    assert all(text[w.start:w.end] == w.text for w in words)
    assert is_clitic(text, words[1]) and not editable(text, words[1])
    assert not editable(text, words[2], skip_stop_words=True) and editable(text, words[5])
    assert "the" in STOP_WORDS and "film" not in STOP_WORDS


def test_apply_edits_and_case():
    assert apply_edits("Ab, cd  ef.", [(8, 10, "GH"), (0, 2, "Xy")]) == "Xy, cd  GH."
    with pytest.raises(ValueError, match="overlapping"):
        apply_edits("abcdef", [(0, 3, "x"), (2, 4, "y")])
    assert match_case("Good", "fine") == "Fine"
    assert match_case("GOOD", "fine") == "FINE"
    assert match_case("good", "fine") == "fine"
    assert [n_to_change(0.3, n) for n in (0, 1, 3, 10, 11)] == [0, 1, 1, 3, 3]
    assert n_to_change(0.5, 40, aug_max=10) == 10


def test_names_are_recognised_only_inside_sentences():
    from distiller.augment.words import looks_like_name

    text = 'Dana Reeve, the widow of Christopher Reeve. "Good" film; Paris is nice'
    flags = {w.text: looks_like_name(text, w) for w in split_words(text)}
    assert flags["Reeve"] and flags["Christopher"] and flags["Paris"]
    assert not flags["Dana"] and not flags["Good"] and not flags["widow"]
