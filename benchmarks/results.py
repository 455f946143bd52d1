"""The results table of the end-to-end issue: does this toolkit reproduce the study's findings?

    .venv/bin/python benchmarks/results.py --out runs/results [--tasks sst2,rte,stsb] [--seeds 3]

For each task (SST-2, RTE, STS-B, CoLA, MRPC from ../shared/data, read as GLUE ships them):
fine-tune the MiniLM-L6 teacher (on the whole train set; on a 2,000-sentence SST-2 sample),
build the teacher cache of a seeded training sample (--train-size) with the Beam pipeline
(originals, an EDA-augmented variant and, for --mixup-tasks, offline mixup pairs), then train a
2-layer student cut from the teacher (layers 3 and 6; on STS-B layers 1 and 2, over its whole
train set for 2 epochs: see --student-layers, --train-size, --task-epochs, --task-lr) several
ways on that sample, each with `--seeds` seeds (every configuration on --full-tasks,
--other-configs elsewhere):

  nokd          fine-tuned on gold labels, no teacher
  pred          prediction-layer KD only (KL at tau; MSE for STS-B), from the cache
  pred+mse      + intermediate MSE over skip-mapped layers
  pred+cos      + intermediate cosine
  pred+pkd      + PKD on [CLS]
  pred+mi       + MI-alpha (alpha 0.9, transformer critic, w_inter 0.1: at 1 its gradients
                drown the prediction loss's, see distill_train/objective.py)
  pred+mse+aug  pred+mse on the EDA-augmented corpus
  pred+ctx      pred on a corpus augmented by contextual substitution with a real masked LM
                (--mlm-model, built by `make mlm`; aug_p 0.3, 2 copies per example)
  pred+ctx+swap pred on the study's chain: contextual substitution then random swap (0.3 each)
  pred+mixup    pred on the originals plus one offline mixup pair per record (teacher scored the
                interpolated embeddings in the build; RTE and STS-B only, see --mixup-tasks)
  online        pred+mse with the teacher run online on every batch (same metric, time saved)
  transfer      pred+mse from the cache on a transfer set: the student's labelled sample plus a
                pool of other training texts with their labels dropped (--transfer-pool), and
                one EDA copy of each, scored by the teacher; 2 epochs, no gold labels (the demo's
                story, compared with nokd on the labelled sample alone)

Writes results.json (every run), results.md (mean +- std of the primary metric, the task's other
metrics beside it) and results.png. Finished runs are kept (an interrupted run continues). Not
run in CI: it trains about 100 students.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distiller.builders.teacher.pretrained import minilm_path  # noqa: E402
from distiller.common.files import atomic_write  # noqa: E402
from distiller.taskdata import builtin_task, read_records  # noqa: E402
from distiller.taskdata.paths import shared_data  # noqa: E402
from distiller.taskdata.sampling import sample_tsv  # noqa: E402

TASK_FILES = {"sst2": "SST-2", "rte": "RTE", "stsb": "STS-B", "cola": "CoLA", "mrpc": "MRPC"}
TEACHER_SAMPLE = {"sst2": 2000}  # the teacher's training sample (whole train set elsewhere)
# the study's lengths for single sentences; pairs over: STS-B 3.4% at 64, RTE 12.8% at 128
MAX_LENGTH = {"sst2": 64, "rte": 128, "stsb": 64, "cola": 64, "mrpc": 128}
CONFIGS = {
    "pred": dict(pred_loss="kl", inter_loss="none"),
    "pred+mse": dict(pred_loss="kl", inter_loss="mse"),
    "pred+cos": dict(pred_loss="kl", inter_loss="cosine"),
    "pred+pkd": dict(pred_loss="kl", inter_loss="pkd"),
    "pred+mi": dict(pred_loss="kl", inter_loss="mi", mi_alpha=0.9, w_inter=0.1),
    "pred+mse+aug": dict(pred_loss="kl", inter_loss="mse", corpus="aug"),
    "pred+mixup": dict(pred_loss="kl", inter_loss="none", corpus="mixup"),
    "pred+ctx": dict(pred_loss="kl", inter_loss="none", corpus="ctx"),
    "pred+ctx+swap": dict(pred_loss="kl", inter_loss="none", corpus="ctx+swap"),
    "transfer": dict(pred_loss="kl", inter_loss="mse", corpus="transfer", w_gold=0.0, epochs=2),
}
TRANSFER_POLICY = "eda_synonym:0.1+eda_swap:0.1,copies=1"
# the masked LM's corpora (--mlm-model): contextual alone, and chained with random swap, 0.3 each
MLM_POLICIES = {"ctx": "contextual(model={mlm}):0.3,copies=2",
                "ctx+swap": "contextual(model={mlm}):0.3+eda_swap:0.3,copies=2"}


def transfer_tsv(full_train: str, sample: str, dst: str, pool: int, *, header: bool) -> int:
    """The transfer set: the rows of the labelled sample plus `pool` other training rows (seeded),
    in the task's own format; a build with labelled=False reads their texts only."""
    import random

    with open(full_train, "rb") as fh:
        rows = fh.read().splitlines(keepends=True)
    with open(sample, "rb") as fh:
        taken = fh.read().splitlines(keepends=True)
    head = rows[:1] if header else []
    rows = [r if r.endswith(b"\n") else r + b"\n" for r in rows[len(head):]]
    taken = taken[len(head):]
    seen = set(taken)
    others = [r for r in rows if r not in seen]
    extra = random.Random(1).sample(others, min(pool, len(others)))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    atomic_write(dst, b"".join(head + taken + extra))
    return len(taken) + len(extra)


