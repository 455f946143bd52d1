"""`distiller cache info|corpora|stats|verify|clean|merge` and `distiller score` (local scoring,
no Beam).

Only argparse at import time: torch/transformers/pyarrow load inside the command functions.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict

from distiller.common.errors import UsageError
from distiller.taskdata.resolve import add_task_arguments

__all__ = ["add_parsers", "score_file"]


def add_parsers(subparsers) -> None:
    cache = subparsers.add_parser("cache", help="inspect, check and merge teacher caches")
    csub = cache.add_subparsers(dest="cache_command", metavar="ACTION")
    p = csub.add_parser("info", help="spec, fingerprint, shards and corpora of a cache")
    p.add_argument("path")
    p.set_defaults(func=_cmd_info)
    p = csub.add_parser("corpora", help="the corpora of a cache and the ready-to-paste "
                                        "--train-corpus/--dev-corpus flags that select them")
    p.add_argument("path")
    p.add_argument("--flags", choices=("train", "evaluate"), default=None,
                   help="print only the flag lines of `distiller train` or `distiller "
                   "evaluate`, one per corpus (for scripts)")
    p.set_defaults(func=_cmd_corpora)
    p = csub.add_parser("stats", help="examples, tokens, bytes per example; bytes per predicted "
                                      "token for a language model's cache (JSON)")
    p.add_argument("path")
    p.set_defaults(func=_cmd_stats)
    p = csub.add_parser("verify", help="recompute checksums and schemas; exit 1 naming bad shards")
    p.add_argument("path")
    p.set_defaults(func=_cmd_verify)
    p = csub.add_parser("clean", help="remove temp files of writers that are gone and unusable "
                                      "uncommitted shards")
    p.add_argument("path")
    p.set_defaults(func=_cmd_clean)
    p = csub.add_parser("merge", help="merge the caches SOURCE... (same spec) into PATH")
    p.add_argument("path")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.set_defaults(func=_cmd_merge)
    cache.set_defaults(func=lambda args: (cache.print_help(), 2)[1])

    p = subparsers.add_parser("score", help="score a corpus file with a teacher into a cache "
                                            "(local, no Beam)")
    p.add_argument("--input", required=True, help="file, glob, saved dataset or hf:NAME "
                   "(as `distiller build --input`)")
    p.add_argument("--teacher", required=True, help="HF model name or save_pretrained directory")
    p.add_argument("--cache", required=True, help="cache directory (created if absent)")
    p.add_argument("--dry-run", action="store_true",
                   help="only estimate the cache size from the length histogram; write nothing")
    p.add_argument("--max-length", type=int, default=128,
                   help="tokens per input (question answering: per context window)")
    p.add_argument("--doc-stride", type=int, default=128,
                   help="question answering: context tokens between the starts of consecutive "
                   "windows (BERT's and the study's meaning)")
    p.add_argument("--max-query-length", type=int, default=64,
                   help="question answering: question tokens kept")
    p.add_argument("--layers", default=None,
                   help="'all', 'none' or comma-separated hidden-state indices (default: all; "
                   "none for a language-model task)")
    p.add_argument("--pooling", default="none", choices=("none", "cls", "mean"))
    p.add_argument("--attentions", action="store_true", help="also keep attention maps")
    p.add_argument("--dtype", default="float16", choices=("float32", "float16", "int8"))
    p.add_argument("--logits-topk", type=int, default=0)
    p.add_argument("--tokens", default=None, metavar="topk:K|sample:N",
                   help="language-model tasks (--kind masked_lm / causal_lm): what is kept per "
                   "predicted token, the K most likely tokens with the tail's mass, or N tokens "
                   "drawn from the teacher (docs/cache.md, 'Token-level caches')")
    p.add_argument("--mask-prob", type=float, default=0.15,
                   help="masked_lm: share of each text's tokens masked (80%% [MASK], 10%% random, "
                   "10%% kept; part of every key)")
    p.add_argument("--mask-seed", type=int, default=0,
                   help="masked_lm: seed mixed into every record's masking (another seed: "
                   "another masking of the same texts, other keys)")
    p.add_argument("--max-tokens-per-batch", type=int, default=2048)
    p.add_argument("--chunk", type=int, default=2048,
                   help="records per committed shard (progress survives a kill)")
    p.add_argument("--limit", type=int, default=None, help="read only the first N rows")
    p.add_argument("--corpus", default=None,
                   help="corpus name to record (default: TASK-SPLIT from the file name)")
    p.add_argument("--devices", "--device", dest="devices", default="auto",
                   help="auto (every GPU this machine sees, else the CPU), cpu, cuda, or a list "
                   "like cuda:0,cuda:1: one teacher replica per device")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"],
                   help="teacher precision: auto = what an existing cache records, else float32 "
                   "on CPUs and bf16/fp16 on GPUs; one that disagrees with the cache is an error")
    p.add_argument("--backend", default="eager", choices=["eager", "compile", "onnx"],
                   help="what runs the teacher: eager PyTorch, compile = torch.compile (a warm-up "
                   "of tens of seconds, then faster; README, Benchmarks), onnx = ONNX Runtime on "
                   "a CPU (needs onnxruntime); recorded in the cache spec")
    add_task_arguments(p, labels_optional=True)
    p.set_defaults(func=_cmd_score)


def _cmd_info(args) -> int:
    from .cache.store import TeacherCache

    cache = TeacherCache.open(args.path)
    print(json.dumps({"path": cache.path, "spec": cache.spec.to_dict(),
                      "shards": cache.manifest["shards"], "corpora": cache.manifest["corpora"],
                      "stats": cache.stats()}, indent=1, sort_keys=True))
    return 0


def _cmd_corpora(args) -> int:
    from .cache.store import TeacherCache
    from .cache.corpus_flags import evaluate_flags, format_corpora, train_flags

    corpora = TeacherCache.open(args.path).manifest.get("corpora", {})
    if args.flags is None:
        print(format_corpora(args.path, corpora))
    else:
        for line in (train_flags if args.flags == "train" else evaluate_flags)(args.path,
                                                                                corpora):
            print(line)
    return 0


def _cmd_stats(args) -> int:
    from .cache.store import TeacherCache
    from .cache.stats import measured_token_bytes

    cache = TeacherCache.open(args.path)
    stats = cache.stats()
    if cache.spec.token_level:   # the sparse column's measured bytes beside the estimate
        stats["sparse_bytes_per_token"] = measured_token_bytes(cache)
    print(json.dumps(stats, indent=1, sort_keys=True))
    return 0


def _cmd_verify(args) -> int:
    from .cache.store import TeacherCache

    cache = TeacherCache.open(args.path)
    problems = cache.verify()
    for line in problems:
        print(f"BAD {line}")
    for line in cache.leftovers():  # not failures: nothing committed depends on them
        print(f"warning: {line}")
    if problems:
        print(f"{len(problems)} problem(s) in {cache.path}", file=sys.stderr)
        return 1
    print(f"ok: {len(cache.manifest['shards'])} shard(s), {len(cache)} example(s) verified")
    return 0


def _cmd_clean(args) -> int:
    from .cache.store import TeacherCache

    cache = TeacherCache.open(args.path)
    done = cache.clean()
    for tmp in done["temp_files"]:
        print(f"removed {tmp.describe()}")
    for shard in done["shards"]:
        print(f"removed uncommitted shard shards/{shard.name} ({shard.problem})")
    for line in done["kept"]:
        print(f"kept {line}")
    removed = len(done["temp_files"]) + len(done["shards"])
    print(f"clean: {removed} file(s) removed from {cache.path}" if removed
          else f"clean: nothing to remove in {cache.path}")
    return 0


def _cmd_merge(args) -> int:
    from .cache.store import TeacherCache

    cache = TeacherCache.open(args.path)
    for src in args.sources:
        added = cache.merge(src)
        print(f"merged {src}: {len(added)} shard(s), {sum(a.rows for a in added)} row(s) added")
    return 0


def _cmd_score(args) -> int:
    from distiller.taskdata.resolve import task_from_args

    from .teacher.taskfit import fit_teacher_to_task
    from .teacher.model import TeacherConfig

    task, notes = task_from_args(args, data=None if args.unlabelled else args.input)
    for note in notes:
        print(f"distiller score: {note}", file=sys.stderr)
    task, num_labels = fit_teacher_to_task(args.teacher, task)

    layers: Any = args.layers or ("none" if task.is_lm else "all")
    if layers == "none":
        layers = ()
    elif layers != "all":
        try:
            layers = tuple(int(x) for x in layers.split(","))
        except ValueError:
            raise UsageError(f"--layers must be 'all', 'none' or comma-separated integers, got "
                             f"{args.layers!r}") from None
    if task.is_lm and not args.tokens:
        raise UsageError(f"task {task.name} is a {task.kind} task: give --tokens topk:K or "
                         "--tokens sample:N (what is kept per predicted token)")
    # issue 19: the devices' slots, and the precision the cache records (or a clear error)
    devices, amp = _placement(args.devices, args.amp, args.cache)
    config = TeacherConfig(model=args.teacher, max_length=args.max_length, layers=layers,
                           pooling=args.pooling, attentions=args.attentions,
                           max_tokens_per_batch=args.max_tokens_per_batch, device=devices[0],
                           amp=amp, num_labels=num_labels, backend=args.backend,
                           head=task.kind if task.is_lm else "span" if task.is_span
                           else "sequence", doc_stride=args.doc_stride,
                           max_query_length=args.max_query_length, tokens=args.tokens or "",
                           mask_prob=args.mask_prob, mask_seed=args.mask_seed)
    summary = score_file(config, input_path=args.input, task=task, cache_dir=args.cache,
                         dtype=args.dtype, logits_topk=args.logits_topk, dry_run=args.dry_run,
                         chunk=args.chunk, limit=args.limit, corpus=args.corpus,
                         labelled=not args.unlabelled, devices=devices)
    for dl in summary.pop("dead_letter_examples", []):
        print(f"dead letter: row {dl['row']}: {dl['reason']}", file=sys.stderr)
    print(json.dumps(summary, indent=1, sort_keys=True))
    if not summary["records"]:
        what = (f"has no usable row ({summary['dead_letters']} dead letter(s))"
                if summary["dead_letters"] else "holds no rows (is it the right file?)")
        where = f": corpus {summary['corpus']} is empty" if summary.get("corpus") else ""
        print(f"distiller score: warning: {args.input} {what}{where}", file=sys.stderr)
    return 0


def _placement(spec: str, amp: str, cache_dir: str):
    """(device slots, concrete amp) of `distiller score` (distiller.builders.teacher.devices,
    distiller.builders.teacher.precision)."""
    from .teacher.devices import device_kind, gpus_run_bf16, resolve_devices
    from .teacher.precision import cache_compute, resolve_amp

    devices = resolve_devices(spec)
    kinds = {device_kind(d) for d in devices}
    bf16 = gpus_run_bf16(devices) if kinds == {"cuda"} else True
    recorded = cache_compute(cache_dir) if os.path.isdir(cache_dir) else None
    return devices, resolve_amp(amp, recorded=recorded, kinds=sorted(kinds),
                                bf16_supported=bf16, cache=f"cache {cache_dir!r}")


def score_file(config, *, input_path: str, task, cache_dir: str, dtype: str = "float16",
               logits_topk: int = 0, dry_run: bool = False, chunk: int = 2048,
               limit: int = None, corpus: str = None, labelled: bool = True,
               devices=None) -> Dict[str, Any]:
    """Score every good row of an input into the cache; returns counts (the CLI prints them).

    task: a `taskdata.Task` (or a built-in name). Only keys the cache lacks are scored; each chunk
    is committed as it finishes. Also writes the corpus index TASK-SPLIT (originals: parent_id
    None, chain "original", copy 0) with the task recorded. A span task (question answering)
    is scored window by window: the corpus has a row per window and its question rows; the
    dry run counts windows. devices: several device names score with one teacher replica each
    (distiller.builders.teacher.multiscore); None runs on `config.device`.
    """
    from distiller.taskdata.records import DeadLetter
    from distiller.taskdata.reader import read_records
    from distiller.taskdata.resolve import resolve_task

    from .cache.store import TeacherCache
    from .cache.manifest import MANIFEST
    from .cache.planning import length_histogram, plan
    from .teacher.multiscore import load_replicas, score_on_devices
    from .cache.leftovers import remove_dead_temp_files
    from .teacher.model import make_teacher
    from .cache.vocab import record_vocabulary

    task = resolve_task(task)
    name = corpus or f"{task.name}-{os.path.splitext(os.path.basename(input_path))[0]}"
    if not dry_run:  # what the run writes, checked before the teacher scores anything
        from .cache.store import check_corpus_name

        try:
            check_corpus_name(name)
        except ValueError as exc:
            raise UsageError(f"{exc}: pass --corpus NAME") from None
        if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
            raise UsageError(f"--cache {cache_dir!r} is a file, not a cache directory")
    records, dead = [], []
    for rec in read_records(input_path, task, limit=limit, labelled=labelled):
        (dead if isinstance(rec, DeadLetter) else records).append(rec)
    teacher = make_teacher(config).load()
    spec = teacher.spec(dtype, logits_topk=logits_topk)
    summary: Dict[str, Any] = {"input": input_path, "records": len(records),
                               "dead_letters": len(dead), "fingerprint": spec.fingerprint,
                               "dead_letter_examples": [d.to_dict() for d in dead[:20]]}
    questions = None
    if task.is_span:   # one row per context window, and the question rows beside them
        from .teacher.qa_windows import question_row

        parts = teacher.window_records(records)
        questions = [question_row(r, wd) for r, (wd, _) in zip(records, parts)]
        summary.update(teacher.describe_windows([wd for wd, _ in parts]))
        records = [dict(w, parent_id=None, chain="original", copy=0)
                   for _, rows in parts for w in rows]
        keys = [r["key"] for r in records]
        toks = [(r["input_ids"], r["token_type_ids"], r["truncated"]) for r in records]
    else:
        keys = [teacher.cache_key(r["text_a"], r["text_b"]) for r in records]
        toks = teacher.tokenize(records) if dry_run else None
    if dry_run:
        hist = length_histogram(len(t[0]) for t in toks)
        where = cache_dir if os.path.isdir(cache_dir) else (os.path.dirname(
            os.path.abspath(cache_dir)) or ".")
        estimate = plan(spec, hist, where)
        summary.update({"dry_run": True, "truncated": int(sum(t[2] for t in toks)),
                        "estimate": estimate})
        if not estimate["fits"]:
            summary["warning"] = "the cache would be larger than the free disk"
        return summary
    cache = (TeacherCache.open(cache_dir, spec) if os.path.exists(os.path.join(cache_dir, MANIFEST))
             else TeacherCache.create(cache_dir, spec))
    record_vocabulary(cache, teacher.tokenizer)
    remove_dead_temp_files(cache.path)
    replicas = [teacher] + (load_replicas(config, devices[1:]) if devices else [])
    result = score_on_devices(replicas, cache, records, chunk=chunk)
    cache.write_corpus(name, [dict(r, key=k, parent_id=None, chain="original", copy=0)
                              for r, k in zip(records, keys)],
                       task=task.to_dict(), labelled=labelled, questions=questions)
    summary.update({"scored": result["scored"], "reused": result["reused"],
                    "duplicates": result["duplicates"],
                    "truncated": teacher.truncated_count, "corpus": name,
                    "cache": cache.path, "stats": cache.stats()})
    return summary
