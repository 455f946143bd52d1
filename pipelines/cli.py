"""The `distiller` command: one entry point, subcommands registered by each package.

Each package's ``cli`` module exposes ``add_parsers(subparsers)``, which adds its subcommands and
sets ``func`` (called with the parsed namespace, returning an exit code). Those modules import
heavy libraries (torch, beam) inside ``func`` only, so ``distiller --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import List, Optional

from pipelines.console import configure, error_message

__all__ = ["main", "build_parser"]

# Packages whose cli module registers subcommands, in the order shown by --help.
_COMMAND_MODULES = ("augment.cli", "pipelines.build_cli", "builders.cli", "distill_train.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distiller",
        description="Knowledge distillation for NLP with an offline teacher cache.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a package not built yet registers nothing
        module.add_parsers(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as exc:
        # Library errors carry a message saying what was wrong and how to fix it; the
        # traceback is for -v only.
        if args.verbose:
            traceback.print_exc()
        print(f"distiller {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndistiller {args.command}: interrupted. Nothing half-written is visible: a cache "
              "holds only committed shards and a training run resumes from its last checkpoint. "
              "Run the same command again to continue.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
