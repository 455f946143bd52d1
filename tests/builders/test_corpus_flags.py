"""`distiller cache corpora`: the corpora of a cache with the flags that select them."""
from __future__ import annotations

import shlex

from distiller.builders.cache.corpus_flags import (describe_corpora, evaluate_flags, format_corpora,
                                             train_flags)
from distiller.cli import main

MNLI = {"name": "mnli", "dev_splits": ["dev_matched", "dev_mismatched"]}
SST2 = {"name": "sst2", "dev_splits": ["dev"]}
AUGMENTED = "sst2-train+eda_swap-p0.1-n2-4cbd2a70"
CORPORA = {
    "sst2-dev": {"rows": 872, "task": SST2, "labelled": True},
    "sst2-train": {"rows": 1000, "task": SST2, "labelled": True},
    AUGMENTED: {"rows": 2990, "task": SST2, "labelled": True},
    "sst2-pool": {"rows": 6000, "task": SST2, "labelled": False},
    # listed before matched on purpose: dev corpora follow the task's dev_splits, not names
    "mnli-dev_mismatched": {"rows": 30, "task": MNLI, "labelled": True},
    "mnli-dev_matched": {"rows": 20, "task": MNLI, "labelled": True},
    "mnli-train": {"rows": 100, "task": MNLI, "labelled": True},
    "scored-alone": {"rows": 5},                       # written without a task
}


def test_dev_corpora_come_from_the_recorded_task():
    lines = {c.name: c for c in describe_corpora(CORPORA)}
    assert {n for n, c in lines.items() if c.dev} == {"sst2-dev", "mnli-dev_matched",
                                                       "mnli-dev_mismatched"}
    assert not lines["sst2-pool"].labelled and lines["scored-alone"].task is None


def test_train_flags_pair_each_training_corpus_with_its_tasks_dev_corpora():
    assert train_flags("runs/my cache", CORPORA) == [
        "--cache 'runs/my cache' --train-corpus mnli-train --dev-corpus mnli-dev_matched "
        "--dev-corpus mnli-dev_mismatched",
        "--cache 'runs/my cache' --train-corpus scored-alone",
        "--cache 'runs/my cache' --train-corpus sst2-pool --dev-corpus sst2-dev",
        "--cache 'runs/my cache' --train-corpus sst2-train --dev-corpus sst2-dev",
        f"--cache 'runs/my cache' --train-corpus {AUGMENTED} --dev-corpus sst2-dev",
    ]
    assert evaluate_flags("c", CORPORA) == ["--cache c --corpus mnli-dev_matched",
                                            "--cache c --corpus mnli-dev_mismatched",
                                            "--cache c --corpus sst2-dev"]


def test_an_unlabelled_dev_split_is_not_a_dev_corpus():
    corpora = {"sst2-dev": {"rows": 3, "task": SST2, "labelled": False}}
    assert train_flags("c", corpora) == ["--cache c --train-corpus sst2-dev"]
    assert evaluate_flags("c", corpora) == []


def test_the_printed_table():
    text = format_corpora("c", {k: CORPORA[k] for k in ("sst2-dev", "sst2-pool")})
    assert text.splitlines() == [
        "cache c: 2 corpora",
        "  corpus     rows  task  gold labels  use",
        "  sst2-dev    872  sst2  yes          dev",
        "  sst2-pool  6000  sst2  no           train",
        "",
        "distiller train flags, one line per training corpus:",
        "  --cache c --train-corpus sst2-pool --dev-corpus sst2-dev",
        "",
        "distiller evaluate flags (after --model MODEL), one line per dev corpus:",
        "  --cache c --corpus sst2-dev",
    ]
    assert "no corpora yet" in format_corpora("c", {})


def test_a_language_models_corpora_carry_no_gold_labels():
    mlm = {"name": "wiki", "kind": "masked_lm", "dev_splits": ["dev"]}
    text = format_corpora("c", {"wiki-dev": {"rows": 5, "task": mlm},
                                "wiki-train": {"rows": 50, "task": mlm}})
    assert text.splitlines()[1:4] == ["  corpus      rows  task  gold labels  use",
                                      "  wiki-dev       5  wiki  -            dev",
                                      "  wiki-train    50  wiki  -            train"]


def test_cache_corpora_through_the_real_argv(tmp_path, tiny_teacher_dir, capsys):
    from .conftest import GLUE

    cache = str(tmp_path / "cache")
    base = ["score", "--task", "sst2", "--teacher", tiny_teacher_dir, "--cache", cache,
            "--max-length", "64", "--device", "cpu", "--limit", "6"]
    for split in ("train", "dev"):
        assert main(base + ["--input", f"{GLUE}/SST-2/{split}.tsv"]) == 0
    capsys.readouterr()
    assert main(["cache", "corpora", cache]) == 0
    out = capsys.readouterr().out
    assert f"  --cache {cache} --train-corpus sst2-train --dev-corpus sst2-dev" in out
    assert main(["cache", "corpora", cache, "--flags", "train"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert shlex.split(line) == ["--cache", cache, "--train-corpus", "sst2-train",
                                 "--dev-corpus", "sst2-dev"]
    assert main(["cache", "corpora", cache, "--flags", "evaluate"]) == 0
    assert capsys.readouterr().out == f"--cache {cache} --corpus sst2-dev\n"
    assert main(["cache", "corpora", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
