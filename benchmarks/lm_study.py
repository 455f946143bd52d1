"""The token-level real runs (docs/lm.md, "Real runs"): language-model students distilled from a
token-level cache on the shared text corpora (SUBJ and PC), offline, through the command line.

  masked LM  teacher: the MiniLM masked LM that `make mlm` builds (--mlm-teacher). One corpus of
             texts is scored twice, `topk:K` and `sample:N` (the same masking: it is part of the
             key); K is chosen so that both forms store about the same bytes per token. Students:
             the teacher cut to 2 layers, trained for the same steps with the masked-LM loss
             alone, with KD from the top-k cache and with KD from the sampled cache.
  causal LM  teacher: a GPT-2-shaped model (4 x 256) with a byte-level BPE vocabulary trained
             here, trained from scratch by `distiller train` with the LM loss alone (on a cache
             its untrained self scored: only the cache's token ids are read with --pred-loss
             none). Students: a new 2 x 128 model of the same vocabulary from the same seed,
             trained for the same steps with and without KD from the teacher's top-k cache.

Every student is scored by `distiller evaluate` on held-out texts (SUBJ test and the first PC
test texts): masked-token top-1 and perplexity, next-token perplexity. Writes OUT/results.json
and OUT/results.md; every command is logged as it runs. Resumable: a finished step is skipped.

    .venv/bin/python benchmarks/lm_study.py --out runs/lm-study [--part mlm|clm|all]
        [--mlm-teacher runs/mlm/minilm-glue] [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distiller.common.files import atomic_write  # noqa: E402
from distiller.taskdata.paths import shared_data  # noqa: E402

# sizes of the full runs and of --quick (a smoke test of the script, minutes on 2 cores)
# (steps of 32 texts; a step of the 2-layer MiniLM masked-LM student takes ~0.7 s on 2 AMD EPYC
# cores, one of the 4 x 256 causal LM ~0.5 s)
FULL = dict(train=20000, heldout=2000, mlm_steps=600, clm_texts=12000, clm_teacher_epochs=2,
            clm_student_epochs=2, sample_n=12)
QUICK = dict(train=600, heldout=100, mlm_steps=15, clm_texts=800, clm_teacher_epochs=1,
             clm_student_epochs=1, sample_n=12)


def read_texts(path: str, limit: int) -> List[str]:
    """The text column (label TAB text) of a shared text file, blank lines dropped."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            text = line.rstrip("\n").split("\t", 1)[-1].strip()
            if text:
                out.append(text)
            if len(out) >= limit:
                break
    return out


def write_corpora(out: str, sizes: Dict[str, int]) -> Dict[str, str]:
    """train.txt (SUBJ train, then PC train), heldout.txt (SUBJ test, then PC test) and
    clm_train.txt (the larger causal-LM corpus): one text per line."""
    subj, pc = shared_data("text", "SUBJ"), shared_data("text", "PC")
    want = max(sizes["train"], sizes["clm_texts"])
    train = read_texts(os.path.join(subj, "train.txt"), want)
    train += read_texts(os.path.join(pc, "train.txt"), max(0, want - len(train)))
    heldout = read_texts(os.path.join(subj, "test.txt"), sizes["heldout"])
    heldout += read_texts(os.path.join(pc, "test.txt"), max(0, sizes["heldout"] - len(heldout)))
    paths = {}
    for name, texts in (("train", train[:sizes["train"]]), ("heldout", heldout),
                        ("clm_train", train[:sizes["clm_texts"]])):
        paths[name] = os.path.join(out, f"{name}.txt")
        with open(paths[name], "w", encoding="utf-8") as fh:
            fh.write("\n".join(texts) + "\n")
    return paths


class Runner:
    """Runs `python -m distiller ...` steps, each once: the JSON a step printed is kept in
    OUT/steps/NAME.json, and a step with that file is not run again."""

    def __init__(self, out: str):
        self.dir = os.path.join(out, "steps")
        os.makedirs(self.dir, exist_ok=True)

    def __call__(self, name: str, *argv: str) -> Dict:
        path = os.path.join(self.dir, f"{name}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        cmd = [sys.executable, "-m", "distiller", *argv]
        print("$ distiller " + " ".join(argv), flush=True)
        t0 = time.time()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"step {name} failed (exit {proc.returncode}): {' '.join(cmd)}")
        result = json.loads(proc.stdout)
        result["_seconds"] = round(time.time() - t0, 1)
        atomic_write(path, json.dumps(result, indent=1))
        print(f"  ({result['_seconds']} s)", flush=True)
        return result


