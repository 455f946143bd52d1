"""Record readers: stable ids, column maps and a dead letter (with its reason) for every bad row."""
import json
import os

import pytest

from augment.records import (ColumnMap, DeadLetter, column_map_for_task, iter_rows, parse_row,
                             read_records)

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "glue")


def test_real_sst2_rows_become_records_with_stable_ids():
    path = os.path.join(DATA, "SST-2", "dev.tsv")
    records = list(read_records(path, column_map_for_task("sst2"), limit=5))
    assert all(isinstance(r, dict) for r in records)
    assert [r["id"] for r in records] == [f"dev.tsv:{i}" for i in range(5)]
    assert all(r["label"] in (0, 1) and r["text_b"] is None for r in records)
    assert list(read_records(path, column_map_for_task("SST-2"), limit=5)) == records


def test_real_rte_pairs_use_the_idx_column_for_ids():
    path = os.path.join(DATA, "RTE", "dev.tsv")
    first = next(read_records(path, column_map_for_task("rte")))
    assert first["text_a"] and first["text_b"]
    assert first["id"] == "dev.tsv:idx=0"


def test_real_stsb_labels_are_floats():
    path = os.path.join(DATA, "STS-B", "dev.tsv")
    records = list(read_records(path, column_map_for_task("stsb"), limit=20))
    assert all(isinstance(r["label"], float) and 0.0 <= r["label"] <= 5.0 for r in records)


def test_glue_tsv_is_read_without_quoting(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('sentence\tlabel\nsays "hi\t1\n', encoding="utf-8")
    (record,) = read_records(str(path), column_map_for_task("sst2"))
    assert record["text_a"] == 'says "hi'


def test_every_bad_row_is_a_dead_letter_with_its_reason(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"sentence\tlabel\n"
                     b"a fine film\t1\n"
                     b"no label column\n"
                     b"\t0\n"
                     b"\xff\xfe broken bytes\t1\n"
                     b"good but unknown label\t7\n"
                     b"missing label\t\n"
                     b"\n")
    out = list(read_records(str(path), column_map_for_task("sst2")))
    assert len(out) == 7  # nothing is lost: one output per data row
    assert out[0] == {"id": "bad.tsv:0", "text_a": "a fine film", "text_b": None, "label": 1}
    reasons = [o.reason for o in out[1:]]
    assert all(isinstance(o, DeadLetter) for o in out[1:])
    assert reasons[0].startswith("malformed row: 1 fields")
    assert reasons[1] == "empty text in column 'sentence'"
    assert reasons[2] == "undecodable bytes"
    assert reasons[3].startswith("unknown label '7'")
    assert reasons[4] == "missing label in column 'label'"
    assert reasons[5] == "malformed row: blank line"
    assert [o.row for o in out[1:]] == [1, 2, 3, 4, 5, 6]


def test_jsonl_and_csv_inputs(tmp_path):
    jl = tmp_path / "x.jsonl"
    jl.write_text(json.dumps({"s": "hello there", "y": "1", "uid": "a7"}) + "\n{not json\n[1]\n")
    cols = ColumnMap(text_a="s", label="y", id="uid", labels=("0", "1"))
    out = list(read_records(str(jl), cols))
    assert out[0] == {"id": "x.jsonl:uid=a7", "text_a": "hello there", "text_b": None, "label": 1}
    assert out[1].reason.startswith("malformed row: invalid JSON")
    assert out[2].reason == "malformed row: JSON value is not an object"
    csv_path = tmp_path / "x.csv"
    csv_path.write_text('s,y\n"a, quoted, text",0\n')
    (rec,) = read_records(str(csv_path), ColumnMap(text_a="s", label="y", labels=("0", "1")))
    assert rec["text_a"] == "a, quoted, text" and rec["label"] == 0


def test_parquet_and_saved_dataset_inputs(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {"sentence": ["good", ""], "label": [1, 0]}
    pq.write_table(pa.table(rows), tmp_path / "x.parquet")
    out = list(read_records(str(tmp_path / "x.parquet"), column_map_for_task("sst2")))
    assert out[0]["label"] == 1 and isinstance(out[1], DeadLetter)
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    out2 = list(read_records(str(tmp_path / "ds"), column_map_for_task("sst2")))
    assert [type(o) for o in out2] == [type(o) for o in out]


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'mnli'"):
        column_map_for_task("mnli")
    with pytest.raises(ValueError, match="cannot tell the format"):
        list(iter_rows(str(tmp_path / "file.xyz")))
    with pytest.raises(ValueError, match="text_a must name a column"):
        ColumnMap(text_a="")
    bad = parse_row({"s": "x", "y": "high"}, columns=ColumnMap(text_a="s", label="y",
                                                               regression=True),
                    source="f", index=0)
    assert bad.reason == "label 'high' is not a number"


def test_cli_without_command_prints_help_and_fails(capsys):
    from pipelines.cli import main

    assert main([]) == 2
    assert "usage: distiller" in capsys.readouterr().out
