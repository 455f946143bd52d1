"""The one reader: every format, real GLUE files as shipped, a dead letter for every bad row."""
import gzip
import json

import pytest

from distiller.taskdata import (DeadLetter, Task, builtin_task, check_input, plan_splits,
                                read_records, read_split)
from distiller.taskdata.paths import shared_data

SST2, RTE, STSB = builtin_task("sst2"), builtin_task("rte"), builtin_task("stsb")


def records(path, task, **kw):
    return list(read_records(str(path), task, **kw))


def test_real_glue_files_read_as_shipped():
    cola = records(shared_data("glue", "CoLA", "dev.tsv"), builtin_task("cola"))
    assert len(cola) == 1043 and all(isinstance(r, dict) for r in cola)   # no header row,
    assert cola[0] == {"id": "dev.tsv:0", "text_a": "The sailors rode the breeze clear of the "
                       "rocks.", "text_b": None, "label": 1}            # no final newline
    mrpc = records(shared_data("glue", "MRPC", "dev.tsv"), builtin_task("mrpc"))
    assert len(mrpc) == 1725 and all(isinstance(r, dict) for r in mrpc)  # BOM before header
    assert sum(r["label"] for r in mrpc) == 1147 and '"' in "".join(r["text_a"] for r in mrpc)
    rte = records(shared_data("glue", "RTE", "dev.tsv"), RTE, limit=5)
    assert rte[0]["id"] == "dev.tsv:idx=0" and rte[0]["text_b"]
    stsb = records(shared_data("glue", "STS-B", "dev.tsv"), STSB, limit=20)
    assert all(isinstance(r["label"], float) and 0 <= r["label"] <= 5 for r in stsb)
    sst2 = records(shared_data("glue", "SST-2", "dev.tsv"), SST2, limit=5)
    assert [r["id"] for r in sst2] == [f"dev.tsv:{i}" for i in range(5)]


def test_every_bad_row_is_a_dead_letter_with_its_reason(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"sentence\tlabel\n"
                     b"a fine film\t1\n"
                     b"too many\tfields\there\n"
                     b"\t0\n"
                     b"caf\xe9 au lait\t1\n"
                     b"good but unknown label\t7\n"
                     b"missing label\t\n"
                     b"\n"
                     b"nul\x00byte\t1\n"
                     b'says "hi\tpositive\n')
    out = records(path, SST2)
    assert len(out) == 9  # nothing is lost: one output per data row
    assert out[0] == {"id": "bad.tsv:0", "text_a": "a fine film", "text_b": None, "label": 1}
    assert out[-1] == {"id": "bad.tsv:8", "text_a": 'says "hi', "text_b": None, "label": 1}
    dead = out[1:-1]
    assert all(isinstance(d, DeadLetter) for d in dead)
    assert [(d.row, d.reason) for d in dead] == [
        (1, "malformed row: 3 fields, expected 2"),
        (2, "empty text in column 'sentence'"),
        (3, "undecodable bytes in column 'sentence'"),
        (4, "unknown label '7' (expected one of ['negative', 'positive'] or a class index "
            "0..1) in column 'label'"),
        (5, "missing label in column 'label'"),
        (6, "malformed row: blank line"),
        (7, "NUL byte in column 'sentence' (a damaged or binary row)")]
    assert dead[0].raw == "too many\tfields\there"


def test_csv_quoted_newline_stays_inside_its_field_with_bom_and_crlf(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b'\xef\xbb\xbftext,label\r\n"line one\r\nline two",pos\r\n'
                     b'"a ""quoted"", word",neg\r\nplain,pos\r\n')
    task = Task(name="q", text_a="text", labels=("neg", "pos"))
    out = records(path, task)
    assert [r["text_a"] for r in out] == ["line one\r\nline two", 'a "quoted", word', "plain"]
    assert [r["label"] for r in out] == [1, 0, 1] and out[2]["id"] == "q.csv:2"
    # split at row boundaries only: one row per split, the quoted newline never cut
    splits = list(plan_splits(str(path), task, rows_per_split=1))
    assert [(s.first_row, s.max_rows) for s in splits] == [(0, 1), (1, 1), (2, 1)]
    assert [r for s in splits for r in read_split(s, task)][0][1]["text"] == \
        b"line one\r\nline two"
    assert records(path, task, limit=2) == out[:2]


