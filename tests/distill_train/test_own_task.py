"""A user's own task through every command, flags only: a header-less, label-first TSV with six
string labels → finetune (teacher) → build with augmentation → train with KD (no task flags: the
cache knows the task) → evaluate, labels by name; an MNLI-shaped task with two dev sets; heads
that do not fit the task are refused before any work."""
import json
import os
import shlex

import pytest

from distiller.cli import main
from distiller.taskdata.paths import shared_data

from examples.six_class import SIX_CLASSES, six_class_tsv

from ..tinymodels import tiny_bert_classifier, tiny_bert_encoder


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed6")
    train = six_class_tsv(root / "train.txt", per_class=10)
    dev = six_class_tsv(root / "dev.txt", per_class=4, offset=10)
    with open(train, encoding="utf-8") as fh:
        texts = [line.split("\t", 1)[1] for line in fh]
    encoder = tiny_bert_encoder(root / "encoder", texts, vocab_size=300)
    return {"root": root, "train": train, "dev": dev, "encoder": encoder, "texts": texts}


def _json_out(capsys):
    out = capsys.readouterr()
    try:
        return json.loads(out.out[out.out.index("{"):]), out.err
    except ValueError:
        raise AssertionError(f"no JSON result on stdout: {out.out!r}") from None


@pytest.mark.slow
def test_own_six_class_task_end_to_end_from_the_cli(own_data, tmp_path, capsys):
    task = ["--task", "mixed6", "--text-a", "1", "--label", "0"]
    teacher_run = str(tmp_path / "teacher")
    assert main(["finetune", "--train", own_data["train"], "--dev", own_data["dev"], *task,
                 "--model", own_data["encoder"], "--out", teacher_run, "--epochs", "2",
                 "--lr", "1e-3", "--no-progress"]) == 0
    result, err = _json_out(capsys)
    assert "task mixed6: 6 labels inferred from train.txt, in class order: pc_cons, pc_pros, " \
           "sst_negative, sst_positive, subj_0, subj_1" in err
    assert set(result["best_dev"]) == {"accuracy", "macro_f1"} and result["metric_name"] == \
        "accuracy"
    teacher = os.path.join(teacher_run, "best_model")
    with open(os.path.join(teacher, "config.json"), encoding="utf-8") as fh:
        id2label = json.load(fh)["id2label"]
    assert sorted(id2label.values()) == sorted(SIX_CLASSES)  # the head names its classes

    cache = str(tmp_path / "cache")
    common = ["--teacher", teacher, "--cache", cache, "--workers", "1", "--max-length", "48",
              "--no-progress", "--json", *task]
    assert main(["build", "--input", own_data["train"], "--augment", "eda_swap:0.2,copies=1",
                 *common]) == 0
    built, _ = _json_out(capsys)
    assert built["dead_letters"] == 0 and built["records_read"] == 60
    plain, augmented = list(built["corpora"])
    assert plain == "mixed6-train" and augmented.startswith("mixed6-train+eda_swap-p0.2-n1")
    assert main(["build", "--input", own_data["dev"], "--split", "dev", *common]) == 0
    capsys.readouterr()
    # the flags that select each training corpus, printed by the cache: no name typed by hand
    assert main(["cache", "corpora", cache, "--flags", "train"]) == 0
    flags = {shlex.split(line)[3]: shlex.split(line)
             for line in capsys.readouterr().out.splitlines()}
    assert flags[augmented] == ["--cache", cache, "--train-corpus", augmented, "--dev-corpus",
                                "mixed6-dev"]

    student_run = str(tmp_path / "student")
    assert main(["train", *flags[augmented], "--student", teacher, "--student-init",
                 "truncate", "--student-num-layers", "1", "--inter-loss", "mse", "--epochs",
                 "1", "--run-dir", student_run, "--no-progress"]) == 0
    result, _ = _json_out(capsys)
    assert set(result["best_dev"]) == {"accuracy", "macro_f1"}
    assert set(result["teacher_dev"]) == {"accuracy", "macro_f1"}
    with open(os.path.join(student_run, "config.json"), encoding="utf-8") as fh:
        assert json.load(fh)["task"]["labels"] == sorted(SIX_CLASSES)  # read from the cache

    preds = str(tmp_path / "pred.jsonl")
    assert main(["evaluate", "--model", os.path.join(student_run, "best_model"), "--file",
                 own_data["dev"], "--predictions", preds]) == 0
    metrics, _ = _json_out(capsys)
    assert metrics["task"] == "mixed6" and metrics["examples"] == 24
    assert metrics["student"]["accuracy"] == pytest.approx(result["best_metric"])
    with open(preds, encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh]
    assert {p["label"] for p in lines} == set(SIX_CLASSES)      # labels round-trip by name
    assert {p["prediction"] for p in lines} <= set(SIX_CLASSES)
    assert lines[0]["id"] == "dev.txt:0"
    # the same corpus evaluated from the cache gives the same student metrics
    assert main(["evaluate", "--model", os.path.join(student_run, "best_model"), "--cache",
                 cache, "--corpus", "mixed6-dev"]) == 0
    from_cache, _ = _json_out(capsys)
    assert from_cache["student"] == pytest.approx(metrics["student"])


