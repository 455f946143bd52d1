"""ReadCorpus: exact records and dead letters, in parity with the local reader, every format."""
import json
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from distiller.pipelines.read import ReadCorpus
from distiller.taskdata import DeadLetter, Task, builtin_task, read_records

from .pipeline_testlib import glue_path, head_tsv

TestPipeline.__test__ = False  # a Beam class, not a test case

SST2 = builtin_task("sst2")


def _run_read(path, task, **kwargs):
    """Run ReadCorpus and return (records, dead letters) through assert_that-checked lists."""
    expected = list(read_records(path, task, limit=kwargs.get("limit")))
    want_records = [r for r in expected if isinstance(r, dict)]
    want_dead = [d for d in expected if isinstance(d, DeadLetter)]
    with TestPipeline() as p:
        records, dead = p | ReadCorpus(path, task=task, **kwargs)
        assert_that(records, equal_to(want_records), label="records")
        assert_that(dead, equal_to(want_dead), label="dead")
    return want_records, want_dead


def test_bad_rows_become_exact_dead_letters(bad_tsv):
    expected_records = [
        {"id": "bad.tsv:0", "text_a": "a good movie", "text_b": None, "label": 1},
        {"id": "bad.tsv:6", "text_a": "a bad movie", "text_b": None, "label": 0},
        {"id": "bad.tsv:8", "text_a": "a good movie", "text_b": None, "label": 1},
        {"id": "bad.tsv:9", "text_a": 'says "hi', "text_b": None, "label": 1},
    ]
    expected_dead = [
        (1, "malformed row: 3 fields, expected 2"),
        (2, "empty text in column 'sentence'"),
        (3, "undecodable bytes in column 'sentence'"),
        (4, "missing label in column 'label'"),
        (5, "unknown label '7' (expected one of ['negative', 'positive'] or a class index "
            "0..1) in column 'label'"),
        (7, "malformed row: blank line"),
    ]
    with TestPipeline() as p:
        records, dead = p | ReadCorpus(bad_tsv, task=SST2, rows_per_split=3)
        assert_that(records, equal_to(expected_records), label="records")
        assert_that(dead | beam.Map(lambda d: (d.row, d.reason)), equal_to(expected_dead),
                    label="dead")


def test_real_sst2_and_rte_read_in_splits_equal_the_local_reader(tmp_path):
    sst = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 120)
    records, _ = _run_read(sst, SST2, rows_per_split=16)
    assert len(records) == 120
    rte = head_tsv(glue_path("RTE"), str(tmp_path / "rte.tsv"), 40)
    records, dead = _run_read(rte, builtin_task("rte"), rows_per_split=9, limit=30)
    assert len(records) == 30 and not dead and records[0]["id"] == "rte.tsv:idx=0"


def test_csv_jsonl_parquet_and_saved_dataset_read_the_same_records(tmp_path):
    rows = [{"text": "good film", "y": "pos", "uid": "a"},
            {"text": "dull, slow film", "y": "neg", "uid": "b"},
            {"text": "", "y": "neg", "uid": "c"},
            {"text": "odd one", "y": "meh", "uid": "d"}]
    columns = Task(name="t", text_a="text", label="y", id="uid", labels=("neg", "pos"))
    expected = [{"id": "{}:uid=a", "text_a": "good film", "text_b": None, "label": 1},
                {"id": "{}:uid=b", "text_a": "dull, slow film", "text_b": None, "label": 0}]
    csv_path = tmp_path / "c.csv"
    csv_path.write_text('text,y,uid\ngood film,pos,a\n"dull, slow film",neg,b\n,neg,c\n'
                        "odd one,meh,d\n", encoding="utf-8")
    jsonl_path = tmp_path / "c.jsonl"
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n",
                          encoding="utf-8")
    pq_path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(rows), str(pq_path), row_group_size=3)
    import datasets
    hf_path = tmp_path / "c_hf"
    datasets.Dataset.from_list(rows).save_to_disk(str(hf_path))
    for path, n_dead in ((csv_path, 2), (jsonl_path, 3), (pq_path, 2), (hf_path, 2),
                         (tmp_path / "*.jsonl", 3)):
        name = os.path.basename(str(path)).replace("*", "c")
        want = [dict(r, id=r["id"].format(name)) for r in expected]
        records, dead = _run_read(str(path), columns, rows_per_split=3)
        assert records == want, path
        assert len(dead) == n_dead, path


def test_cola_without_header_and_mrpc_with_bom_read_in_splits(tmp_path):
    for task, folder in (("cola", "CoLA"), ("mrpc", "MRPC")):
        records, dead = _run_read(glue_path(folder, "dev"), builtin_task(task),
                                  rows_per_split=400)
        assert len(records) == {"cola": 1043, "mrpc": 1725}[task] and not dead