def per_task(spec: str) -> Dict[str, str]:
    """'sst2=1000,rte=400' -> {'sst2': '1000', 'rte': '400'} (the per-task flags)."""
    return dict(part.split("=") for part in spec.split(",") if part)


def student_setup(task: str, args):
    """(students' training file, teacher layers the student is cut from or None, runs folder)."""
    root = os.path.join(args.out, task)
    sizes = per_task(args.train_size)
    train_file = os.path.join(args.data, TASK_FILES[task], "train.tsv")
    if task in sizes:  # students (and, on SST-2, the teacher) see a seeded sample
        train_file = os.path.join(root, "data", f"train-{sizes[task]}.tsv")
    layers = per_task(args.student_layers)
    keep = tuple(int(n) for n in layers[task].split("+")) if task in layers else None
    tag = f"-l{layers[task]}" if keep else ""
    runs = os.path.join(root, f"runs-{os.path.basename(train_file)[:-4]}{tag}")  # one per setup
    return train_file, keep, runs


def prepare_task(task: str, args) -> Dict[str, str]:
    """Teacher and caches for one task; returns paths and corpus names."""
    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.train import train
    from distiller.pipelines.build import BuildOptions, build_distill_set

    root = os.path.join(args.out, task)
    src = os.path.join(args.data, TASK_FILES[task])
    full_train = os.path.join(src, "train.tsv")
    train_file, keep, runs = student_setup(task, args)
    header = builtin_task(task).header
    if train_file != full_train and not os.path.exists(train_file):
        sample_tsv(full_train, train_file, int(per_task(args.train_size)[task]), 0, header=header)
    teacher_file = full_train
    if task in TEACHER_SAMPLE:
        teacher_file = os.path.join(root, "data", f"teacher-train-{TEACHER_SAMPLE[task]}.tsv")
        if not os.path.exists(teacher_file):
            sample_tsv(full_train, teacher_file, TEACHER_SAMPLE[task], 0, header=header)
    dev_file = os.path.join(src, "dev.tsv")
    max_len = MAX_LENGTH[task]
    teacher_run = os.path.join(root, "teacher")
    if not os.path.exists(os.path.join(teacher_run, "result.json")):
        train(TrainConfig(task=task, mode="finetune", run_dir=teacher_run, student=minilm_path(),
                          train_file=teacher_file, dev_file=dev_file, max_length=max_len,
                          epochs=args.teacher_epochs, lr=args.teacher_lr, seed=0, progress=False))
    teacher = os.path.join(teacher_run, "best_model")
    cache = os.path.join(root, "cache")
    common = dict(task=task, teacher=teacher, cache=cache, workers=2, max_length=max_len,
                  progress=False)
    split = "train" if train_file != full_train else "train-full"  # STS-B's sample kept "train"
    tr = build_distill_set(BuildOptions(train_file, split=split, augment=args.policy, **common))
    dv = build_distill_set(BuildOptions(input=dev_file, split="dev", **common))
    names = list(tr["corpora"])
    paths = {"root": root, "runs": runs, "cache": cache, "teacher": teacher,
             "train_file": train_file, "dev_file": dev_file, "plain": names[0], "aug": names[-1],
             "dev": next(iter(dv["corpora"])), "max_length": str(max_len), "keep": keep}
    for name in _configs_of(task, args):
        corpus = CONFIGS.get(name, {}).get("corpus")
        if corpus in MLM_POLICIES and corpus not in paths:  # the model checked in main()
            built = build_distill_set(BuildOptions(
                input=train_file, split=split, augment=MLM_POLICIES[corpus].format(
                    mlm=args.mlm_model), **common))
            paths[corpus] = list(built["corpora"])[-1]
    if task in args.mixup_tasks.split(","):
        mx = build_distill_set(BuildOptions(input=train_file, split=split, mixup=1, **common))
        paths["mixup"] = list(mx["corpora"])[-1]
    pools = per_task(args.transfer_pool)
    if task in pools and "transfer" in _configs_of(task, args):
        transfer = os.path.join(root, "data", f"transfer-{pools[task]}.tsv")
        if not os.path.exists(transfer):
            transfer_tsv(full_train, train_file, transfer, int(pools[task]), header=header)
        tf = build_distill_set(BuildOptions(input=transfer, split=f"transfer{pools[task]}",
                                            augment=TRANSFER_POLICY, labelled=False, **common))
        paths["transfer"] = list(tf["corpora"])[-1]
    return paths


