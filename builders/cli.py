"""`distiller cache info|corpora|stats|verify|clean|merge` and `distiller score` (local scoring,
no Beam: distiller.builders.teacher.score_file, re-exported here).

No heavy library at import time: torch/transformers/pyarrow load inside the command functions.
"""
from __future__ import annotations

import json
import os
import sys

from distiller.taskdata.resolve import add_task_arguments

from .teacher.score_file import score_config, score_file

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
                   "drawn from the teacher; a suffix :packed (bit-packed ids, 8-bit "
                   "log-probabilities) and/or :zstd (compressed shards) stores it in fewer bytes "
                   "(docs/cache.md, 'Token-level caches')")
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

    task, notes = task_from_args(args, data=None if args.unlabelled else args.input)
    for note in notes:
        print(f"distiller score: {note}", file=sys.stderr)
    task, num_labels = fit_teacher_to_task(args.teacher, task)

    # the devices' slots, and the precision the cache records (or a clear error)
    devices, amp = _placement(args.devices, args.amp, args.cache)
    config = score_config(task, model=args.teacher, layers=args.layers, tokens=args.tokens or "",
                          mask_prob=args.mask_prob, mask_seed=args.mask_seed,
                          max_length=args.max_length, pooling=args.pooling,
                          attentions=args.attentions,
                          max_tokens_per_batch=args.max_tokens_per_batch, device=devices[0],
                          amp=amp, num_labels=num_labels, backend=args.backend,
                          doc_stride=args.doc_stride, max_query_length=args.max_query_length)
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
