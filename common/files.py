"""One way to write a file atomically: under a temp name next to it, then renamed over it.

Readers see the old file or the new one, never a part. The temp name says who writes it
(`distiller.common.tempnames`), so the leftover of a killed writer is recognised and removed
(`distiller cache clean`). With ``durable=True`` (the default) the data is fsynced before the
rename and the directory after it, so that after a crash the name points at the whole new file
or the old one; ``durable=False`` is for files that are cheap to write again (a report).
"""
from __future__ import annotations

import contextlib
import os
from typing import IO, Callable, Iterator, Optional, Union

from .tempnames import temp_path

__all__ = ["atomic_write", "atomic_open", "replace_durably"]

Data = Union[str, bytes, Callable[[str], None]]


def atomic_write(path: str, data: Data, *, durable: bool = True) -> None:
    """Write `data` to `path` all or nothing. `data` is text (written as UTF-8), bytes, or a
    callback that writes the file whose path it is given (e.g. ``lambda tmp: torch.save(obj,
    tmp)``). A failure removes the temp file and leaves `path` as it was."""
    tmp = temp_path(path)
    try:
        if callable(data):
            data(tmp)
        else:
            mode, encoding = ("wb", None) if isinstance(data, bytes) else ("w", "utf-8")
            with open(tmp, mode, encoding=encoding) as fh:
                fh.write(data)
        replace_durably(tmp, path, durable=durable)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", *, durable: bool = True,
                encoding: Optional[str] = "utf-8") -> Iterator[IO]:
    """A file open for writing under a temp name; renamed over `path` when the block ends
    without an exception, removed when it raises. `mode` is "w" (text, `encoding`) or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', not {mode!r}")
    tmp = temp_path(path)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
        replace_durably(tmp, path, durable=durable)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def replace_durably(tmp: str, path: str, *, durable: bool = True) -> None:
    """Rename the finished file `tmp` over `path` (replacing whatever `path` is, a link
    included, never writing through it); when `durable`, fsync the file first and the
    directory after (on filesystems that refuse a directory fsync, the rename still holds)."""
    if durable:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if durable:
        with contextlib.suppress(OSError):
            fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