def _configs_of(task: str, args) -> List[str]:
    return (args.configs if task in args.full_tasks.split(",") else args.other_configs).split(",")


def run_one(task: str, name: str, seed: int, paths: Dict[str, str], args) -> Dict:
    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.train import train

    run_dir = os.path.join(paths["runs"], f"{name}-s{seed}")
    done = os.path.join(run_dir, "result.json")
    if os.path.exists(done):
        with open(done, encoding="utf-8") as fh:
            return json.load(fh)
    if args.report_only:
        return None
    layers = (dict(student_layers=paths["keep"]) if paths["keep"]
              else dict(student_num_layers=2))
    epochs = per_task(args.task_epochs)
    student = dict(student=minilm_path(), student_init="truncate",
                   epochs=int(epochs.get(task, args.epochs)),
                   lr=float(per_task(args.task_lr).get(task, args.lr)), seed=seed,
                   run_dir=run_dir, progress=False, **layers)
    if name == "nokd":
        cfg = TrainConfig(task=task, mode="finetune", train_file=paths["train_file"],
                          dev_file=paths["dev_file"], max_length=int(paths["max_length"]),
                          **student)
        return train(cfg).to_dict()
    if name == "online":
        return run_online(task, seed, paths, dict(student, temperature=args.temperature))
    spec = dict(CONFIGS[name])
    corpus = paths.get(spec.pop("corpus", "plain"))
    if corpus is None:
        return None  # pred+mixup on a task outside --mixup-tasks, transfer without a pool
    student["epochs"] = spec.pop("epochs", student["epochs"])
    cfg = TrainConfig(task=task, mode="distill", cache=paths["cache"], train_corpus=corpus,
                      dev_corpus=paths["dev"], mapping="skip", temperature=args.temperature,
                      **spec, **student)
    return train(cfg).to_dict()


