"""EDA operations over real WordNet on real SST-2 sentences."""
import pytest

from distiller.augment import Job, create
from distiller.augment.eda import Eda, EdaConfig, eda_clean
from distiller.augment.words import STOP_WORDS, split_words


def _run(name, sentences, **params):
    aug = create(name, **params)
    jobs = [Job(t, seed=i) for i, t in enumerate(sentences)]
    return aug, aug.augment(jobs)


def test_synonym_replacement_fraction_stop_words_and_fidelity(sentences):
    _, (outs, stats) = _run("eda_synonym", sentences, aug_p=0.3)
    fractions = []
    for src, out in zip(sentences, outs):
        a, b = split_words(src), split_words(out)
        # everything between words (punctuation, spacing) is byte-identical
        gaps = lambda ws, t: [t[x.end:y.start] for x, y in zip(ws, ws[1:])]  # noqa: E731
        if len(a) == len(b):
            assert gaps(a, src) == gaps(b, out)
            assert src[:a[0].start] == out[:b[0].start] if a else True
            changed = [x.text for x, y in zip(a, b) if x.text != y.text]
            assert not [w for w in changed if w.lower() in STOP_WORDS]
            if len(a) >= 5:
                fractions.append(len(changed) / len(a))
    assert stats["changed"] > 0.9 * len(sentences)
    mean = sum(fractions) / len(fractions)
    assert 0.15 < mean <= 0.35, mean  # capped by words with synonyms; never above aug_p


@pytest.mark.parametrize("op", ["swap", "delete", "insert"])
def test_ops_change_about_aug_p_of_the_words(sentences, op):
    _, (outs, _) = _run(f"eda_{op}", sentences, aug_p=0.3)
    for src, out in zip(sentences, outs):
        n_src, n_out = len(split_words(src)), len(split_words(out))
        if op == "swap":
            assert sorted(w.text for w in split_words(src)) == sorted(
                w.text for w in split_words(out))
        elif op == "delete":
            assert n_out >= 1 and (n_src - n_out) <= max(1, round(0.3 * n_src)) + 1
        else:
            assert n_out - n_src <= max(1, round(0.3 * n_src)) * 3  # a synonym may be 3 words
    assert sum(o != s for o, s in zip(outs, sentences)) > 0.85 * len(sentences)


def test_edge_inputs_are_handled():
    texts = ["", "word", "Ünïcödé café naïve résumé, déjà vu!", "good " * 2000, "   ", "?!"]
    for name in ("eda_synonym", "eda_insert", "eda_swap", "eda_delete", "eda"):
        outs, _ = create(name).augment([Job(t, seed=3, copies=4) for t in texts])
        assert outs[0] == "" and outs[4] == "   " and outs[5] == "?!"
        assert len(outs) == len(texts) and all(isinstance(o, str) for o in outs)
    assert create("eda_delete").augment([Job("word", 1)])[0] == ["word"]  # never deletes all


def test_different_seeds_different_choices_same_seed_same_output(sentences):
    aug = create("eda_swap", aug_p=0.3)
    a = aug.augment([Job(sentences[5], seed=s) for s in range(10)])[0]
    b = aug.augment([Job(sentences[5], seed=s) for s in range(10)])[0]
    assert a == b and len(set(a)) > 3


def test_eda_reference_allocation_and_counts():
    eda = Eda(EdaConfig(text="reference"))
    alloc = eda.allocation(record_seed=11, copies=9)
    assert len(alloc) == 12 and sorted(set(alloc)) == ["delete", "insert", "swap", "synonym"]
    assert all(alloc.count(op) == 3 for op in set(alloc))  # int(9/4)+1 per op, as EDA
    assert eda.allocation(11, 9) == alloc and eda.allocation(12, 9) != alloc
    assert len(Eda(EdaConfig(p_rd=0, alpha_ri=0)).allocation(1, 4)) == 4  # 2 ops x (int(4/4)+1)
    text = "The Movie's charming, often affecting journey; a GREAT film!"
    outs, _ = eda.augment([Job(text, seed=c, record_seed=11, copy=c, copies=9) for c in range(9)])
    assert all(o == o.lower() and "," not in o for o in outs)  # EDA's own normalisation
    assert eda_clean(text) == "the movies charming often affecting journey a great film"
    preserve, _ = Eda(EdaConfig()).augment([Job(text, seed=c, record_seed=11, copy=c, copies=9)
                                           for c in range(9)])
    assert any("GREAT" in o for o in preserve)


def test_bad_params_are_rejected_clearly():
    with pytest.raises(ValueError, match=r"aug_p must be a number in \(0, 1\], got 0"):
        create("eda_swap", aug_p=0)
    with pytest.raises(ValueError, match="has no parameter"):
        create("eda_swap", alpha=0.1)
    with pytest.raises(ValueError, match="always applies op='swap'"):
        create("eda_swap", op="delete")
    with pytest.raises(ValueError, match="at least one of alpha_sr"):
        EdaConfig(alpha_sr=0, alpha_ri=0, alpha_rs=0, p_rd=0)
    with pytest.raises(ValueError, match=r"unknown augmenter 'eda_swp' \(did you mean eda_swap"):
        create("eda_swp")


def test_synonym_replacement_leaves_names_alone():
    text = "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer."
    outs, _ = create("eda_synonym", aug_p=0.5).augment([Job(text, seed=s) for s in range(20)])
    for out in outs:
        assert out.count("Reeve") == 2 and "Christopher" in out
    assert len(set(outs)) > 5
