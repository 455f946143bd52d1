"""`distiller` subcommands of the data layer: `squad-split` (an official SQuAD file split by
article into train.json and dev.json)."""
from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    from . import squad_split

    p = sub.add_parser("squad-split", help="split an official SQuAD JSON file by article into "
                       "train.json and dev.json", description=squad_split.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    squad_split.add_arguments(p)
    p.set_defaults(func=squad_split.run)
