"""Contextual substitution with a tiny random BertForMaskedLM (tokenizer trained on SST-2)."""
import re

import pytest

from distiller.augment import Job, create
from distiller.augment.words import split_words

SPECIAL = re.compile(r"\[(CLS|SEP|MASK|PAD|UNK)\]|##")


@pytest.fixture(scope="module")
def sample_aug(tiny_mlm):
    aug = create("contextual", model=tiny_mlm, aug_p=0.3)
    aug.load()
    return aug


def _jobs(texts, offset=0):
    return [Job(t, seed=1000 + offset + i) for i, t in enumerate(texts)]


def test_sample_mode_fraction_fidelity_and_no_fragments(sample_aug, sentences):
    outs, stats = sample_aug.augment(_jobs(sentences))
    fractions = []
    for src, out in zip(sentences, outs):
        assert not SPECIAL.search(out), out
        a, b = split_words(src), split_words(out)
        assert len(a) == len(b)  # one word in, one word out
        gaps = [src[x.end:y.start] for x, y in zip(a, a[1:])]
        assert gaps == [out[x.end:y.start] for x, y in zip(b, b[1:])]
        assert src[:a[0].start] == out[:b[0].start] and src[a[-1].end:] == out[b[-1].end:]
        changed = sum(x.text != y.text for x, y in zip(a, b))
        editable = sum(any(c.isalpha() for c in w.text) for w in a)
        if editable >= 6:
            fractions.append(changed / editable)
    mean = sum(fractions) / len(fractions)
    assert 0.2 < mean < 0.4, mean
    assert stats["changed"] >= 0.95 * len(sentences)


def test_batched_forward_passes_not_one_per_word(sample_aug, sentences):
    before = sample_aug.lm.counters["forward_passes"]
    sample_aug.augment(_jobs(sentences[:64]))
    passes = sample_aug.lm.counters["forward_passes"] - before
    n_words = sum(len(split_words(t)) for t in sentences[:64])
    assert passes <= 8 < n_words * 0.3


def test_batched_equals_one_by_one(sample_aug, sentences):
    jobs = _jobs(sentences[:64], offset=7)
    batched, _ = sample_aug.augment(jobs)
    single = [sample_aug.augment([j])[0][0] for j in jobs]
    assert batched == single
    shuffled, _ = sample_aug.augment(list(reversed(jobs)))
    assert list(reversed(shuffled)) == batched


def test_scores_bit_identical_in_any_batch(sample_aug, sentences):
    """Each row is padded to its canonical width, so its scores never depend on its batch."""
    import torch

    lm = sample_aug.lm
    rows = [lm.tokenizer(s)["input_ids"] for s in sentences]
    positions = [[1, len(r) // 2] for r in rows]
    together = lm.predict(rows, positions, top=5)
    halves = lm.predict(rows[1::2], positions[1::2], top=5, max_tokens=300)
    for i, r in enumerate(rows):
        alone = lm.predict([r], [positions[i]], top=5)[0]
        assert torch.equal(alone[0], together[i][0]) and torch.equal(alone[1], together[i][1])
        if i % 2:
            assert torch.equal(halves[i // 2][0], together[i][0])


def test_case_and_edge_inputs(sample_aug):
    long_text = "The film is good and the cast is great . " * 40
    texts = ["Charming Film, IMPRESSIVE acting!", "", "word", "   ",
             "Ünïcödé café — naïve résumé, déjà vu!", long_text, "12 34 , ."]
    outs, stats = sample_aug.augment(_jobs(texts))
    assert outs[1] == "" and outs[3] == "   " and outs[6] == "12 34 , ."
    assert outs[2] != "word" and outs[2].isalpha()
    first = split_words(outs[0])
    assert all(w.text[0].isupper() for w in first[:2]) and first[2].text.isupper()
    assert "—" in outs[4] and "," in outs[4]
    assert stats["truncated"] == 1
    # beyond the 128-token window nothing is edited
    assert outs[5][-100:] == long_text[-100:] and outs[5] != long_text


def test_tinybert_mode_candidates_and_copies(tiny_mlm, sentences):
    aug = create("contextual", model=tiny_mlm, mode="tinybert", top_k=15, p_t=0.4)
    jobs = [Job(t, seed=50 * i + c, copy=c)
            for i, t in enumerate(sentences[:20]) for c in range(20)]
    outs, stats = aug.augment(jobs)
    assert not any(SPECIAL.search(o) for o in outs)
    for i, src in enumerate(sentences[:20]):
        copies = outs[20 * i:20 * i + 20]
        assert len(set(copies)) > 10  # N_a = 20 copies of one sentence differ
    a = [split_words(s) for s in sentences[:20] for _ in range(20)]
    b = [split_words(o) for o in outs]
    changed = sum(x.text != y.text for wa, wb in zip(a, b) for x, y in zip(wa, wb))
    total = sum(sum(any(c.isalpha() for c in x.text) for x in wa) for wa in a)
    assert 0.3 < changed / total < 0.5  # p_t = 0.4
    # multi-piece words get embedding-space neighbours, not MLM predictions
    one = aug.augment([Job("unflinchingly bleak", seed=3)])[0][0]
    assert not SPECIAL.search(one)
    assert aug.augment(jobs[:40])[0] == outs[:40]


def test_bad_params_rejected(tiny_mlm):
    with pytest.raises(ValueError, match="must name a masked LM"):
        create("contextual")
    with pytest.raises(ValueError, match="mode must be one of"):
        create("contextual", model=tiny_mlm, mode="greedy")
    with pytest.raises(ValueError, match="top_p must be a number in"):
        create("contextual", model=tiny_mlm, top_p=1.5)
    with pytest.raises(ValueError, match="top_k must be an integer > 0"):
        create("contextual", model=tiny_mlm, top_k=0)
