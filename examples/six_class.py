"""A user's own data, made from real text: a header-less TSV, label first, six string labels.

    python examples/six_class.py --out runs/mixed6 --train-per-class 200 --dev-per-class 50

Writes OUT/train.txt and OUT/dev.txt: SST-2 sentences (sst_negative, sst_positive), SUBJ's two
classes (subj_0, subj_1) and PC's pros and cons (pc_pros, pc_cons), the same number of rows of
each class, from ../shared/data. The README's "Your own data" walks this file through every
command; the tests use small versions of it.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distiller.taskdata.paths import shared_data  # noqa: E402

SIX_CLASSES = ("sst_negative", "sst_positive", "subj_0", "subj_1", "pc_cons", "pc_pros")


def six_class_tsv(path, per_class: int, offset: int = 0) -> str:
    """A user's own data made from real text: a header-less TSV, label first, six string labels
    (SST-2 sentiment, SUBJ's two classes, PC's pros and cons), `per_class` rows each, rows
    [offset, offset + per_class) of every source, interleaved."""
    sources = []
    with open(shared_data("glue", "SST-2", "train.tsv"), encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh][1:]
    rows = [(f"sst_{'positive' if y == '1' else 'negative'}", t) for t, y in rows
            if len(t.split()) >= 4]
    sources.append(rows)
    for name, prefix in (("SUBJ", "subj_{}"), ("PC", "pc_{}")):
        with open(shared_data("text", name, "train.txt"), encoding="utf-8") as fh:
            items = [line.rstrip("\n").split("\t", 1) for line in fh if "\t" in line]
        names = {"0": "cons", "1": "pros"} if name == "PC" else {"0": "0", "1": "1"}
        sources.append([(prefix.format(names[y]), t) for y, t in items])
    picked = {label: [] for label in SIX_CLASSES}
    for rows in sources:
        for label, text in rows:
            bucket = picked[label]
            if len(bucket) < offset + per_class:
                bucket.append(text)
    lines = [f"{label}\t{picked[label][offset + i]}\n" for i in range(per_class)
             for label in SIX_CLASSES]
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    return str(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for train.txt and dev.txt")
    p.add_argument("--train-per-class", type=int, default=200)
    p.add_argument("--dev-per-class", type=int, default=50)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    six_class_tsv(os.path.join(args.out, "train.txt"), args.train_per_class)
    six_class_tsv(os.path.join(args.out, "dev.txt"), args.dev_per_class,
                  offset=args.train_per_class)
    print(f"wrote {args.out}/train.txt ({6 * args.train_per_class} rows) and {args.out}/dev.txt "
          f"({6 * args.dev_per_class} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
