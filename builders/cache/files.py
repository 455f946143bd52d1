"""Files a cache's own records name: plain names inside the cache, regular files only.

A cache's manifest names its shards (``shards/NAME``), corpus and question files
(``corpora/NAME``) and its vocabulary (``NAME`` at the top). A cache received from someone else
may name anything there: a path out of the cache (``../../x``, ``/etc/hostname``) would make
`merge` write, and the readers read, outside it; a symbolic link does the same; a FIFO or a
device never ends, so a reader blocks on it. So every name is checked before it is joined to the
cache directory (`entry_path`), and every such file is looked at with lstat before it is opened
(a FIFO or device is never opened) and opened without following a link (`open_regular`).
Anything else is an `UnsafeEntryError` naming the cache, the entry and what is wrong.

A path handed to pyarrow (which opens files itself) is checked with lstat just before
(`check_regular`); whoever could swap a file in between can write the cache, hence change the
shard itself, so that window gives nothing more.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Any, BinaryIO

from .errors import UnsafeEntryError
from .layout import MANIFEST

__all__ = ["ADVICE", "name_problem", "entry_path", "real_directory", "check_regular",
           "open_regular"]

ADVICE = ("a cache names only regular files inside itself, so this one is damaged or was made "
          "to reach outside it: do not use it; get a fresh copy from whoever made it, or build "
          "it again")

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def name_problem(name: Any) -> str:
    """What keeps `name` from being a plain file name inside a directory, or ''."""
    if not isinstance(name, str):
        return f"not a file name (a {type(name).__name__})"
    if not name:
        return "an empty name"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a name with a control character"
    if name.startswith(("/", "\\")) or os.path.isabs(name):
        return "an absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "a path leading out of the cache ('..')"
    if len(parts) > 1:
        return "a path with a separator, not a plain file name"
    if name.startswith("."):
        return "a hidden name (the cache's lock and temp files have those)"
    return ""


def entry_path(cache_path: str, sub: str, name: Any, *, what: str) -> str:
    """``cache_path/sub/name`` for a `name` read from one of the cache's own files (`what` says
    which entry: "shard", "corpus 'x' file", ...); UnsafeEntryError unless `name` is a plain file
    name and `sub` (when given) a real directory, not a link taking every name elsewhere."""
    problem = name_problem(name)
    if not problem and not sub and name == MANIFEST:
        problem = "the manifest's own name"
    if problem:
        raise UnsafeEntryError(f"cache {cache_path!r}: its {MANIFEST} names {what} {name!r}, "
                               f"which is {problem}; {ADVICE}", entry=str(name), problem=problem)
    if sub:
        try:
            mode = os.lstat(os.path.join(cache_path, sub)).st_mode
        except FileNotFoundError:
            mode = stat.S_IFDIR  # absent: the file below is reported missing
        if not stat.S_ISDIR(mode):
            problem = f"inside {sub}/, which is {_kind(mode)}, not a directory of the cache"
            raise UnsafeEntryError(f"cache {cache_path!r}: {what} {name!r} is {problem}; {ADVICE}",
                                   entry=str(name), problem=problem)
    return os.path.join(cache_path, sub, name)


def real_directory(path: str) -> bool:
    """Whether `path` is a directory and not a link to one: what lists a cache's shards/ or
    corpora/ to remove files looks only inside real ones (never into a directory elsewhere)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _kind(mode: int) -> str:
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def _refuse(path: str, what: str, mode: int, problem: str = "") -> UnsafeEntryError:
    problem = problem or f"{_kind(mode)}, not a regular file"
    return UnsafeEntryError(f"{what} {path} is {problem}; {ADVICE}",
                            entry=os.path.basename(path), problem=problem)


def check_regular(path: str, *, what: str) -> os.stat_result:
    """lstat of `path` (FileNotFoundError when absent); UnsafeEntryError unless it is a regular
    file (a link is not followed, a FIFO or device not opened)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, what, st.st_mode)
    return st


def open_regular(path: str, *, what: str) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file, never through a link nor a
    FIFO or device (lstat first, then O_NOFOLLOW | O_NONBLOCK, then fstat of what was opened);
    FileNotFoundError when absent, UnsafeEntryError otherwise."""
    before = check_regular(path, what=what)
    flags = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link after the lstat
            raise _refuse(path, what, stat.S_IFLNK) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, what, st.st_mode)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise _refuse(path, what, st.st_mode, "a file replaced while it was being opened")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