def score(run: Runner, name: str, teacher: str, kind: str, text: str, cache: str, corpus: str,
          tokens: str, max_length: int) -> Dict:
    return run(name, "score", "--input", text, "--task", "lm", "--kind", kind, "--text-a", "text",
               "--teacher", teacher, "--tokens", tokens, "--cache", cache, "--corpus", corpus,
               "--devices", "cpu", "--max-length", str(max_length))


def token_bytes(cache: str) -> Dict[str, float]:
    """`distiller cache stats`: bytes per predicted token of the sparse column (Arrow, as
    stored in memory) and of whole rows on disk (Parquet, compressed)."""
    stats = json.loads(subprocess.run([sys.executable, "-m", "distiller", "cache", "stats", cache],
                                      stdout=subprocess.PIPE, text=True, check=True).stdout)
    return {"sparse": round(float(stats["sparse_bytes_per_token"]), 2),
            "disk": round(float(stats["bytes_per_token"]), 2)}


def train(run: Runner, name: str, out: str, cache: str, student: str, init: str,
          *extra: str) -> str:
    run_dir = os.path.join(out, "runs", name)
    run(f"train-{name}", "train", "--cache", cache, "--train-corpus", "train", "--dev-corpus",
        "heldout", "--student", student, "--student-init", init, "--batch-size", "32",
        "--device", "cpu", "--run-dir", run_dir, "--no-progress", *extra)
    return os.path.join(run_dir, "best_model")


def evaluate(run: Runner, name: str, model: str, cache: str) -> Dict:
    result = run(f"eval-{name}", "evaluate", "--model", model, "--cache", cache, "--corpus",
                 "heldout", "--device", "cpu")
    return {k: result["student"][k] for k in ("top1", "perplexity", "nll", "positions")}


def masked_lm(run: Runner, out: str, paths: Dict[str, str], teacher: str, sizes) -> Dict:
    n = sizes["sample_n"]
    caches = {"sample": os.path.join(out, f"mlm-sample{n}")}
    for split in ("train", "heldout"):
        score(run, f"score-mlm-sample-{split}", teacher, "masked_lm", paths[split],
              caches["sample"], split, f"sample:{n}", 64)
    # top-k at the sampled cache's bytes per token: a top-k position stores K ids (2 bytes), K
    # float16 log-probabilities and a float32 tail, 4K + 4 bytes in the sparse column
    sample_bytes = token_bytes(caches["sample"])
    k = max(1, round((sample_bytes["sparse"] - 4) / 4))
    caches["topk"] = os.path.join(out, f"mlm-top{k}")
    for split in ("train", "heldout"):
        score(run, f"score-mlm-topk-{split}", teacher, "masked_lm", paths[split], caches["topk"],
              split, f"topk:{k}", 64)
    common = ("--student-num-layers", "2", "--max-steps",
              str(sizes["mlm_steps"]), "--lr", "1e-4")
    models = {
        "lm-loss-only": train(run, "mlm-gold", out, caches["topk"], teacher, "truncate", *common,
                              "--pred-loss", "none", "--w-gold", "1"),
        f"kd topk:{k}": train(run, "mlm-kd-topk", out, caches["topk"], teacher, "truncate",
                              *common, "--pred-loss", "kl", "--temperature", "1",
                              "--w-kd", "1", "--w-gold", "0.5"),
        f"kd sample:{n}": train(run, "mlm-kd-sample", out, caches["sample"], teacher, "truncate",
                                *common, "--pred-loss", "kl", "--temperature", "1",
                                "--w-kd", "1", "--w-gold", "0.5"),
    }
    rows = {"teacher (6 layers)": evaluate(run, "mlm-teacher", teacher, caches["topk"])}
    for label, model in models.items():
        rows[label] = evaluate(run, f"mlm-{label.split()[-1].replace(':', '')}", model,
                               caches["topk"])
    return {"teacher": teacher, "k": k, "n": n, "students": rows,
            "bytes_per_token": {f"topk:{k}": token_bytes(caches["topk"]),
                                f"sample:{n}": sample_bytes}}


