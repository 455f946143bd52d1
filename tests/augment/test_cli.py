"""`distiller augment` driven through its real argv on real SST-2 and RTE rows."""
import json

from .augment_testlib import GLUE, RTE_DEV, SST2_DEV
from distiller.cli import main


def _lines(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_augment_sst2_with_contextual_and_eda(tmp_path, tiny_mlm, capsys):
    out = tmp_path / "sst2.jsonl"
    rc = main(["augment", "--input", SST2_DEV, "--task", "sst2", "--policy",
               "contextual:0.3+eda_swap:0.1", "--copies", "3", "--seed", "5", "--output",
               str(out), "--mlm-model", tiny_mlm, "--limit", "20", "--batch-records", "7"])
    assert rc == 0
    rows = _lines(out)
    assert len(rows) == 60 and {r["copy"] for r in rows} == {0, 1, 2}
    assert all(r["parent_id"].startswith("dev.tsv:") for r in rows)
    assert {r["label"] for r in rows} == {"negative", "positive"}  # labels by name
    assert all("##" not in r["text_a"] and "[MASK]" not in r["text_a"] for r in rows)
    err = capsys.readouterr().err
    summary = json.loads(err[err.index("{"):])
    assert summary["produced"] == 60 and summary["records"] == 20 and "augment" in err
    # the same run again gives byte-identical output (batching differs)
    out2 = tmp_path / "again.jsonl"
    assert main(["augment", "--input", SST2_DEV, "--task", "sst2", "--policy",
                 "contextual:0.3+eda_swap:0.1", "--copies", "3", "--seed", "5", "--output",
                 str(out2), "--mlm-model", tiny_mlm, "--limit", "20", "--no-progress"]) == 0
    assert out.read_bytes() == out2.read_bytes()


def test_augment_rte_pairs_and_summary(tmp_path, capsys):
    out = tmp_path / "rte.jsonl"
    rc = main(["augment", "--input", RTE_DEV, "--task", "rte", "--policy",
               "eda_synonym:0.1,copies=2", "--seed", "1", "--output", str(out), "--limit", "6",
               "--no-progress", "--include-originals"])
    assert rc == 0
    rows = _lines(out)
    originals = [r for r in rows if r["chain"] == "original"]
    copies = [r for r in rows if r["chain"] != "original"]
    assert len(originals) == 6 and len(copies) == 12
    assert all(r["text_b"] and r["parent_id"].startswith("dev.tsv:idx=") for r in copies)
    err = capsys.readouterr().err
    summary = json.loads(err[err.index("{"):])
    assert summary["records"] == 6 and summary["produced"] == 12 and summary["shortfall"] == 0
    assert summary["dead_letters"] == 0


def test_bad_rows_go_to_dead_letters(tmp_path, capsys):
    src = tmp_path / "mixed.tsv"
    src.write_text("sentence\tlabel\na fine , funny film\t1\n\t0\ntoo\tmany\tfields\n"
                   "a dull mess\t7\nno label here\t\nWell made!\t0\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    assert main(["augment", "--input", str(src), "--task", "sst2", "--policy", "eda_swap:0.5",
                 "--output", str(out), "--no-progress"]) == 0
    assert {r["parent_id"] for r in _lines(out)} == {"mixed.tsv:0", "mixed.tsv:5"}
    dead = _lines(str(out) + ".dead.jsonl")
    assert [d["row"] for d in dead] == [1, 2, 3, 4]
    reasons = " | ".join(d["reason"] for d in dead)
    assert "empty text" in reasons and "fields" in reasons and "unknown label" in reasons
    assert "missing label" in reasons
    err = capsys.readouterr().err
    assert json.loads(err[err.index("{"):])["dead_letters"] == 4


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    out = str(tmp_path / "x.jsonl")
    assert main(["augment", "--input", SST2_DEV, "--task", "sst2", "--policy", "eda_swapp:0.3",
                 "--output", out]) == 2
    assert "unknown augmenter 'eda_swapp'" in capsys.readouterr().err
    assert main(["augment", "--input", "nope.tsv", "--task", "sst2", "--policy", "eda_swap",
                 "--output", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["augment", "--input", SST2_DEV, "--task", "mytask", "--policy", "eda_swap",
                 "--output", out]) == 2
    assert "unknown task 'mytask'" in capsys.readouterr().err
    assert main(["augment", "--input", SST2_DEV, "--task", "cola", "--policy", "eda_swap",
                 "--output", out]) == 2  # CoLA's layout (no header, 4 columns) on SST-2's file
    assert "column 3 is not there: the file has no header row and 2 columns" in \
        capsys.readouterr().err


def test_augment_stsb_keeps_float_labels_and_explicit_columns(tmp_path):
    import os

    src = os.path.join(GLUE, "STS-B", "dev.tsv")
    out = tmp_path / "stsb.jsonl"
    assert main(["augment", "--input", src, "--text-a", "sentence1", "--text-b", "sentence2",
                 "--label", "score", "--regression", "--policy", "eda_swap:0.3", "--copies", "2",
                 "--output", str(out), "--limit", "4", "--no-progress"]) == 0
    rows = _lines(out)
    assert len(rows) == 8 and all(r["text_b"] and isinstance(r["label"], float) for r in rows)
    assert main(["augment", "--input", src, "--task", "stsb", "--policy", "eda_swap:0.3",
                 "--output", str(out), "--limit", "3", "--no-progress"]) == 0
    assert all(isinstance(r["label"], float) for r in _lines(out))
