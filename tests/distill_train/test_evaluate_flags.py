"""`distiller evaluate` takes the task flags `build` took (columns, no label names): the labels
come from the model's saved task or the cache corpus's recorded one."""
from __future__ import annotations

import json
import shutil

import pytest

from distiller.cli import main
from distiller.taskdata import Task
from distiller.taskdata.resolve import save_task

from .conftest import build_cache, sst2_records

TREC = Task(name="trec", text_a=1, label=0, header=False, labels=("NEG", "POS"))
FLAGS = ["--task", "trec", "--text-a", "1", "--label", "0", "--no-header"]


@pytest.fixture(scope="module")
def dev_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("trec") / "dev.txt"
    rows = sst2_records("dev", 12)
    path.write_text("".join(f"{TREC.labels[r['label']]}\t{r['text_a']}\n" for r in rows),
                    encoding="utf-8")
    return str(path), rows


def test_evaluate_file_with_builds_task_flags_takes_the_models_labels(tmp_path, teacher_dir,
                                                                     dev_file, capsys):
    model = str(tmp_path / "model")
    shutil.copytree(teacher_dir, model)
    save_task(TREC, model)      # what finetune and train save beside a model
    path, _ = dev_file
    assert main(["evaluate", "--model", model, "--file", path, *FLAGS]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "trec" and out["examples"] == 12
    assert set(out["student"]) == {"accuracy", "f1"}
    # the flags' own metric is kept; labels named by the flags must fit the model's head
    assert main(["evaluate", "--model", model, "--file", path, *FLAGS, "--metric",
                 "accuracy"]) == 0
    assert set(json.loads(capsys.readouterr().out)["student"]) == {"accuracy"}


def test_evaluate_cache_with_builds_task_flags_takes_the_corpus_labels(tmp_path, teacher_dir,
                                                                      dev_file, capsys):
    from distiller.builders.cache.store import TeacherCache

    _, rows = dev_file
    cache = build_cache(tmp_path / "cache", teacher_dir, rows[:4], rows, attentions=False,
                        task="trec")
    store = TeacherCache.open(cache)
    store.write_corpus("trec-dev", store.read_corpus("trec-dev"), task=TREC.to_dict())
    assert main(["evaluate", "--model", teacher_dir, "--cache", cache, "--corpus", "trec-dev",
                 *FLAGS]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "trec" and out["examples"] == 12
