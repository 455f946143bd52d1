"""distiller.common.files: all or nothing, under a temp name the cache's cleaning recognises."""
import os

import pytest

from distiller.common.files import atomic_open, atomic_write
from distiller.common.tempnames import HOST, temp_owner


@pytest.mark.parametrize("data, read", [
    ("text é\n", lambda p: open(p, encoding="utf-8").read()),
    (b"\x00bytes", lambda p: open(p, "rb").read()),
])
def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path, data, read):
    path = str(tmp_path / "f")
    atomic_write(path, "old")
    atomic_write(path, data)
    assert read(path) == data
    assert os.listdir(tmp_path) == ["f"]


def test_the_callback_writes_under_a_temp_name_saying_who_writes(tmp_path):
    seen = []

    def write(tmp):
        seen.append(os.path.basename(tmp))
        with open(tmp, "w") as fh:
            fh.write("x")

    atomic_write(str(tmp_path / "f.json"), write, durable=False)
    assert seen[0].startswith(".f.json.tmp-")
    assert temp_owner(seen[0]) == (HOST, os.getpid())
    assert (tmp_path / "f.json").read_text() == "x"


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = str(tmp_path / "f")
    atomic_write(path, "old")
    with pytest.raises(RuntimeError, match="disk"):
        with atomic_open(path) as fh:
            fh.write("half")
            raise RuntimeError("disk full")

    def half(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, half)
    assert open(path).read() == "old"
    assert os.listdir(tmp_path) == ["f"]


def test_atomic_open_streams_text_and_bytes(tmp_path):
    with atomic_open(str(tmp_path / "a.txt")) as fh:
        fh.writelines(["1\n", "2\n"])
    with atomic_open(str(tmp_path / "b.bin"), "wb", durable=False) as fh:
        fh.write(b"\x01")
    assert (tmp_path / "a.txt").read_text() == "1\n2\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x01"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(str(tmp_path / "c"), "a"):
            pass