def test_heads_that_do_not_fit_the_task_are_refused_before_any_work(own_data, tmp_path,
                                                                     capsys):
    two_way = tiny_bert_classifier(tmp_path / "two_way", own_data["texts"], vocab_size=300)
    task = ["--task", "mixed6", "--text-a", "1", "--label", "0"]
    run = tmp_path / "run"
    assert main(["finetune", "--train", own_data["train"], *task, "--model", two_way, "--out",
                 str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "has a 2-output classification head but task mixed6 is 6 labels" in err
    assert not (run / "checkpoint.pt").exists()
    cache = tmp_path / "cache"
    assert main(["build", "--input", own_data["train"], *task, "--teacher", two_way,
                 "--cache", str(cache), "--no-progress"]) == 2
    assert "teacher" in capsys.readouterr().err and not cache.exists()
    # a head with the right size but other class names is refused too
    assert main(["finetune", "--train", own_data["train"], *task, "--labels",
                 ",".join(reversed(SIX_CLASSES)), "--model", own_data["encoder"], "--out",
                 str(tmp_path / "t6"), "--epochs", "1", "--no-progress"]) == 0
    capsys.readouterr()
    six = str(tmp_path / "t6" / "best_model")
    assert main(["finetune", "--train", own_data["train"], *task, "--model", six, "--out",
                 str(tmp_path / "again"), "--no-progress"]) == 2
    assert "was trained for labels ['pc_pros', 'pc_cons', 'subj_1'," in capsys.readouterr().err
    # ... unless a new head is asked for on purpose
    assert main(["finetune", "--train", own_data["train"], *task, "--model", six, "--out",
                 str(tmp_path / "again"), "--epochs", "1", "--set", "reinit_head=true",
                 "--no-progress"]) == 0


def test_mnli_shaped_task_reports_both_dev_sets(own_data, tmp_path, capsys):
    """Three labels, GLUE MNLI's columns and two dev sets: both accuracies reported, the
    matched one selects the best epoch."""
    header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
              "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
              "sentence2", "label1", "gold_label"]
    with open(shared_data("glue", "RTE", "train.tsv"), encoding="utf-8") as fh:
        pairs = [line.rstrip("\n").split("\t")[:2] for line in fh][1:121]
    labels = ("entailment", "neutral", "contradiction")

    def write(name, rows):
        path = tmp_path / f"{name}.tsv"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\t".join(header) + "\n")
            for i, (a, b) in enumerate(rows):
                y = labels[i % 3]
                fh.write("\t".join([str(i), "0", "0", "fiction", "", "", "", "", a, b, y, y])
                         + "\n")
        return str(path)

    train, matched, mismatched = write("train", pairs[:60]), write("dev_matched", pairs[60:90]), \
        write("dev_mismatched", pairs[90:])
    encoder = tiny_bert_encoder(tmp_path / "enc", [a + " " + b for a, b in pairs],
                                vocab_size=300)
    assert main(["finetune", "--task", "mnli", "--train", train, "--dev", matched, "--dev",
                 mismatched, "--model", encoder, "--out", str(tmp_path / "run"), "--epochs", "2",
                 "--no-progress"]) == 0
    result, _ = _json_out(capsys)
    assert set(result["best_dev"]) == {"accuracy", "dev_mismatched/accuracy"}
    assert all(set(h["dev"]) == {"accuracy", "dev_mismatched/accuracy"}
               for h in result["history"])
    assert result["best_metric"] == max(h["dev"]["accuracy"] for h in result["history"])


def test_a_small_student_learns_an_easy_real_task_above_chance(tmp_path):
    """Learning, not just running: a tiny random encoder fine-tuned on 360 real sentences of six
    classes (the domains are told apart by their words) beats chance (16.7%) on held-out rows."""
    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.train import train
    from distiller.taskdata.resolve import resolve_task

    train_file = six_class_tsv(tmp_path / "train.txt", per_class=60)
    dev_file = six_class_tsv(tmp_path / "dev.txt", per_class=20, offset=60)
    with open(train_file, encoding="utf-8") as fh:
        encoder = tiny_bert_encoder(tmp_path / "enc", [line.split("\t", 1)[1] for line in fh])
    task = resolve_task({"name": "mixed6", "text_a": 1, "label": 0, "header": False,
                         "labels": sorted(SIX_CLASSES)})
    result = train(TrainConfig(task=task, mode="finetune", train_file=train_file,
                               dev_file=dev_file, student=encoder, epochs=8, lr=3e-3,
                               batch_size=16, max_length=48, warmup_ratio=0.0, progress=False,
                               run_dir=str(tmp_path / "run")))
    accuracies = [h["dev"]["accuracy"] for h in result.history]
    assert max(accuracies) >= 30.0 and accuracies[-1] > accuracies[0], accuracies
