"""The storage of token-level caches (docs/lm.md, "Storage"): bytes per token of each form in
each storage, the bias of the sparse losses, and training from a cache vs the teacher online.

  bytes  the same texts (SUBJ train) scored by `distiller score` with the masked-LM teacher in
         each form (topk:8, topk:32, topk:64, sample:12) and storage (plain, :zstd, :packed,
         :packed:zstd); per predicted token, the sparse column's Arrow bytes and the whole
         shard's bytes on disk (`distiller cache stats`).
  bias   a fixed student (the teacher cut to 2 layers); per seed a batch of texts masked with
         that seed, and at its masked positions (sparse estimate - dense KL(teacher || student))
         at temperature 1, for each form (plain, and packed: its 8-bit log-probabilities);
         sampled draws seeded by the seed. Mean, SD and the mean relative to the dense KL over
         the seeds (the dense KL itself varies with the batch).
  speed  that student trained from the topk:32 cache (plain and packed) and from the teacher
         run online (the same form, computed per batch, token_online.OnlineSparseTeacher), in
         interleaved rounds; scored tokens per second over the steps after the first.

    .venv/bin/python benchmarks/token_storage.py --out runs/token-storage
        [--teacher runs/mlm/minilm-glue] [--texts 400] [--seeds 100] [--steps 30] [--quick]

The teacher is any masked LM directory (`make mlm` builds the default). Writes OUT/results.json
and OUT/results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distiller.common.files import atomic_write  # noqa: E402
from distiller.taskdata.paths import shared_data  # noqa: E402

import lm_study  # noqa: E402  (benchmarks/, this script's folder)

FORMS = ("topk:8", "topk:32", "topk:64", "sample:12")
STORAGES = ("", ":zstd", ":packed", ":packed:zstd")
MAX_LENGTH, MASK_PROB = 64, 0.15


def read_texts(limit: int) -> List[str]:
    """The first `limit` texts of SUBJ's training file."""
    return lm_study.read_texts(os.path.join(shared_data("text", "SUBJ"), "train.txt"), limit)


def distiller(*argv: str) -> Dict:
    proc = subprocess.run([sys.executable, "-m", "distiller", *argv], stdout=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"`distiller {' '.join(argv)}` failed (exit {proc.returncode})")
    return json.loads(proc.stdout)


def bytes_part(out: str, teacher: str, texts_file: str) -> List[Dict]:
    rows = []
    for form in FORMS:
        for storage in STORAGES:
            tokens = form + storage
            cache = os.path.join(out, "caches", tokens.replace(":", "-"))
            distiller("score", "--input", texts_file, "--task", "subj", "--kind", "masked_lm",
                      "--text-a", "text", "--teacher", teacher, "--tokens", tokens, "--cache",
                      cache, "--devices", "cpu", "--max-length", str(MAX_LENGTH),
                      "--mask-prob", str(MASK_PROB))
            stats = distiller("cache", "stats", cache)
            rows.append({"tokens": tokens, "positions": stats["positions"],
                         "sparse_bytes_per_token": round(stats["sparse_bytes_per_token"], 2),
                         "disk_bytes_per_token": round(stats["bytes_per_token"], 2),
                         "cache": cache})
            print(f"  {tokens:22s} sparse {rows[-1]['sparse_bytes_per_token']:7.2f} B/token, "
                  f"on disk {rows[-1]['disk_bytes_per_token']:7.2f} B/token", flush=True)
    return rows


def _masked_logits(teacher, student, tok, texts: List[str], seed: int):
    """Teacher and student logits [P, V] at the masked positions of `texts` masked with seed."""
    import torch

    from distiller.distill_train.forward import student_forward
    from distiller.distill_train.token_data import collate_tokens, token_item
    from distiller.distill_train.token_inputs import text_inputs

    inputs = text_inputs([{"id": f"{seed}-{i}", "text_a": t} for i, t in enumerate(texts)], tok,
                         "masked_lm", max_length=MAX_LENGTH, mask_prob=MASK_PROB, seed=seed)
    items = [token_item(dict(v, key=k)) for k, v in inputs.items()]
    batch = collate_tokens(items, pad_id=tok.pad_token_id or 0)
    with torch.no_grad():
        zt = student_forward(teacher, batch).logits.float()
        zs = student_forward(student, batch).logits.float()
    pick = [(i, int(p)) for i, it in enumerate(items) for p in it.positions]
    rows = torch.tensor([i for i, _ in pick]), torch.tensor([p for _, p in pick])
    return zt[rows], zs[rows]


