"""Split an official SQuAD JSON file by article into train.json and dev.json (same format).

    distiller squad-split ../shared/data/squad/squad2-sample.json --out runs/squad/data
    distiller squad-split FILE --out DIR --dev-titles "Victoria_(Australia)"
    (python -m distiller.taskdata.squad_split ... is the same)

Questions of one article share its contexts and topics, so a split by question would leak; by
default the last `--dev-articles` articles (1) are the dev set and the others the training set.
Articles are copied unchanged and the ``version`` field is kept, so the official evaluation
scripts read dev.json as they read the original file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional, Sequence, Tuple

from distiller.common.errors import UsageError

__all__ = ["split_articles", "main"]


def split_articles(data: dict, *, dev_articles: int = 1,
                   dev_titles: Optional[Sequence[str]] = None) -> Tuple[dict, dict]:
    """(train, dev) SQuAD objects; dev = the titled articles, else the last `dev_articles`."""
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list) or not articles:
        raise UsageError("not SQuAD JSON: expected an object with a non-empty 'data' list")
    titles = [a.get("title") for a in articles]
    if dev_titles:
        unknown = [t for t in dev_titles if t not in titles]
        if unknown:
            raise UsageError(f"no article titled {unknown}; the titles are {titles}")
        dev = [i for i, t in enumerate(titles) if t in set(dev_titles)]
    else:
        if not 1 <= dev_articles < len(articles):
            raise UsageError(f"--dev-articles must be in 1..{len(articles) - 1} (the file has "
                             f"{len(articles)} articles), got {dev_articles}")
        dev = list(range(len(articles) - dev_articles, len(articles)))
    keep = {k: v for k, v in data.items() if k != "data"}
    return (dict(keep, data=[a for i, a in enumerate(articles) if i not in dev]),
            dict(keep, data=[articles[i] for i in dev]))


def _questions(data: dict) -> int:
    return sum(len(p.get("qas", [])) for a in data["data"] for p in a.get("paragraphs", []))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="an official SQuAD JSON file (v1.1 or v2.0)")
    p.add_argument("--out", required=True, help="directory for train.json and dev.json")
    p.add_argument("--dev-articles", type=int, default=1,
                   help="the last N articles form the dev set (default 1)")
    p.add_argument("--dev-titles", help="comma-separated titles of the dev articles instead")


def run(args) -> int:
    """Split as the parsed arguments say; raises OSError/ValueError on bad input."""
    with open(args.input, encoding="utf-8-sig") as fh:
        data = json.load(fh)
    titles = [t.strip() for t in args.dev_titles.split(",")] if args.dev_titles else None
    train, dev = split_articles(data, dev_articles=args.dev_articles, dev_titles=titles)
    os.makedirs(args.out, exist_ok=True)
    for name, part in (("train", train), ("dev", dev)):
        path = os.path.join(args.out, f"{name}.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(part, fh, ensure_ascii=False)
        print(f"{path}: {len(part['data'])} article(s), {_questions(part)} question(s): "
              + ", ".join(a.get("title", "?") for a in part["data"]))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m distiller.taskdata.squad_split",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    try:
        return run(p.parse_args(argv))
    except (OSError, ValueError) as exc:
        print(f"squad_split: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
