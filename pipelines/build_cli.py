"""`distiller build`: a raw corpus → augmented, teacher-scored, committed cache
(distiller.pipelines.build).

Examples:
    distiller build --input glue/SST-2/train.tsv --task sst2 --teacher runs/teacher \\
        --augment "eda_swap:0.3,copies=4" --cache runs/cache --workers 2
    distiller build --input subj/train.txt --task subj --text-a 1 --label 0 ...   # your own data
    distiller build --input pool.txt --task sst2 --unlabelled ...   # texts only: the teacher labels
    distiller build --input squad/train.json --task squad2 --teacher runs/qa-teacher \
        --augment "eda_swap:0.1" --max-length 256 --doc-stride 128 ...  # QA: windows, question
    distiller build ... --runner dask                      # local dask cluster (loopback)
    distiller build ... --runner dask --dask-address tcp://scheduler:8786
    distiller build ... --runner FlinkRunner -- --flink_master=host:8081   # options untouched

Only argparse is imported here; Beam, torch and transformers load when the command runs.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from distiller.taskdata.resolve import add_task_arguments

__all__ = ["add_parsers", "options_from_args", "run_build", "format_summary",
           "empty_input_warning"]


def _layers(text: str):
    if text == "all":
        return "all"
    if text == "none":
        return ()
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers must be 'all' or comma-separated integers like 0,6,12, got {text!r}")


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "build", help="augment a corpus and cache the teacher's outputs (Apache Beam)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True,
                   help="corpus: a file (.tsv GLUE-style, .csv, .jsonl, .parquet, .txt), a glob, "
                        "a `datasets` directory saved with save_to_disk, or hf:NAME[:CONFIG]"
                        "[@SPLIT]; local or any fsspec URL")
    p.add_argument("--teacher", required=True, help="teacher model name or directory")
    p.add_argument("--augment", default=None,
                   help="augmentation policy spec (e.g. 'eda_swap:0.3,copies=4') or YAML file; "
                        "omitted: originals only")
    p.add_argument("--cache", required=True, help="teacher cache directory (created if absent)")
    p.add_argument("--runner", default="direct",
                   help="direct (default, multi-process), dask, or a Beam runner name such as "
                        "FlinkRunner/SparkRunner/DataflowRunner (options after --)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes for direct and local dask (default: one per GPU of "
                        "--devices, else 2, at most the CPUs)")
    p.add_argument("--devices", default="auto",
                   help="where the teacher runs: auto (every GPU this machine sees, one worker "
                        "each, else the CPU), cpu, cuda, or a list like cuda:0,cuda:1; on a "
                        "remote runner each worker resolves it on its own machine")
    p.add_argument("--threads-per-worker", type=int, default=None,
                   help="torch threads per worker process (default: this machine's CPUs / "
                        "--workers for local runners, the worker's own CPUs on a cluster)")
    p.add_argument("--dask-address", default=None,
                   help="existing dask scheduler (tcp://host:8786); default starts a local one")
    p.add_argument("--split", default="train", help="split name used in corpus names")
    p.add_argument("--dead-letters", default=None,
                   help="JSONL file for rejected rows "
                        "(default: <cache>.dead_letters/<corpus>.jsonl)")
    p.add_argument("--seed", type=int, default=0, help="base seed of augmentation")
    p.add_argument("--max-length", type=int, default=128,
                   help="teacher tokens per input (question answering: per context window)")
    p.add_argument("--doc-stride", type=int, default=128,
                   help="question answering: context tokens between the starts of consecutive "
                   "windows (BERT's and the study's meaning; Hugging Face's run_qa.py calls the "
                   "overlap its doc_stride)")
    p.add_argument("--max-query-length", type=int, default=64,
                   help="question answering: question tokens kept (longer ones are cut, or "
                   "dead-lettered with --reject-long)")
    p.add_argument("--reject-long", action="store_true",
                   help="dead-letter texts over --max-length instead of truncating them")
    p.add_argument("--limit", type=int, default=None, help="read only the first N rows")
    p.add_argument("--layers", type=_layers, default=None,
                   help="hidden states to keep: all, none or e.g. 0,3,6 (default: all; none for "
                        "a language-model task)")
    p.add_argument("--pooling", default="none", choices=["none", "cls", "mean"])
    p.add_argument("--attentions", action="store_true", help="keep attention maps")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32", "int8"])
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"],
                   help="teacher precision: auto = what an existing cache records, else float32 "
                   "on CPUs and bf16/fp16 on GPUs; bf16 on a CPU with AVX512-BF16/AMX can be "
                   "faster (README, Benchmarks); recorded in the cache spec, and a value that "
                   "disagrees with the cache's is an error")
    p.add_argument("--backend", default="eager", choices=["eager", "compile", "onnx"],
                   help="what runs the teacher: eager PyTorch, compile = torch.compile (a warm-up "
                   "of tens of seconds, then faster; README, Benchmarks), onnx = ONNX Runtime on "
                   "a CPU (needs onnxruntime); recorded in the cache spec")
    p.add_argument("--unit-size", type=int, default=1024,
                   help="records per scoring unit (= per shard)")
    p.add_argument("--share-model", action="store_true",
                   help="one teacher shared by the worker processes of a machine")
    p.add_argument("--tokens", default="", metavar="topk:K|sample:N",
                   help="language-model tasks (--kind masked_lm / causal_lm): what is kept per "
                        "predicted token, the K most likely tokens with the tail's mass, or N "
                        "tokens drawn from the teacher; a suffix :packed (bit-packed ids, 8-bit "
                        "log-probabilities) and/or :zstd (compressed shards) stores it in fewer "
                        "bytes (docs/cache.md, 'Token-level caches')")
    p.add_argument("--mask-prob", type=float, default=0.15,
                   help="masked_lm: share of each text's tokens masked (80%% [MASK], 10%% random, "
                        "10%% kept; part of every key)")
    p.add_argument("--mask-seed", type=int, default=0,
                   help="masked_lm: seed mixed into every record's masking")
    p.add_argument("--mixup", type=int, default=0, metavar="N",
                   help="mixup pairs per record, scored offline on interpolated embeddings")
    p.add_argument("--mixup-alpha", type=float, default=0.4, help="λ ~ Beta(alpha, alpha)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("beam_args", nargs=argparse.REMAINDER,
                   help="after --: Beam pipeline options, passed through untouched")
    add_task_arguments(p, labels_optional=True)
    p.set_defaults(func=run_build)


def options_from_args(args):
    from distiller.pipelines.build import BuildOptions
    from distiller.taskdata.resolve import task_from_args

    # an unlabelled corpus takes its labels from the task or the teacher, not from the file
    task, notes = task_from_args(args, data=None if args.unlabelled else args.input)
    for note in notes:
        print(f"distiller build: {note}", file=sys.stderr)
    beam_args = list(args.beam_args or [])
    if beam_args and beam_args[0] == "--":
        beam_args = beam_args[1:]
    return BuildOptions(
        input=args.input, task=task, teacher=args.teacher, cache=args.cache,
        augment=args.augment, split=args.split, runner=args.runner, workers=args.workers,
        devices=args.devices,
        threads_per_worker=args.threads_per_worker, dask_address=args.dask_address,
        dead_letters=args.dead_letters, seed=args.seed,
        max_length=args.max_length, doc_stride=args.doc_stride,
        max_query_length=args.max_query_length, reject_long=args.reject_long,
        labelled=not args.unlabelled,
        limit=args.limit, pooling=args.pooling, attentions=args.attentions,
        layers=args.layers if args.layers is not None else (() if task.is_lm else "all"),
        dtype=args.dtype, amp=args.amp, backend=args.backend, unit_size=args.unit_size,
        share_model=args.share_model,
        beam_args=beam_args, progress=args.progress, mixup=args.mixup,
        mixup_alpha=args.mixup_alpha, tokens=args.tokens, mask_prob=args.mask_prob,
        mask_seed=args.mask_seed)


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_summary(s) -> str:
    lines = [
        "distiller build: done",
        *([f"  task              {s['task']}"] if s.get("task") else []),
        f"  records read      {s['records_read']}",
        f"  augmented copies  {s['augmented_copies']}",
        f"  distinct keys     {s['unique_keys']}",
        f"  cache hits        {s['cache_hits']}"
        + (f"  (of them {s['adopted_rows']} scored by an interrupted build, committed now)"
           if s.get("adopted_rows") else ""),
        f"  newly scored      {s['newly_scored']}  ({s['shards_written']} shards)"
        + (f"  (of them {s['committed_by_other']} already committed by another build running at "
           "the same time: stored once)" if s.get("committed_by_other") else ""),
    ] + ([f"  context windows   {s['windows']}  (originals and copies; one cache row each)"]
         if "windows" in s else []) + [
        f"  truncated         {s['truncated']}",
        f"  mixup pairs       {s.get('mixup_pairs', 0)}",
        f"  dead letters      {s['dead_letters']}"
        + (f"  {s['dead_letter_reasons']}  -> {s['dead_letter_file']}" if s["dead_letters"]
           else ""),
        f"  bytes written     {_human_bytes(s['bytes_written'])}",
        f"  corpora           {', '.join(f'{k} ({v})' for k, v in s['corpora'].items())}",
        *([f"  flags             distiller cache corpora {shlex.quote(s['cache'])}  (prints "
            "the --train-corpus/--dev-corpus flags of every corpus)"] if s.get("cache") else []),
        f"  time              {s['seconds']:.1f} s on {s['runner']} x{s['workers']}"
        + (f" ({s['devices']}, amp {s['amp']})" if s.get("devices") else ""),
    ]
    for name, change in (s.get("corpora_replaced") or {}).items():
        lines.append(f"  warning: corpus {name} replaced: it held {change['rows_before']} rows "
                     f"from another input, now {change['rows_after']} (trainers naming it read "
                     f"the new rows; use --split to keep both)")
    if s.get("beam_counters"):
        lines.append("  beam counters     " + ", ".join(
            f"{k}={v}" for k, v in s["beam_counters"].items()))
    return "\n".join(lines)


def run_build(args) -> int:
    from distiller.pipelines.build import BuildError, build_distill_set

    try:
        summary = build_distill_set(options_from_args(args))
    except BuildError as exc:
        print(f"distiller build: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True) if args.json else format_summary(summary))
    sys.stdout.flush()
    if not summary["records_read"]:
        print(f"distiller build: warning: {empty_input_warning(args.input, summary)}",
              file=sys.stderr)
    return 0


def empty_input_warning(path: str, summary) -> str:
    """The line said when a build read no usable row (an empty file, or only bad rows)."""
    names = ", ".join(summary.get("corpora") or {}) or "the corpus"
    if summary.get("dead_letters"):
        return (f"{path} has no usable row ({summary['dead_letters']} dead letter(s), see "
                f"{summary['dead_letter_file']}): {names} is empty")
    return f"{path} holds no rows: {names} is empty (is it the right file?)"