def bias_part(teacher_dir: str, texts: List[str], seeds: int, batch: int) -> List[Dict]:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from distiller.builders.cache.sparse_tokens import (parse_token_spec, sample_tokens,
                                                        topk_tokens)
    from distiller.builders.cache.token_columns import decode_column, encode_column
    from distiller.distill_train.token_losses import (pad_samples, pad_topk, sampled_kd_loss,
                                                      topk_kd_loss)

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    teacher = AutoModelForMaskedLM.from_pretrained(teacher_dir).eval()
    student = AutoModelForMaskedLM.from_pretrained(teacher_dir, num_hidden_layers=2).eval()
    V = teacher.config.vocab_size
    diffs: Dict[str, List[float]] = {}
    dense_values = []
    for seed in range(seeds):
        zt, zs = _masked_logits(teacher, student, tok, random.Random(seed).sample(texts, batch),
                                seed)
        lt, ls = torch.log_softmax(zt.double(), -1), torch.log_softmax(zs.double(), -1)
        dense = float((lt.exp() * (lt - ls)).sum(-1).mean())
        dense_values.append(dense)
        for form in FORMS:
            for storage in ("", ":packed"):
                spec = parse_token_spec(form + storage)
                if spec.kind == "topk":
                    rec = topk_tokens(zt, spec.k)
                else:
                    rec = sample_tokens(zt, spec.k, seed)
                if spec.packed:
                    rec = decode_column(encode_column([rec], spec, V), spec, V)[0]
                if spec.kind == "topk":
                    b = pad_topk([rec], spec.k)
                    est = topk_kd_loss(zs[None], b.ids, b.logprobs, b.log_tail, b.mask)
                else:
                    b = pad_samples([rec])
                    est = sampled_kd_loss(zs[None], b.ids, b.counts, b.logprobs, b.mask)
                diffs.setdefault(str(spec), []).append(float(est) - dense)
    mean_dense = statistics.mean(dense_values)
    rows = []
    for name, d in diffs.items():
        rows.append({"tokens": name, "mean": round(statistics.mean(d), 5),
                     "sd": round(statistics.stdev(d), 5) if len(d) > 1 else 0.0,
                     "relative": round(statistics.mean(d) / mean_dense, 5)})
        print(f"  {name:18s} estimate - dense: {rows[-1]['mean']:+.5f} "
              f"(sd {rows[-1]['sd']:.5f}; {100 * rows[-1]['relative']:+.2f}% of the dense KL "
              f"{mean_dense:.4f})", flush=True)
    return [{"dense_kl_mean": round(mean_dense, 5), "seeds": seeds, "batch": batch}] + rows


