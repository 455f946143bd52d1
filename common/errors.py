"""The error type of bad input.

`UsageError` is raised for anything the user can fix: a bad flag value, a file that is not what
it should be, a setting that contradicts another. The `distiller` command prints its message as
one line (exit code 2). Any other exception is a defect of the program: the command prints its
traceback and asks for a report (docs/errors.md). It is a `ValueError`, so code that catches
ValueError around a user-facing check keeps working.
"""
from __future__ import annotations

__all__ = ["UsageError", "MissingEntryError"]


class UsageError(ValueError):
    """Bad input: the message says what was wrong, the value that arrived, and the fix."""


class MissingEntryError(UsageError, KeyError):
    """Data the user gave lacks an entry a command needs (a key absent from a cache, a
    question absent from a corpus): a UsageError that code looking entries up catches as a
    KeyError."""
