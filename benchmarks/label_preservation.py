"""Does an augmenter keep the label? The share of augmented copies whose teacher label is the
teacher's label of the original, augmenter against augmenter on the same sentences.

    .venv/bin/python benchmarks/label_preservation.py \\
        --teacher runs/results/sst2/teacher/best_model --mlm runs/mlm/minilm-glue

On the first --n (200) SST-2 dev sentences, every policy makes --copies (4) copies per sentence
at the same rate (aug_p 0.3: EDA synonym replacement, the contextual augmenter's nucleus
sampling, TinyBERT's flavour with p_t 0.3 and K = 15, and for reference random swap and the
study's contextual + swap chain). The teacher (a fine-tuned SST-2 classifier) labels originals
and copies; a copy "keeps" its label when the teacher's argmax is unchanged. Also printed: the
share of the original's words a copy no longer holds, copies lost to no-ops or duplicates, the
mean drop of the teacher's probability of the original's label, and a few sentences side by
side. Figures go to stdout (--json FILE writes them too); nothing else is written.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from distiller.taskdata.paths import shared_data  # noqa: E402

POLICIES = {
    "eda_synonym": "eda_synonym:{p}",
    "contextual (sample, top-p 0.8)": "contextual(model={mlm}):{p}",
    "contextual (tinybert, K=15)": "contextual(model={mlm},mode=tinybert,top_k=15):{p}",
    "eda_swap": "eda_swap:{p}",
    "contextual + swap": "contextual(model={mlm}):{p}+eda_swap:{p}",
}


def load_sentences(n: int) -> List[str]:
    with open(shared_data("glue", "SST-2", "dev.tsv"), encoding="utf-8") as fh:
        next(fh)
        return [line.rstrip("\n").split("\t")[0] for _, line in zip(range(n), fh)]


def teacher_probs(model, tokenizer, texts: List[str], batch: int = 64):
    """Softmax over the teacher's classes, [len(texts), C] float32 (max length 64, as trained)."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=64,
                            return_tensors="pt")
            out.append(torch.softmax(model(**enc).logits.float(), dim=-1))
    return torch.cat(out) if out else torch.zeros((0, model.config.num_labels))


def replaced_share(a: str, b: str) -> float:
    """The share of the original's words that the copy no longer holds (as a multiset: a swap
    replaces nothing; a synonym of several words replaces one)."""
    from collections import Counter

    from distiller.augment.words import split_words

    wa = Counter(w.text.lower() for w in split_words(a))
    wb = Counter(w.text.lower() for w in split_words(b))
    return sum((wa - wb).values()) / max(sum(wa.values()), 1)


def measure(sentences, policies: Dict[str, str], model, tokenizer, copies: int, seed: int):
    from distiller.augment import AugmentationPolicy

    records = [{"id": f"dev:{i}", "text_a": s, "text_b": None, "label": None}
               for i, s in enumerate(sentences)]
    base = teacher_probs(model, tokenizer, sentences)
    label = base.argmax(-1)
    rows, examples = [], {}
    for name, spec in policies.items():
        policy = AugmentationPolicy.from_spec(f"{spec},copies={copies}").load()
        out, stats = policy.augment_records(records, seed)
        index = {r["id"]: i for i, r in enumerate(records)}
        parents = [index[c["parent_id"]] for c in out]
        probs = teacher_probs(model, tokenizer, [c["text_a"] for c in out])
        kept = [int(probs[k].argmax()) == int(label[p]) for k, p in enumerate(parents)]
        drop = [float(base[p, label[p]] - probs[k, label[p]]) for k, p in enumerate(parents)]
        rows.append({"augmenter": name, "policy": spec, "copies": len(out),
                     "shortfall": copies * len(records) - len(out),
                     "label_kept": 100.0 * sum(kept) / max(1, len(kept)),
                     "words_replaced": 100.0 * statistics.mean(
                         replaced_share(sentences[p], c["text_a"]) for p, c in zip(parents, out)),
                     "prob_drop": statistics.mean(drop) if drop else 0.0})
        examples[name] = {p: c["text_a"] for p, c in reversed(list(zip(parents, out)))}
    return rows, examples, label


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default=os.path.join("runs", "results", "sst2", "teacher",
                                                      "best_model"))
    ap.add_argument("--mlm", default=os.path.join("runs", "mlm", "minilm-glue"))
    ap.add_argument("--n", type=int, default=200, help="SST-2 dev sentences")
    ap.add_argument("--aug-p", type=float, default=0.3)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", type=int, default=4, help="sentences shown side by side")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    for what, path in (("--teacher", args.teacher), ("--mlm", args.mlm)):
        if not os.path.isdir(path):
            print(f"label_preservation: {what} {path!r} does not exist (the teacher: "
                  "benchmarks/results.py or `distiller finetune`; the MLM: `make mlm`)")
            return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    sentences = load_sentences(args.n)
    policies = {k: v.format(mlm=args.mlm, p=args.aug_p) for k, v in POLICIES.items()}
    rows, examples, label = measure(sentences, policies, model, tokenizer, args.copies,
                                    args.seed)
    print(f"# {len(sentences)} SST-2 dev sentences, aug_p {args.aug_p}, {args.copies} copies "
          f"each, teacher {args.teacher}, masked LM {args.mlm}")
    print("| augmenter | teacher label kept % | words replaced % | mean drop of p(label) | "
          "copies (shortfall) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['augmenter']} | {r['label_kept']:.1f} | {r['words_replaced']:.1f} | "
              f"{r['prob_drop']:.3f} | {r['copies']} ({r['shortfall']}) |")
    names = ("negative", "positive")
    shown = 0
    for i, s in enumerate(sentences):
        if shown >= args.examples or len(s.split()) > 20 or len(s.split()) < 8:
            continue
        shown += 1
        print(f"\noriginal ({names[int(label[i])]}): {s}")
        for name, by_parent in examples.items():
            if i in by_parent:
                print(f"  {name:32s} {by_parent[i]}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": rows, "n": len(sentences), "aug_p": args.aug_p,
                       "copies": args.copies}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
