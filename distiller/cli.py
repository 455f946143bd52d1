"""The `distiller` command: one entry point, the subcommands of every package registered here.

Each package's ``cli`` module exposes ``add_parsers(subparsers)``, which adds its subcommands and
sets ``func`` (called with the parsed namespace, returning an exit code). This module imports
those cli modules by name and is the only one that dispatches: no package calls back into it.
The cli modules import heavy libraries (torch, beam, optuna) inside ``func`` only, so
``distiller --help`` stays fast. ``python -m distiller`` runs the same command (what sweeps and
tests use as a subprocess).

Errors (docs/errors.md): bad input raises `UsageError` (distiller.common.errors) and the
environment raises `OSError` (a missing file, a full disk); both print one line, exit code 2 (the
traceback with -v). Any other exception is a defect of the program: its traceback and a line
asking to report it, exit code 1. An interrupt exits with 130.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import List, Optional

import distiller.augment.cli
import distiller.augment.mlm_cli
import distiller.autodistiller.cli
import distiller.builders.cli
import distiller.distill_train.cli
import distiller.pipelines.build_cli
import distiller.taskdata.cli
from distiller.common.errors import UsageError
from distiller.common.seeding import thread_independent_math
from distiller.taskdata.console import configure, error_message

__all__ = ["main", "build_parser"]

# The packages' cli modules, in the order --help shows their subcommands.
_COMMAND_MODULES = (distiller.taskdata.cli, distiller.augment.cli, distiller.augment.mlm_cli,
                    distiller.pipelines.build_cli, distiller.builders.cli,
                    distiller.distill_train.cli, distiller.autodistiller.cli)


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its subcommands' too), but a bad flag or value is one line, as every
    other error of the command is: what was wrong, and where the options are listed."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the "
                  "options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="distiller",
        description="Knowledge distillation for NLP with an offline teacher cache.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    thread_independent_math()  # before any torch math here or in the workers this starts
    configure(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UsageError, OSError) as exc:
        # Bad input or the environment: the message says what was wrong and how to fix it;
        # the traceback is for -v only.
        if args.verbose:
            traceback.print_exc()
        print(f"distiller {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndistiller {args.command}: interrupted. Nothing half-written is visible: a cache "
              "holds only committed shards and a training run resumes from its last checkpoint. "
              "Run the same command again to continue.", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - anything else is a defect: show where it happened
        traceback.print_exc()
        print(f"distiller {args.command}: internal error: this is a bug in distiller, not in "
              "your input; please report it, with the command and the traceback above, to the "
              "project's issue tracker", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