def new_causal_lm(directory: str, texts: List[str], *, vocab: int, layers: int, hidden: int,
                  seed: int = 0) -> str:
    """A GPT-2-shaped model of random weights and a byte-level BPE tokenizer trained on
    `texts`, saved to `directory` (kept if it is already there)."""
    if os.path.exists(os.path.join(directory, "config.json")):
        return directory
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.tinymodels import bpe_tokenizer

    tok = bpe_tokenizer(texts, vocab, prefix_space=True)
    torch.manual_seed(seed)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(vocab_size=len(tok), n_embd=hidden, n_layer=layers,
                        n_head=max(2, hidden // 64), n_positions=128, bos_token_id=eos,
                        eos_token_id=eos)
    GPT2LMHeadModel(config).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def causal_lm(run: Runner, out: str, paths: Dict[str, str], sizes) -> Dict:
    with open(paths["clm_train"], encoding="utf-8") as fh:
        texts = fh.read().splitlines()
    init = new_causal_lm(os.path.join(out, "clm-init"), texts, vocab=8000, layers=4, hidden=256)
    # the untrained model's cache: the token ids the teacher is trained on (--pred-loss none)
    boot = os.path.join(out, "clm-boot")
    for split, text in (("train", paths["clm_train"]), ("heldout", paths["heldout"])):
        score(run, f"score-clm-boot-{split}", init, "causal_lm", text, boot, split, "topk:1", 64)
    teacher = train(run, "clm-teacher", out, boot, init, "pretrained", "--pred-loss", "none",
                    "--w-gold", "1", "--epochs", str(sizes["clm_teacher_epochs"]),
                    "--lr", "5e-4", "--warmup-ratio", "0.05")
    k = 16
    cache = os.path.join(out, f"clm-top{k}")
    for split, text in (("train", paths["clm_train"]), ("heldout", paths["heldout"])):
        score(run, f"score-clm-topk-{split}", teacher, "causal_lm", text, cache, split,
              f"topk:{k}", 64)
    small = ("--set", "student_num_layers=2", "--set", "student_hidden=128", "--set",
             "student_heads=2", "--set", "student_intermediate=512",
             "--epochs", str(sizes["clm_student_epochs"]), "--lr", "1e-3",
             "--warmup-ratio", "0.05", "--seed", "0")
    models = {
        "lm-loss-only": train(run, "clm-gold", out, cache, teacher, "config", *small,
                              "--pred-loss", "none", "--w-gold", "1"),
        f"kd topk:{k}": train(run, "clm-kd", out, cache, teacher, "config", *small,
                              "--pred-loss", "kl", "--temperature", "1", "--w-kd", "1",
                              "--w-gold", "0.5"),
    }
    rows = {"teacher (4 x 256)": evaluate(run, "clm-teacher", teacher, cache)}
    for label, model in models.items():
        rows[label] = evaluate(run, f"clm-{label.split()[0]}", model, cache)
    return {"k": k, "students": rows, "bytes_per_token": {f"topk:{k}": token_bytes(cache)}}


def markdown(results: Dict) -> str:
    lines = []
    for part, title in (("mlm", "Masked LM"), ("clm", "Causal LM")):
        if part not in results:
            continue
        lines += [f"### {title}", "", "| model | top-1 | perplexity | positions |",
                  "|---|---|---|---|"]
        for name, r in results[part]["students"].items():
            lines.append(f"| {name} | {100 * r['top1']:.2f} | {r['perplexity']:.2f} | "
                         f"{r['positions']} |")
        sizes = "; ".join(f"{s}: {b['sparse']:.1f} (sparse column), {b['disk']:.1f} (rows on disk)"
                          for s, b in results[part]["bytes_per_token"].items())
        lines += ["", f"Bytes per predicted token: {sizes}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/lm-study")
    p.add_argument("--part", choices=("mlm", "clm", "all"), default="all")
    p.add_argument("--mlm-teacher", default="runs/mlm/minilm-glue",
                   help="the masked LM of `make mlm` (its --output)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    os.makedirs(args.out, exist_ok=True)
    paths = write_corpora(args.out, sizes)
    run = Runner(args.out)
    path = os.path.join(args.out, "results.json")
    results = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            results = json.load(fh)
    results["sizes"] = sizes
    if args.part in ("mlm", "all"):
        if not os.path.exists(os.path.join(args.mlm_teacher, "config.json")):
            raise SystemExit(f"no masked LM in {args.mlm_teacher}: run `make mlm` first")
        results["mlm"] = masked_lm(run, args.out, paths, args.mlm_teacher, sizes)
    if args.part in ("clm", "all"):
        results["clm"] = causal_lm(run, args.out, paths, sizes)
    atomic_write(path, json.dumps(results, indent=1))
    table = markdown(results)
    atomic_write(os.path.join(args.out, "results.md"), table)
    print(table)
    assert all(math.isfinite(r["perplexity"]) for part in ("mlm", "clm") if part in results
               for r in results[part]["students"].values())
    return 0


if __name__ == "__main__":
    sys.exit(main())
