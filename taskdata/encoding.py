"""Which Unicode encoding a text file is in, when it is not UTF-8: UTF-16 or UTF-32.

Every line format is read as UTF-8. A file saved as UTF-16 or UTF-32 (Windows tools write
them, often with a byte-order mark) would otherwise show up as a header of garbled names or a
file of dead rows; `foreign_encoding` names it from the first bytes so that the reader can say
so in one line before any row is read. Without a byte-order mark it is recognised by the NUL
bytes that ASCII characters carry in those encodings (text of other scripts, without a mark, is
not recognised: it then reads as undecodable rows).
"""
from __future__ import annotations

from typing import Optional, Tuple

from distiller.common.errors import UsageError

__all__ = ["foreign_encoding", "encoding_error", "check_encoding", "SNIFF_BYTES"]

SNIFF_BYTES = 4096   # how much of a file's start is looked at

# longest first: the UTF-32LE mark begins with the UTF-16LE one
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"),
         (b"\xff\xfe", "UTF-16LE"), (b"\xfe\xff", "UTF-16BE"))
# (name, code unit width, offset of the byte that holds an ASCII character within a unit)
_UNITS = (("UTF-32LE", 4, 0), ("UTF-32BE", 4, 3), ("UTF-16LE", 2, 0), ("UTF-16BE", 2, 1))
_MIN_UNITS = 2     # characters needed to judge a file without a byte-order mark
_SHARE = 0.9       # share of code units that must look like ASCII in that encoding


def foreign_encoding(head: bytes) -> Optional[Tuple[str, bool]]:
    """(encoding, has a byte-order mark) of a file starting with `head` when it is UTF-16 or
    UTF-32 (e.g. ("UTF-16LE", True)); None for UTF-8 (with or without its mark) and anything
    not recognisably one of those."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, True
    for name, width, at in _UNITS:
        units = [head[i:i + width] for i in range(0, len(head) - len(head) % width, width)]
        if len(units) < _MIN_UNITS:
            continue
        ascii_like = sum(1 for u in units if u[at] != 0 and 0 < u[at] < 0x80
                         and not any(u[:at] + u[at + 1:]))
        if ascii_like >= _SHARE * len(units):
            return name, False
    return None


def encoding_error(name: str, head: bytes, *, compressed: bool = False) -> Optional[str]:
    """The one-line error for a file `name` whose first (decompressed) bytes are `head`, or None
    if the file may be UTF-8."""
    found = foreign_encoding(head)
    if found is None:
        return None
    encoding, bom = found
    # with a byte-order mark the plain name ("UTF-16") is enough: iconv reads the mark (and
    # drops it); without one the byte order must be named
    shown = encoding[:-2] if bom else encoding
    files = "" if compressed else f" {name} > {_utf8_name(name)}"
    return (f"{name} is {shown} encoded, not UTF-8: convert it to UTF-8, e.g. "
            f"iconv -f {shown} -t UTF-8{files}")


def _utf8_name(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return f"{stem}.utf8.{ext}" if dot and stem else f"{base}.utf8"


def check_encoding(inp) -> None:
    """A one-line ValueError when a text input (a `distiller.taskdata.sources.Input` of a line
    format or SQuAD JSON) is in UTF-16 or UTF-32: read as UTF-8 it would give garbled column names
    or only dead rows."""
    if inp.fmt not in ("tsv", "csv", "jsonl", "text", "squad"):
        return
    with inp.open() as fh:
        head = fh.read(SNIFF_BYTES)
    problem = encoding_error(inp.name, head, compressed=bool(inp.compression))
    if problem:
        raise UsageError(problem)
