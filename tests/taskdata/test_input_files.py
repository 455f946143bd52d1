"""Whole-file problems said before any row is read: a UTF-16 or UTF-32 file is named as such (not
a column missing among garbled names); an empty file is an input with no rows."""
import gzip

import pytest

from distiller.taskdata import builtin_task, check_input, read_records
from distiller.taskdata.encoding import foreign_encoding

SST2 = builtin_task("sst2")
TEXT = "sentence\tlabel\nhello world\t1\na good film\t0\n"


@pytest.mark.parametrize("codec,named", [
    ("utf-16", "UTF-16"), ("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE"),
    ("utf-32", "UTF-32"), ("utf-32-le", "UTF-32LE"), ("utf-32-be", "UTF-32BE")])
def test_a_utf16_or_utf32_file_is_named_in_one_line(tmp_path, codec, named):
    path = tmp_path / "x.tsv"
    path.write_bytes(TEXT.encode(codec))
    expected = (f"x.tsv is {named} encoded, not UTF-8: convert it to UTF-8, e.g. iconv -f "
                f"{named} -t UTF-8 x.tsv > x.utf8.tsv")
    with pytest.raises(ValueError) as err:
        check_input(str(path), SST2)
    assert str(err.value) == expected
    with pytest.raises(ValueError, match="encoded, not UTF-8"):   # every reader checks it
        list(read_records(str(path), SST2))
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_bytes('{"sentence": "hi", "label": 1}\n'.encode(codec))
    with pytest.raises(ValueError, match=f"x.jsonl is {named} encoded"):
        list(read_records(str(jsonl), SST2))


def test_utf8_text_is_not_taken_for_another_encoding(tmp_path):
    assert foreign_encoding(TEXT.encode("utf-8")) is None
    assert foreign_encoding(b"\xef\xbb\xbf" + TEXT.encode("utf-8")) is None   # UTF-8's mark
    assert foreign_encoding("caf\u00e9 \u4e2d\u6587".encode("utf-8")) is None
    assert foreign_encoding(b"\x00" * 64) is None          # a binary file: rows read as dead
    assert foreign_encoding(b"a\x00") is None              # too little to judge
    path = tmp_path / "nul.tsv"   # a UTF-8 file with a NUL byte in one row: that row is dead
    path.write_bytes(b"sentence\tlabel\nok\t1\nnul\x00byte\t0\n")
    assert [type(r).__name__ for r in read_records(str(path), SST2)] == ["dict", "DeadLetter"]


def test_a_compressed_utf16_file_is_named_too(tmp_path):
    path = tmp_path / "x.tsv.gz"
    path.write_bytes(gzip.compress(TEXT.encode("utf-16")))
    with pytest.raises(ValueError) as err:
        check_input(str(path), SST2)
    assert str(err.value) == ("x.tsv.gz is UTF-16 encoded, not UTF-8: convert it to UTF-8, "
                              "e.g. iconv -f UTF-16 -t UTF-8")


@pytest.mark.parametrize("name,data", [("empty.tsv", b""), ("bom.tsv", b"\xef\xbb\xbf"),
                                       ("empty.csv", b""), ("empty.jsonl", b""),
                                       ("empty.tsv.gz", gzip.compress(b"", mtime=0))],
                         ids=["empty.tsv", "bom.tsv", "empty.csv", "empty.jsonl", "empty.tsv.gz"])
def test_an_empty_file_has_no_rows(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    task = SST2.replace(format=None)
    assert check_input(str(path), task)
    assert list(read_records(str(path), task)) == []
    positional = task.replace(text_a=0, label=1, header=False)
    assert list(read_records(str(path), positional)) == []