def speed_part(out: str, teacher_dir: str, texts: List[str], caches: Dict[str, str], steps: int,
               rounds: int) -> List[Dict]:
    """Scored tokens per second of the student's steps from each cache and from the online
    teacher, the sources taking turns round after round."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.cache.vocab import tokenizer_tokens
    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.token_inputs import text_inputs
    from distiller.distill_train.token_online import OnlineSparseTeacher
    from distiller.distill_train.train import train

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    base = dict(student=teacher_dir, student_init="truncate", student_num_layers=2,
                pred_loss="kl", w_gold=0.0, max_steps=steps, batch_size=32, lr=1e-4,
                progress=False, resume=False, device="cpu", seed=0)
    inputs = text_inputs([{"id": str(i), "text_a": t} for i, t in enumerate(texts)], tok,
                         "masked_lm", max_length=MAX_LENGTH, mask_prob=MASK_PROB, seed=0)
    online = OnlineSparseTeacher(AutoModelForMaskedLM.from_pretrained(teacher_dir), inputs,
                                 problem_type="masked_lm", spec="topk:32", micro_batch=32,
                                 pad_id=tok.pad_token_id or 0, vocab=tokenizer_tokens(tok),
                                 vocab_source=f"{teacher_dir} (online)")
    online_rows = [{"id": k, "key": k} for k in inputs]
    per_record = {"online": statistics.mean(len(v["positions"]) for v in inputs.values())}
    corpora = {}
    for name, cache in caches.items():   # each cache opened once: its corpus, positions per row
        c = TeacherCache.open(cache)
        corpora[name] = _corpus(c)
        per_record[name] = c.stats()["positions"] / max(1, len(c.read_corpus(corpora[name])))
    times: Dict[str, List[float]] = {name: [] for name in list(caches) + ["online"]}
    for r in range(rounds):
        for name in times:
            stamps: List[float] = []
            run_dir = os.path.join(out, "speed", f"{name}-{r}")
            if name == "online":
                cfg = TrainConfig(cache="in-memory", train_corpus="train", run_dir=run_dir,
                                  **base)
                train(cfg, provider=online, train_rows=online_rows, dev_rows=online_rows[:8],
                      on_step=lambda s, p: stamps.append(time.perf_counter()))
            else:
                corpus = corpora[name]
                cfg = TrainConfig(cache=caches[name], train_corpus=corpus, dev_corpus=corpus,
                                  run_dir=run_dir, **base)
                train(cfg, on_step=lambda s, p: stamps.append(time.perf_counter()))
            times[name].append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
    rows = []
    for name, t in times.items():
        sec = statistics.median(t)
        rows.append({"source": name, "s_per_step": round(sec, 3),
                     "tokens_per_s": round(32 * per_record[name] / sec, 1)})
        print(f"  {name:18s} {sec:.3f} s/step, {rows[-1]['tokens_per_s']:.1f} scored tokens/s",
              flush=True)
    return rows


def _corpus(cache) -> str:
    return sorted(cache.refresh().get("corpora", {}))[0]


def markdown(res: Dict) -> str:
    lines = ["| tokens | sparse B/token (Arrow) | on disk B/token (shard) |", "|---|---|---|"]
    lines += [f"| `{r['tokens']}` | {r['sparse_bytes_per_token']:.1f} | "
              f"{r['disk_bytes_per_token']:.1f} |" for r in res["bytes"]]
    head = res["bias"][0]
    lines += ["", f"Bias at temperature 1 over {head['seeds']} seeds (batches of {head['batch']} "
              f"texts; mean dense KL {head['dense_kl_mean']:.4f}):", "",
              "| tokens | estimate - dense, mean | SD | mean / dense KL |", "|---|---|---|---|"]
    lines += [f"| `{r['tokens']}` | {r['mean']:+.5f} | {r['sd']:.5f} | "
              f"{100 * r['relative']:+.2f}% |" for r in res["bias"][1:]]
    if res.get("speed"):
        lines += ["", "| KD source | s/step | scored tokens/s |", "|---|---|---|"]
        lines += [f"| {r['source']} | {r['s_per_step']:.3f} | {r['tokens_per_s']:.1f} |"
                  for r in res["speed"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/token-storage")
    p.add_argument("--teacher", default="runs/mlm/minilm-glue",
                   help="a masked LM directory (default: what `make mlm` builds)")
    p.add_argument("--texts", type=int, default=400)
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--batch", type=int, default=16, help="texts per seed in the bias part")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="a smoke test: few texts and seeds")
    args = p.parse_args(argv)
    if not os.path.isdir(args.teacher):
        print(f"token_storage: error: no masked LM at {args.teacher}: run `make mlm` or pass "
              "--teacher", file=sys.stderr)
        return 2
    if args.quick:
        args.texts, args.seeds, args.steps, args.rounds = 40, 3, 3, 1
    from distiller.common.seeding import thread_independent_math

    thread_independent_math()
    os.makedirs(args.out, exist_ok=True)
    texts = read_texts(args.texts)
    texts_file = os.path.join(args.out, "texts.txt")
    atomic_write(texts_file, "\n".join(texts) + "\n")
    res: Dict = {"teacher": args.teacher, "texts": len(texts)}
    t0 = time.time()
    print("== bytes per token", flush=True)
    res["bytes"] = bytes_part(args.out, args.teacher, texts_file)
    print("== bias of the sparse estimates", flush=True)
    res["bias"] = bias_part(args.teacher, texts, args.seeds, min(args.batch, len(texts)))
    print("== training from the cache vs the teacher online", flush=True)
    caches = {r["tokens"]: r["cache"] for r in res["bytes"]
              if r["tokens"] in ("topk:32", "topk:32:packed")}
    res["speed"] = speed_part(args.out, args.teacher, texts, caches, args.steps, args.rounds)
    res["seconds"] = round(time.time() - t0, 1)
    atomic_write(os.path.join(args.out, "results.json"), json.dumps(res, indent=1))
    atomic_write(os.path.join(args.out, "results.md"), markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
