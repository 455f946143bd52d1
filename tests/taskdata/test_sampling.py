"""Seeded samples of data files: the header kept, rows in file order and unchanged, the same
sample for the same seed, every row when fewer than asked."""
from distiller.taskdata.sampling import sample_tsv


def _rows(path):
    return path.read_bytes().splitlines(keepends=True)


def test_a_seeded_sample_keeps_the_header_and_file_order(tmp_path):
    src = tmp_path / "train.tsv"
    data = [f"sentence {i}\t{i % 2}\n".encode() for i in range(50)]
    src.write_bytes(b"sentence\tlabel\n" + b"".join(data))
    assert sample_tsv(str(src), str(tmp_path / "a" / "s.tsv"), 10, seed=3) == 10
    rows = _rows(tmp_path / "a" / "s.tsv")
    assert rows[0] == b"sentence\tlabel\n" and len(rows) == 11
    assert all(r in data for r in rows[1:])
    assert [data.index(r) for r in rows[1:]] == sorted(data.index(r) for r in rows[1:])
    sample_tsv(str(src), str(tmp_path / "b.tsv"), 10, seed=3)
    sample_tsv(str(src), str(tmp_path / "c.tsv"), 10, seed=4)
    assert _rows(tmp_path / "b.tsv") == rows
    assert _rows(tmp_path / "c.tsv") != rows


def test_no_header_a_short_file_and_a_missing_last_newline(tmp_path):
    src = tmp_path / "rows.tsv"
    src.write_bytes(b"b\t1\na\t0\nc\t1")
    assert sample_tsv(str(src), str(tmp_path / "s.tsv"), 10, seed=0, header=False) == 3
    assert _rows(tmp_path / "s.tsv") == [b"b\t1\n", b"a\t0\n", b"c\t1\n"]
    assert not (tmp_path / "s.tsv.tmp").exists()
