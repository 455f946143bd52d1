"""Back-translation with two tiny random MarianMT models (BPE tokenizer trained here)."""
import pytest

from distiller.augment import Job, create
from distiller.augment.backtranslate import split_sentences

TEXTS = ["it 's a charming and often affecting journey . ",
         "Unflinchingly bleak. And desperate! Yet funny?",
         "the acting , costumes , music , cinematography and sound are all astounding . "]


def _aug(tiny_marian, **params):
    fwd, bwd = tiny_marian
    params = {"max_length": 12, "max_length_ratio": 50.0, "num_beams": 2,
              "num_return_sequences": 2, **params}
    return create("backtranslate", forward_model=fwd, backward_model=bwd, **params)


def test_split_and_rejoin_keeps_separators():
    sents, seps = split_sentences("One. Two!  Three? four")
    assert sents == ["One.", "Two!", "Three?", "four"] and seps == [" ", "  ", " "]
    assert split_sentences("no split here") == (["no split here"], [])


def test_beam_mode_paraphrases_per_copy_and_counters(tiny_marian):
    aug = _aug(tiny_marian, mode="beam")
    jobs = [Job(t, seed=5, copy=c) for t in TEXTS for c in range(2)]
    outs, stats = aug.augment(jobs)
    assert stats["sentences"] == 2 * (1 + 3 + 1)  # the second text is split into 3 sentences
    assert stats["truncated"] > 0  # 12-token guard: counted, never silent
    assert all("<pad>" not in o and "</s>" not in o and "<unk>" not in o for o in outs)
    assert outs[0] != outs[1] or outs[0] == TEXTS[0]  # copy 0 and copy 1 take different beams
    # the second text's separators survive: three sentences rejoined with single spaces
    assert outs[2].count(" ") >= 2
    assert aug.augment(jobs[2:4])[0] == outs[2:4]  # batch composition does not matter


def test_sample_mode_per_row_generators(tiny_marian):
    aug = _aug(tiny_marian, mode="sample", top_p=0.9, temperature=1.0)
    jobs = [Job(TEXTS[0], seed=s, copy=s) for s in range(3)] + [Job(TEXTS[2], seed=9)]
    outs, stats = aug.augment(jobs)
    assert len(set(outs[:3])) == 3  # different seeds, different paraphrases of one text
    assert [aug.augment([j])[0][0] for j in jobs] == outs  # batched == one by one
    assert stats["changed"] + stats["noop"] == 4


def test_length_ratio_filter_returns_the_input(tiny_marian):
    aug = _aug(tiny_marian, mode="beam", max_length_ratio=1.0)
    outs, stats = aug.augment([Job(TEXTS[0], seed=1)])
    assert stats["length_filtered"] == 1 and outs == [TEXTS[0]]


def test_bad_params_rejected(tiny_marian):
    with pytest.raises(ValueError, match="forward_model must name a seq2seq model"):
        create("backtranslate", backward_model="x")
    with pytest.raises(ValueError, match=r"num_return_sequences \(5\) must be <= num_beams"):
        _aug(tiny_marian, num_beams=2, num_return_sequences=5)
    with pytest.raises(ValueError, match="max_length_ratio must be a number >= 1"):
        _aug(tiny_marian, max_length_ratio=0.5)


def test_edge_inputs(tiny_marian):
    aug = _aug(tiny_marian, mode="beam", max_length_ratio=100.0)
    texts = ["", "   ", "word", "Ünïcödé café — naïve résumé!", "good . " * 200]
    outs, stats = aug.augment([Job(t, seed=i) for i, t in enumerate(texts)])
    assert outs[0] == "" and outs[1] == "   " and len(outs) == 5
    assert all(isinstance(o, str) for o in outs)
    assert stats["sentences"] == 1 + 1 + 200  # empty and blank texts are not translated