def test_header_less_label_first_tsv_with_string_labels(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("HUM\twho was the first president\nLOC\twhere is the louvre\n"
                    "XYZ\tan unknown class\nNUM\n", encoding="utf-8")
    task = Task(name="trec", text_a=1, label=0, header=False, labels=("HUM", "LOC", "NUM"))
    out = records(path, task)
    assert out[0] == {"id": "train.txt:0", "text_a": "who was the first president",
                      "text_b": None, "label": 0}
    assert out[2].reason.startswith("unknown label 'XYZ'") and out[2].row == 2
    assert out[3].reason == "malformed row: 1 fields, expected 2"


def test_a_missing_column_is_an_error_before_any_row(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("text\ty\nhello\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"x.tsv: column 'sentence' not found \(the columns "
                                         r"are \['text', 'y'\]\); if the file has no header "
                                         r"row, pass --no-header"):
        check_input(str(path), SST2)
    with pytest.raises(ValueError, match=r"label column 'label' not found"):
        check_input(str(path), Task(name="t", text_a="text", labels=("0", "1")))
    check_input(str(path), Task(name="t", text_a="text"), labelled=False)  # unlabelled: fine
    headerless = Task(name="t", text_a=5, label=0, header=False, labels=("0", "1"))
    with pytest.raises(ValueError, match="column 5 is not there: the file has no header row "
                                         "and 2 columns"):
        check_input(str(path), headerless)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_input(str(tmp_path / "none.tsv"), SST2)
    with pytest.raises(ValueError, match="is a directory: give a file, a glob"):
        check_input(str(tmp_path), SST2)
    (tmp_path / "x.xyz").write_text("a")
    with pytest.raises(ValueError, match="cannot tell the format of .*x.xyz"):
        check_input(str(tmp_path / "x.xyz"), SST2)


def test_unlabelled_corpus_reads_texts_only(tmp_path):
    path = tmp_path / "pool.txt"
    path.write_text("a fine film\n\nnot bad at all\n", encoding="utf-8")
    out = records(path, Task(name="pool", text_a=0, label=None), labelled=False)
    assert out[0] == {"id": "pool.txt:0", "text_a": "a fine film", "text_b": None, "label": None}
    assert out[1].reason == "empty text in column 0"
    # a labelled file read unlabelled: its labels are ignored, bad ones included
    tsv = tmp_path / "l.tsv"
    tsv.write_text("sentence\tlabel\ngood\t9\n", encoding="utf-8")
    assert records(tsv, SST2, labelled=False)[0]["label"] is None


def test_jsonl_parquet_saved_dataset_glob_gzip_and_fsspec(tmp_path):
    datasets = pytest.importorskip("datasets", reason="saved datasets need the datasets package")
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": "good film", "y": "pos", "uid": "a"},
            {"text": "dull, slow film", "y": "neg", "uid": "b"},
            {"text": "", "y": "neg", "uid": "c"},
            {"text": "odd one", "y": "meh", "uid": "d"}]
    task = Task(name="t", text_a="text", label="y", id="uid", labels=("neg", "pos"))
    want = [{"id": "{}:uid=a", "text_a": "good film", "text_b": None, "label": 1},
            {"id": "{}:uid=b", "text_a": "dull, slow film", "text_b": None, "label": 0}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows)
                                      + "{not json\n[1]\n", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), str(tmp_path / "c.parquet"), row_group_size=3)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "c_saved"))
    with gzip.open(tmp_path / "c.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write('text,y,uid\ngood film,pos,a\n"dull, slow film",neg,b\n,neg,c\nodd one,meh,d\n')
    fs = fsspec.filesystem("memory")
    fs.pipe("/mem/c.csv", b'text,y,uid\ngood film,pos,a\n"dull, slow film",neg,b\n,neg,c\n'
                          b"odd one,meh,d\n")
    for spec, name, n_dead in ((tmp_path / "c.jsonl", "c.jsonl", 4),
                               (tmp_path / "c.parquet", "c.parquet", 2),
                               (tmp_path / "c_saved", "c_saved", 2),
                               (tmp_path / "c.csv.gz", "c.csv.gz", 2),
                               ("memory://mem/c.csv", "c.csv", 2)):
        out = records(spec, task)
        good = [r for r in out if isinstance(r, dict)]
        assert good == [dict(r, id=r["id"].format(name)) for r in want], spec
        assert len(out) - len(good) == n_dead, spec
    assert [d.reason for d in records(tmp_path / "c.jsonl", task)[-2:]] == [
        "malformed row: invalid JSON (Expecting property name enclosed in double quotes)",
        "malformed row: JSON value is not an object"]
    # a glob reads every file in name order; ids keep each file's own name
    (tmp_path / "parts").mkdir()
    for i in range(3):
        (tmp_path / "parts" / f"p{i}.jsonl").write_text(json.dumps(rows[i % 2]) + "\n")
    out = records(str(tmp_path / "parts" / "*.jsonl"), task)
    assert [r["id"] for r in out] == ["p0.jsonl:uid=a", "p1.jsonl:uid=b", "p2.jsonl:uid=a"]
    assert len(records(str(tmp_path / "parts" / "*.jsonl"), task, limit=2)) == 2
    with pytest.raises(FileNotFoundError, match="no file matches"):
        records(str(tmp_path / "parts" / "*.tsv"), task)


def test_a_hugging_face_dataset_by_name_offline(tmp_path, monkeypatch):
    """`hf:NAME[:CONFIG][@SPLIT]` goes through datasets.load_dataset: a local dataset repository
    here (a hub name online, or from the local datasets cache, takes the same path)."""
    datasets = pytest.importorskip("datasets", reason="hf: inputs need the datasets package")

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "my_reviews"
    (repo / "data").mkdir(parents=True)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    datasets.Dataset.from_dict({"text": ["a good film", "a bad film", ""], "label": [1, 0, 1]},
                               features=features).to_parquet(
        str(repo / "data" / "train-00000-of-00001.parquet"))
    datasets.Dataset.from_dict({"text": ["fine"], "label": [1]}, features=features).to_parquet(
        str(repo / "data" / "validation-00000-of-00001.parquet"))
    task = Task(name="reviews", text_a="text", labels=("neg", "pos"))
    out = records(f"hf:{repo}@train", task)
    assert out[0] == {"id": f"{repo}@train:0", "text_a": "a good film", "text_b": None,
                      "label": 1}
    assert out[2].reason == "empty text in column 'text'"
    assert records(f"hf:{repo}@validation", task)[0]["text_a"] == "fine"
    with pytest.raises(ValueError, match=r"holds several splits \['train', 'validation'\]: "
                                         r"add @SPLIT"):
        records(f"hf:{repo}", task)
    # the labels of a ClassLabel feature are the task's, in class order
    import argparse

    from distiller.taskdata.resolve import add_task_arguments, task_from_args

    parser = argparse.ArgumentParser()
    add_task_arguments(parser)
    inferred, notes = task_from_args(parser.parse_args(["--task", "r", "--text-a", "text"]),
                                     data=f"hf:{repo}@train")
    assert inferred.labels == ("neg", "pos") and "from the dataset's features" in notes[0]


def test_splits_cover_every_row_once(tmp_path):
    lines = [f"sentence number {i}\t{i % 2}\n" for i in range(25)]
    path = tmp_path / "s.tsv"
    path.write_text("sentence\tlabel\n" + "".join(lines), encoding="utf-8")
    splits = list(plan_splits(str(path), SST2, rows_per_split=7))
    assert [(s.first_row, s.max_rows) for s in splits] == [(0, 7), (7, 7), (14, 7), (21, 4)]
    assert splits[0].start == len("sentence\tlabel\n")
    got = [item[1]["sentence"] for s in splits for item in read_split(s, SST2)]
    assert got == [line.split("\t")[0].encode() for line in lines]
    assert [(s.first_row, s.max_rows) for s in plan_splits(str(path), SST2, rows_per_split=7,
                                                            limit=10)] == [(0, 7), (7, 3)]


def test_boolq_jsonl_with_label_or_answer(tmp_path):
    path = tmp_path / "val.jsonl"
    rows = [{"question": "is the sky blue", "passage": "The sky is blue.", "answer": True},
            {"question": "is grass red", "passage": "Grass is green.", "label": False},
            {"question": "no answer here", "passage": "Nothing."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = records(path, builtin_task("boolq"))
    assert [(r["text_a"], r["text_b"], r["label"]) for r in out[:2]] == [
        ("is the sky blue", "The sky is blue.", 1), ("is grass red", "Grass is green.", 0)]
    assert out[2].reason == "missing label in column 'label|answer'"
