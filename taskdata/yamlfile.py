"""YAML read for every file and flag value the commands take (train's --config and --set, a
task file, an augmentation policy): a syntax error is one line naming the file (or flag), the
line and the column, never a parser traceback."""
from __future__ import annotations

from typing import Any

from distiller.common.errors import UsageError

__all__ = ["load_yaml_text", "load_yaml_file"]


def load_yaml_text(text: str, what: str) -> Any:
    """YAML `text` parsed; a syntax error is one ValueError line naming `what` and the place."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{what} is not valid YAML{where}: {problem}") from None


def load_yaml_file(path: str, what: str = "config file") -> Any:
    """A YAML file parsed (see load_yaml_text); a missing or unreadable file is one line too."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path!r} is not UTF-8 text") from None
    return load_yaml_text(text, f"{what} {path!r}")
