"""The suite-wide hook (tests/conftest.py) that turns a missing shared-data file into a skip:
it names the missing path, follows chained errors and message text, and leaves alone errors
about files that exist or lie elsewhere."""
from __future__ import annotations

from .conftest import _missing_shared_path


def test_a_missing_shared_file_is_found_in_the_error_chain(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLER_DATA", str(tmp_path))
    (tmp_path / "glue").mkdir()
    present = tmp_path / "glue" / "dev.tsv"
    present.write_text("sentence\tlabel\n", encoding="utf-8")
    missing = str(tmp_path / "squad" / "sample.json")

    assert _missing_shared_path(FileNotFoundError(2, "No such file", missing)) == missing
    try:
        try:
            open(missing, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read '{missing}': {exc.strerror}") from exc
    except ValueError as wrapped:
        assert _missing_shared_path(wrapped) == missing
    assert _missing_shared_path(RuntimeError(f"input {missing}: no file matches")) == missing
    # an existing shared file, a file elsewhere, an error naming no file: not a data problem
    assert _missing_shared_path(FileNotFoundError(2, "gone since", str(present))) is None
    assert _missing_shared_path(FileNotFoundError(2, "x", str(tmp_path.parent / "o.tsv"))) is None
    assert _missing_shared_path(AssertionError("3 != 4")) is None
