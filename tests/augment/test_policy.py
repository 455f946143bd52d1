"""Policies: spec parsing, identity, copies/dedupe/provenance, determinism across batches and
processes."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from distiller.augment import AugmentationPolicy, parse_step
from distiller.augment import eda as eda_module
from distiller.taskdata import builtin_task, read_records

from .augment_testlib import RTE_DEV, SST2_DEV


def _records(path, task, n):
    return [r for r in read_records(path, builtin_task(task), limit=n)
            if isinstance(r, dict)]


@pytest.fixture(scope="module")
def sst2():
    return _records(SST2_DEV, "sst2", 64)


def test_parse_step_and_specs():
    assert parse_step("eda_swap:0.3") == ("eda_swap", {"aug_p": 0.3})
    assert parse_step("contextual(mode=tinybert,top_k=15):0.4") == (
        "contextual", {"mode": "tinybert", "top_k": 15, "aug_p": 0.4})
    p = AugmentationPolicy.from_spec("eda_synonym:0.1+eda_swap:0.1,copies=4")
    assert p.copies == 4 and [s for s, _ in p.steps] == ["eda_synonym", "eda_swap"]
    assert p.name == f"eda_synonym-p0.1+eda_swap-p0.1-n4-{p.fingerprint[:8]}"
    same = AugmentationPolicy.from_spec({"steps": [{"name": "eda_synonym", "aug_p": 0.1},
                                                   "eda_swap:0.1"], "copies": 4})
    assert same == p and same.fingerprint == p.fingerprint
    q = AugmentationPolicy.from_spec("contextual(mode=tinybert):0.4,copies=20", mlm_model="m")
    assert dict(q.steps[0][1]) == {"mode": "tinybert", "p_t": 0.4, "model": "m"}
    assert q.name.startswith("contextual-p0.4-n20-")


def test_yaml_spec(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("steps:\n  - eda_swap:0.3\n  - name: eda_delete\n    aug_p: 0.1\ncopies: 2\n")
    p = AugmentationPolicy.from_spec(str(path))
    assert p.copies == 2 and p.steps[1] == ("eda_delete", (("aug_p", 0.1),))


def test_fingerprint_changes_with_config_and_version(monkeypatch):
    p = AugmentationPolicy.from_spec("eda_swap:0.3")
    assert AugmentationPolicy.from_spec("eda_swap:0.1").fingerprint != p.fingerprint
    assert AugmentationPolicy.from_spec("eda_swap:0.3,copies=2").fingerprint != p.fingerprint
    before = p.fingerprint
    monkeypatch.setattr(eda_module.EdaOp, "VERSION", "eda-op-999")
    assert p.fingerprint != before


def test_a_local_masked_lm_is_named_by_its_files_not_its_path(tiny_mlm, tmp_path):
    import shutil

    import torch
    from transformers import BertForMaskedLM

    mlm = str(tmp_path / "mlm")
    shutil.copytree(tiny_mlm, mlm)

    def name():
        return AugmentationPolicy.from_spec("contextual:0.3", mlm_model=mlm).name

    first = name()
    with open(os.path.join(mlm, "metrics.jsonl"), "w") as fh:   # a run's bookkeeping
        fh.write("{}\n")
    os.utime(os.path.join(mlm, "config.json"))                 # touched, same bytes
    assert name() == first
    model = BertForMaskedLM.from_pretrained(mlm)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.add_(0.01)
    model.save_pretrained(mlm)                                  # rebuilt in place
    assert name() != first
    local = AugmentationPolicy.from_spec("contextual:0.3", mlm_model=mlm)
    hub = AugmentationPolicy.from_spec("contextual:0.3", mlm_model="org/mlm")
    assert len(local._step_identities()[0]) == 4 and len(hub._step_identities()[0]) == 3
    # steps without models keep the names they had (the corpora of existing caches stay found)
    assert AugmentationPolicy.from_spec("eda_synonym:0.1+eda_swap:0.1,copies=1").name == (
        "eda_synonym-p0.1+eda_swap-p0.1-n1-4cbd2a70")


@pytest.mark.parametrize("spec, message", [
    ("eda_swapp:0.3", "unknown augmenter 'eda_swapp' (did you mean eda_swap?)"),
    ("eda_swap:1.5", "aug_p must be a number in (0, 1], got 1.5"),
    ("eda_swap(foo=1)", "has no parameter(s) ['foo']"),
    ("eda_swap,copies=0", "copies must be an integer > 0, got 0"),
    ("eda_swap,copie=2", "unknown policy option(s) ['copie']"),
    ("eda_swap:abc", "aug_p must be a number"),
    ("backtranslate:0.3", "takes no aug_p"),
    ("contextual:0.3", "must name a masked LM"),
    ("", "cannot parse augmentation step"),
])
def test_bad_specs_rejected_with_clear_messages(spec, message):
    with pytest.raises(ValueError) as info:
        AugmentationPolicy.from_spec(spec)
    assert message in str(info.value)


def test_copies_provenance_labels_and_no_originals(sst2):
    p = AugmentationPolicy.from_spec("eda_synonym:0.1+eda_swap:0.1,copies=4")
    copies, stats = p.augment_records(sst2, base_seed=13)
    assert stats["requested"] == 4 * len(sst2)
    assert stats["produced"] == len(copies)
    assert stats["shortfall"] == stats["requested"] - len(copies)
    by_id = {r["id"]: r for r in sst2}
    seen = set()
    for c in copies:
        parent = by_id[c["parent_id"]]
        assert c["id"] == f"{parent['id']}#{p.name}#{c['copy']}" and c["chain"] == p.name
        assert c["label"] == parent["label"] and c["text_b"] is None
        assert c["text_a"] != parent["text_a"]  # the original is never a copy
        assert (c["parent_id"], c["text_a"]) not in seen  # no duplicate copies
        seen.add((c["parent_id"], c["text_a"]))
        assert isinstance(c["seed"], int)
    per_parent = {}
    for c in copies:
        per_parent.setdefault(c["parent_id"], []).append(c["copy"])
    assert all(v == list(range(len(v))) for v in per_parent.values())
    assert stats["shortfall"] < 0.05 * stats["requested"]


def test_exactly_k_or_reported_shortfall():
    p = AugmentationPolicy.from_spec("eda_delete:0.5,copies=5,max_rounds=2")
    recs = [{"id": "a", "text_a": "two words", "text_b": None, "label": 1},
            {"id": "b", "text_a": "single", "text_b": None, "label": 0},
            {"id": "c", "text_a": "", "text_b": None, "label": 0}]
    copies, stats = p.augment_records(recs, 0)
    assert sorted(c["text_a"] for c in copies) == ["two", "words"]
    assert stats["produced"] == 2 and stats["shortfall"] == 13
    assert stats["noop"] >= 10 and stats["duplicate"] > 0


def test_sentence_pairs_both_sides():
    recs = _records(RTE_DEV, "rte", 8)
    p = AugmentationPolicy.from_spec("eda_swap:0.2,copies=2")
    copies, _ = p.augment_records(recs, 1)
    by_id = {r["id"]: r for r in recs}
    both = sum(c["text_a"] != by_id[c["parent_id"]]["text_a"] and
               c["text_b"] != by_id[c["parent_id"]]["text_b"] for c in copies)
    assert both == len(copies) == 16


def test_batch_composition_and_order_do_not_matter(sst2):
    p = AugmentationPolicy.from_spec("eda_synonym:0.2+eda_insert:0.1,copies=3")
    batched, _ = p.augment_records(sst2, 7)
    one_by_one = [c for r in sst2 for c in p.augment_records([r], 7)[0]]
    assert batched == one_by_one
    reordered, _ = p.augment_records(list(reversed(sst2)), 7)
    assert sorted(reordered, key=lambda c: c["id"]) == sorted(batched, key=lambda c: c["id"])
    other_seed, _ = p.augment_records(sst2, 8)
    assert other_seed != batched


def test_different_record_ids_give_different_choices(sst2):
    p = AugmentationPolicy.from_spec("eda_swap:0.3,copies=2")
    text = sst2[3]["text_a"]
    recs = [dict(sst2[3], id=f"x:{i}") for i in range(10)]
    outs = [c["text_a"] for c in p.augment_records(recs, 0)[0]]
    assert len(set(outs)) > 10 and all(o != text for o in outs)


def test_contextual_policy_batched_equals_one_by_one(tiny_mlm, sst2):
    p = AugmentationPolicy.from_spec("contextual:0.3+eda_swap:0.1,copies=2", mlm_model=tiny_mlm)
    p.load()
    batched, stats = p.augment_records(sst2, 21)
    assert stats["produced"] == 2 * len(sst2)
    assert [c for r in sst2 for c in p.augment_records([r], 21)[0]] == batched


def test_policy_pickles_without_models(tiny_mlm):
    import pickle

    p = AugmentationPolicy.from_spec("contextual:0.3", mlm_model=tiny_mlm).load()
    q = pickle.loads(pickle.dumps(p))
    assert q == p and q.name == p.name and q._augmenters is None


def test_same_output_in_another_process(tiny_mlm, sst2, tmp_path):
    spec = "eda_synonym:0.1+contextual:0.3+eda_delete:0.1,copies=2"
    p = AugmentationPolicy.from_spec(spec, mlm_model=tiny_mlm)
    here, _ = p.augment_records(sst2[:24], 99)
    code = ("import json, sys; sys.path.insert(0, '.');"
            "from augment import AugmentationPolicy;"
            "recs = json.load(open(sys.argv[1]));"
            f"p = AugmentationPolicy.from_spec({spec!r}, mlm_model={tiny_mlm!r});"
            "print(json.dumps(p.augment_records(recs, 99)[0]))")
    rec_file = tmp_path / "recs.json"
    rec_file.write_text(json.dumps(sst2[:24]))
    env = dict(os.environ, PYTHONHASHSEED="12345", OMP_NUM_THREADS="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code, str(rec_file)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def test_replace_copies_keeps_validation():
    p = AugmentationPolicy.from_spec("eda_swap:0.3")
    assert dataclasses.replace(p, copies=3).name.startswith("eda_swap-p0.3-n3-")
    with pytest.raises(ValueError):
        dataclasses.replace(p, copies=-1)


def test_question_only_augmentation_keeps_the_context_and_carries_the_answers():
    from distiller.taskdata.paths import shared_data

    recs = [r for r in read_records(shared_data("squad", "squad2-sample.json"),
                                    builtin_task("squad2"), limit=12)]
    policy = AugmentationPolicy.from_spec("eda_swap:0.3,copies=2")
    copies, stats = policy.augment_records(recs, 5, fields=("text_a",))
    assert stats["produced"] > 12
    parents = {r["id"]: r for r in recs}
    for c in copies:
        parent = parents[c["parent_id"]]
        assert c["text_b"] == parent["text_b"] and c["text_a"] != parent["text_a"]
        assert c["answers"] == parent["answers"] and c["is_impossible"] == parent["is_impossible"]
    assert policy.augment_records(recs[::-1], 5, fields=("text_a",))[0] == sorted(
        copies, key=lambda c: [r["id"] for r in recs[::-1]].index(c["parent_id"]))
    with pytest.raises(ValueError, match="non-empty subset"):
        policy.augment_records(recs, 5, fields=("context",))
