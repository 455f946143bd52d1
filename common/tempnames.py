"""Temp-file names that say who writes them: ``.<final name>.tmp-<host>-<pid>-<8 hex>``.

Every file of a cache is written under such a name next to its final path, then renamed; the
host and process id let `distiller.builders.cache.leftovers` tell a temp file whose writer is gone
(a
killed build, a full disk) from one being written now. Names of earlier versions
(``.<name>.tmp-<pid>-<hex>``, ``<name>.tmp-<pid>``) are read as written on this host.
"""
from __future__ import annotations

import os
import re
import socket
import uuid
from typing import Optional, Tuple

__all__ = ["HOST", "temp_path", "temp_owner", "writer_alive"]

HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_TEMP = re.compile(r"\.tmp-(?:(?P<host>[A-Za-z0-9]+)-)?(?P<pid>\d+)(?:-[0-9a-f]{8})?$")


def temp_path(final: str) -> str:
    """The hidden temp name, next to `final`, under which this process writes `final`."""
    directory, base = os.path.split(final)
    return os.path.join(directory, f".{base}.tmp-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def temp_owner(name: str) -> Optional[Tuple[str, int]]:
    """(host, pid) of a temp file name, or None if `name` is not a temp name."""
    match = _TEMP.search(name)
    if match is None:
        return None
    return match.group("host") or HOST, int(match.group("pid"))


def writer_alive(host: str, pid: int) -> bool:
    """Whether the writer may still run: True for another host (it cannot be checked from
    here) and for a live process of this host (which may be another program that got the id
    later: the file is then kept, never wrongly removed)."""
    if host != HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user holds that id
        return True
    return True