def run_online(task: str, seed: int, paths: Dict[str, str], student: Dict) -> Dict:
    """pred+mse with the teacher run online on every batch instead of read from the cache
    (everything else as pred+mse, the temperature included)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distiller.builders.cache.store import TeacherCache
    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.data import OnlineTeacherProvider
    from distiller.distill_train.train import train

    cache = TeacherCache.open(paths["cache"])
    rows = cache.read_corpus(paths["plain"])
    dev = cache.read_corpus(paths["dev"])
    texts = {}
    for path, corpus in ((paths["train_file"], rows), (paths["dev_file"], dev)):
        by_id = {r["id"]: r for r in read_records(path, builtin_task(task))
                 if isinstance(r, dict)}
        for row in corpus:
            rec = by_id[row["id"]]
            texts[row["key"]] = (rec["text_a"], rec["text_b"])
    model = AutoModelForSequenceClassification.from_pretrained(paths["teacher"])
    tok = AutoTokenizer.from_pretrained(paths["teacher"])
    provider = OnlineTeacherProvider(model, tok, texts, max_length=int(paths["max_length"]))
    cfg = TrainConfig(task=task, mode="distill", cache=paths["cache"], train_corpus=paths["plain"],
                      dev_corpus=paths["dev"], pred_loss="kl", inter_loss="mse", mapping="skip",
                      **student)
    return train(cfg, provider=provider, train_rows=rows, dev_rows=dev).to_dict()


def _dev_metrics(run: Dict) -> Dict[str, float]:
    """Every dev metric of a run at its best epoch (runs written before `best_dev` existed:
    from the history)."""
    if run.get("best_dev"):
        return run["best_dev"]
    history, best = run.get("history") or [], run.get("best_epoch")
    if best is not None and best < len(history):
        return history[best].get("dev") or {}
    return {}


def _mean_sd(values: List[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def summarise(results: Dict[str, Dict[str, List[Dict]]]) -> str:
    """Markdown: per task and configuration the primary metric (mean ± std over seeds), the
    task's other metrics at the same epochs, seeds and training time."""
    lines = ["| task | configuration | dev metric (mean ± std) | other metrics | seeds | "
             "train time s (mean) |", "|---|---|---|---|---|---|"]
    for task, by_cfg in results.items():
        for name, runs in by_cfg.items():
            vals = [r["best_metric"] for r in runs]
            secs = statistics.mean(r["wall_time_s"] for r in runs)
            primary = runs[0]["metric_name"]
            others = sorted({k for r in runs for k in _dev_metrics(r)} - {primary})
            extra = ", ".join(f"{k} {_mean_sd([_dev_metrics(r)[k] for r in runs])}"
                              for k in others
                              if all(k in _dev_metrics(r) for r in runs)) or "-"
            lines.append(f"| {task} ({primary}) | {name} | {_mean_sd(vals)} | {extra} | "
                         f"{len(vals)} | {secs:.0f} |")
        teacher = next((r for runs in by_cfg.values() for r in runs
                        if r.get("teacher_metric") is not None), None)
        if teacher is not None:
            extra = ", ".join(f"{k} {v:.2f}" for k, v in sorted(
                (teacher.get("teacher_dev") or {}).items()) if k != teacher["metric_name"])
            lines.append(f"| {task} | teacher (MiniLM-L6) | {teacher['teacher_metric']:.2f} | "
                         f"{extra or '-'} | 1 | |")
    return "\n".join(lines)


def plot(results: Dict[str, Dict[str, List[Dict]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (task, by_cfg) in zip(axes[0], results.items()):
        names = list(by_cfg)
        means = [statistics.mean(r["best_metric"] for r in by_cfg[n]) for n in names]
        sds = [statistics.stdev([r["best_metric"] for r in by_cfg[n]]) if len(by_cfg[n]) > 1
               else 0.0 for n in names]
        ax.bar(range(len(names)), means, yerr=sds, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_title(task)
        ax.set_ylim(min(means) - 5, max(means) + 5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/results")
    p.add_argument("--data", default=shared_data("glue"))
    p.add_argument("--tasks", default="sst2,rte,stsb,cola,mrpc")
    p.add_argument("--configs", default="nokd,pred,pred+mse,pred+cos,pred+pkd,pred+mi,"
                   "pred+mse+aug,pred+mixup,pred+ctx,pred+ctx+swap,online,transfer")
    p.add_argument("--mixup-tasks", default="rte,stsb",
                   help="tasks whose build adds offline mixup pairs (the pred+mixup rows)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--train-size", default="sst2=1000,rte=400,cola=2000,mrpc=2000",
                   help="the students' seeded training sample per task (a task not named: its "
                        "whole train set, as STS-B: a 2-layer student barely learns it from 800 "
                        "pairs); the teacher is fine-tuned on the whole RTE/STS-B train set and "
                        "on a 2,000-sentence SST-2 sample")
    p.add_argument("--student-layers", default="stsb=1+2",
                   help="per task, the teacher layers the 2-layer student is cut from, e.g. "
                        "stsb=1+2 (a task not named: skip-chosen layers 3 and 6)")
    p.add_argument("--seed-list", help="run only these seeds, e.g. 0,2 (to share the runs "
                   "between processes; a last run without it writes the whole table)")
    p.add_argument("--keep", help="an earlier results.json: its rows (task, configuration) "
                   "that this call does not run stay in the table, e.g. "
                   "benchmarks/results/results.json")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: the table, JSON and plot of the runs already finished")
    p.add_argument("--full-tasks", default="sst2,rte,stsb",
                   help="tasks that run every configuration in --configs; the others run "
                        "--other-configs (to fit the time: see README)")
    p.add_argument("--other-configs", default="nokd,pred,pred+mse,pred+mse+aug,pred+ctx,transfer")
    p.add_argument("--transfer-pool", default="sst2=6000,mrpc=3076",
                   help="per task, the other training rows (labels dropped) that join the "
                   "labelled sample in the transfer set of the 'transfer' configuration")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--task-lr", default="cola=3e-4",
                   help="per-task student learning rate over --lr (CoLA: at 1e-4 no 2-layer "
                   "student left the majority class in 3 epochs; at 3e-4 one did)")
    p.add_argument("--task-epochs", default="stsb=2,cola=5",
                   help="per-task epochs over --epochs (STS-B: 2 over its whole train set)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--teacher-lr", type=float, default=5e-5)
    p.add_argument("--policy", default="eda_synonym:0.1+eda_swap:0.1,copies=2")
    p.add_argument("--mlm-model", default=os.path.join("runs", "mlm", "minilm-glue"),
                   help="the masked LM of the pred+ctx rows (default: what `make mlm` builds)")
    args = p.parse_args(argv)
    ctx = sorted({n for t in args.tasks.split(",") for n in _configs_of(t, args)
                  if CONFIGS.get(n, {}).get("corpus") in MLM_POLICIES})
    if ctx and not args.report_only and not os.path.isdir(args.mlm_model):
        print(f"results.py: {', '.join(ctx)} need the masked LM {args.mlm_model!r}, which does "
              "not exist: build it with `make mlm` (or give --mlm-model)", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    results: Dict[str, Dict[str, List[Dict]]] = {}
    seeds = ([int(s) for s in args.seed_list.split(",")] if args.seed_list
             else range(args.seeds))
    start = time.time()
    for task in args.tasks.split(","):
        paths = ({"runs": student_setup(task, args)[2]} if args.report_only
                 else prepare_task(task, args))
        results[task] = {}
        for name in _configs_of(task, args):
            for seed in seeds:
                res = run_one(task, name, seed, paths, args)
                if res is None:
                    continue
                results[task].setdefault(name, []).append(res)
                print(f"{task} {name} seed {seed}: {res['best_metric']:.2f} "
                      f"({res['wall_time_s']:.0f} s)", flush=True)
    results = {t: v for t, v in results.items() if v}  # tasks with finished runs only
    if args.keep:
        with open(args.keep, encoding="utf-8") as fh:
            earlier = json.load(fh)
        merged = {t: dict(v) for t, v in earlier.items()}
        for task, by_cfg in results.items():   # this call's runs replace a configuration's
            merged.setdefault(task, {}).update(by_cfg)
        results = merged
    table = summarise(results)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
    with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n")
    plot(results, os.path.join(args.out, "results.png"))
    print(table)
    print(f"total {time.time() - start:.0f} s; {args.out}/results.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
