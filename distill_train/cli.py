"""`distiller train`, `distiller evaluate`, `distiller finetune`.

Options are parsed here once into a TrainConfig (a YAML file via --config, then the flags, then
any --set key=value, later winning); torch and transformers are imported only when a command runs.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict

from distiller.common.errors import UsageError
from distiller.taskdata.resolve import add_task_arguments

from .choices import OPTIONS, cli_arguments

__all__ = ["add_parsers"]

# flag -> config key and type, for the common knobs (every key is reachable through --set
# key=value) ...
_TRAIN_FLAGS = {
    "--run-dir": ("run_dir", str), "--epochs": ("epochs", int), "--batch-size": ("batch_size", int),
    "--seed": ("seed", int), "--device": ("device", str), "--max-steps": ("max_steps", int),
    "--student-num-layers": ("student_num_layers", int),
    "--max-length": ("max_length", int), "--limit-train": ("limit_train", int),
    # question answering (span tasks): windows (finetune) and decoding (dev evaluation)
    "--doc-stride": ("doc_stride", int), "--max-query-length": ("max_query_length", int),
    "--n-best": ("n_best", int), "--max-answer-length": ("max_answer_length", int),
    "--null-threshold": ("null_threshold", float),
}
# ... and every setting of the choices table (choices.py), with its choices, range and help; but
# mode (the subcommand sets it) and max_grad_norm (--set max_grad_norm=null turns clipping off)
_TABLE_FLAGS = {"--" + key.replace("_", "-"): key for key in OPTIONS
                if key not in ("mode", "max_grad_norm")}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of TrainConfig keys (flags override it)")
    for flag, (key, typ) in _TRAIN_FLAGS.items():
        p.add_argument(flag, dest=key, type=typ, default=None, help=f"config key {key}")
    for flag, key in _TABLE_FLAGS.items():
        p.add_argument(flag, **cli_arguments(key))
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config key (value parsed as YAML); repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write TensorBoard scalars to RUN_DIR/tb")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel processes on this machine (torch.distributed, started "
                   "by PyTorch's elastic launcher as torchrun would; one per GPU, or CPU "
                   "processes with gloo): --batch-size is per process, the global batch N times "
                   "it; rank 0 writes the run directory")


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser("train", help="distill a student from a teacher cache",
                              description="Train a student from a teacher cache (the teacher "
                              "never runs).")
    p.add_argument("--cache", help="teacher cache directory")
    p.add_argument("--train-corpus", dest="train_corpus", help="training corpus name in the cache")
    p.add_argument("--dev-corpus", dest="dev_corpus", action="append",
                   help="dev corpus name in the cache; repeat for several (the first selects "
                   "the best epoch, all are reported)")
    p.add_argument("--student", help="HF model name/path (student, teacher to truncate, or base "
                   "config)")
    p.add_argument("--task", help="optional: the task is read from the cache (the build recorded "
                   "it); a name or task file given here must agree with it")
    p.add_argument("--verify", action="store_true",
                   help="before the first step, check in full (sha256, schema, spec) every shard "
                   "the run reads; `distiller cache verify` checks the whole cache")
    _add_common(p)
    p.set_defaults(func=_run_train, mode="distill")

    p = subparsers.add_parser("finetune", help="fine-tune a model on gold labels (raw text)",
                              description="Plain fine-tuning on gold labels over a TSV/CSV/JSONL "
                              "file: makes the teacher and the no-KD baseline; the best model "
                              "is saved with save_pretrained in OUT/best_model.")
    p.add_argument("--train", dest="train_file", required=True,
                   help="training input: file, glob, saved dataset or hf:NAME[:CONFIG][@SPLIT]")
    p.add_argument("--dev", dest="dev_file", action="append",
                   help="dev input (metrics each epoch); repeat for several (MNLI: matched, "
                   "mismatched), the first selects the best epoch")
    p.add_argument("--model", dest="student", required=True, help="HF model name or path")
    p.add_argument("--out", dest="out", required=True, help="output run directory")
    _add_common(p)
    add_task_arguments(p)
    p.set_defaults(func=_run_finetune, mode="finetune")

    p = subparsers.add_parser("evaluate", help="evaluate a saved model on a dev set",
                              description="Every metric of the task for a saved model on a "
                              "cache corpus (--cache/--corpus) or any input (--file). The task "
                              "comes from the corpus, else from the model (saved beside it by "
                              "finetune/train), else from the task flags. A masked or causal "
                              "LM (its saved architecture says which) is scored by top-1 "
                              "accuracy and perplexity at the masked tokens (masked LM) or at "
                              "every next token (causal LM).")
    p.add_argument("--model", required=True, help="saved model directory (e.g. RUN/best_model)")
    p.add_argument("--cache", help="teacher cache directory")
    p.add_argument("--corpus", help="corpus name in the cache")
    p.add_argument("--file", help="any input (file, glob, hf:NAME) instead of a cache corpus")
    p.add_argument("--predictions", help="also write one JSON line per example: id, predicted "
                   "label (by name), gold label; question answering: the official SQuAD "
                   "prediction file {id: answer} (and, for SQuAD 2.0, PREFIX.null_odds.json "
                   "for evaluate-v2.0.py --na-prob-file)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-length", type=int, default=128,
                   help="tokens per input for --file (question answering: per window)")
    q = p.add_argument_group("question answering")
    q.add_argument("--doc-stride", type=int, default=128,
                   help="--file: context tokens between the starts of consecutive windows")
    q.add_argument("--max-query-length", type=int, default=64, help="--file: question tokens")
    q.add_argument("--n-best", type=int, default=20, help="start/end candidates per window")
    q.add_argument("--max-answer-length", type=int, default=30, help="tokens per answer")
    q.add_argument("--null-threshold", type=float, default=None,
                   help="SQuAD 2.0: answer nothing when null score - best span score exceeds "
                   "it (default: the best threshold on these questions, as the official "
                   "script's best_f1_thresh)")
    lm = p.add_argument_group("language models (masked or causal LM students)")
    lm.add_argument("--mask-prob", type=float, default=0.15,
                    help="--file, masked LM: the share of (non-special) tokens masked")
    lm.add_argument("--mask-seed", type=int, default=0,
                    help="--file, masked LM: the masking seed (each text's positions are drawn "
                    "from it and the text's id)")
    p.add_argument("--device", default="auto")
    add_task_arguments(p)
    p.set_defaults(func=_run_evaluate)


def _config_from_args(args, keys) -> Any:
    from distiller.taskdata.yamlfile import load_yaml_file, load_yaml_text

    from .config import TrainConfig

    data: Dict[str, Any] = {}
    if args.config:
        data = load_yaml_file(args.config, "--config") or {}
        if not isinstance(data, dict):
            raise UsageError(f"--config {args.config!r} must hold a mapping of config keys")
    overrides = {k: getattr(args, k, None) for k in keys}
    overrides.update({k: getattr(args, k) for k, _ in _TRAIN_FLAGS.values()})
    overrides.update({k: getattr(args, k) for k in _TABLE_FLAGS.values()})
    if args.no_progress:
        overrides["progress"] = False
    for item in args.sets:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = load_yaml_text(value, f"--set {item!r}: the value")
    # a task file is read here, where the command's other files are, not by validation
    return TrainConfig.from_dict(data, **overrides).read_task_file()


def _run_train(args) -> int:
    config = _config_from_args(args, ["task", "cache", "train_corpus", "dev_corpus", "student",
                                      "tensorboard", "mode"])
    _say_if_resuming(config, "train")
    if args.verify:
        _verify_run_shards(config)
    return _train_and_print(config, args)


def _train_and_print(config, args) -> int:
    """Train in this process (or as one rank of torchrun's job), or launch --nproc ranks; the
    result is printed once (by rank 0)."""
    from .distributed import rank_from_env
    from .launcher import launch
    from .train import train

    if args.nproc > 1:
        result = launch(config, args.nproc, verbosity=getattr(args, "verbose", 0))
    elif args.nproc == 1:
        result = train(config).to_dict()
    else:
        raise UsageError(f"--nproc must be >= 1, got {args.nproc}")
    if rank_from_env() == 0:
        _report(result, args.command)
    return 0


def _report(result, command: str) -> None:
    """The result (TrainResult.to_dict()) as JSON on stdout, for scripts; one line a reader wants
    on stderr."""
    print(json.dumps(result, indent=2))
    name, best = result.get("metric_name"), result.get("best_dev") or {}
    others = ", ".join(f"{k} {v:.2f}" for k, v in best.items()
                       if k != name and isinstance(v, (int, float)))
    if result.get("best_epoch") is None or result.get("best_metric") is None:
        line = "no dev set: the last epoch's model is kept"
    else:
        line = (f"best dev {name} {result['best_metric']:.2f}"
                + (f" ({others})" if others else "")
                + f" at epoch {result['best_epoch'] + 1} of {len(result.get('history') or [])}")
    print(f"distiller {command}: {line}; {result.get('wall_time_s', 0):.0f} s; model in "
          f"{result.get('run_dir')}/best_model", file=sys.stderr)


def _verify_run_shards(config) -> None:
    """--verify: the shards the run's corpora read, checked in full; one line either way."""
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.cache.errors import CorruptShardError

    cache = TeacherCache.open(config.cache)
    names = [n for n in (config.train_corpus, config.dev_corpus) if n]
    problems, shards, rows = cache.verify_corpora(names)
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise CorruptShardError(f"--verify: {len(problems)} of the shards the run reads are "
                                f"damaged: {'; '.join(problems[:3])}{more} (`distiller cache "
                                f"verify {config.cache}` lists every problem; restore the cache "
                                "from a copy or build a new one)")
    print(f"distiller train: verified {shards} shard(s), {rows} row(s) the run reads",
          file=sys.stderr)


def _say_if_resuming(config, command: str) -> None:
    """One stderr line when the run directory holds a checkpoint this run will continue from."""
    import os

    ckpt = os.path.join(config.run_dir, "checkpoint.pt")
    if config.resume and os.path.exists(ckpt):
        print(f"distiller {command}: resuming from {ckpt} (same config required; "
              "--set resume=false starts over)", file=sys.stderr)


def _run_finetune(args) -> int:
    from distiller.taskdata.resolve import task_from_args

    args.run_dir = args.run_dir or args.out
    task, notes = task_from_args(args, data=args.train_file, required=not args.config)
    for note in notes:
        print(f"distiller finetune: {note}", file=sys.stderr)
    args.task = task.to_dict() if task is not None else None  # else: the --config file's
    config = _config_from_args(args, ["task", "train_file", "dev_file", "student",
                                      "tensorboard", "mode"])
    _say_if_resuming(config, "finetune")
    return _train_and_print(config, args)


def _run_evaluate(args) -> int:
    from distiller.taskdata.resolve import task_from_args

    from .evaluate import evaluate_saved
    from .lm_student import lm_problem_of_model

    problem = lm_problem_of_model(args.model)
    if problem is not None:
        return _run_evaluate_lm(args, problem)
    if bool(args.file) == bool(args.cache and args.corpus):
        raise UsageError("evaluate needs either --cache DIR --corpus NAME or --file PATH")
    task, _ = task_from_args(args, required=False)
    span = dict(doc_stride=args.doc_stride, max_query_length=args.max_query_length,
                n_best=args.n_best, max_answer_length=args.max_answer_length,
                null_threshold=args.null_threshold)
    metrics = evaluate_saved(args.model, task, cache=args.cache, corpus=args.corpus,
                             file=args.file, batch_size=args.batch_size,
                             max_length=args.max_length, device=args.device,
                             predictions=args.predictions, span_options=span)
    return _print_json(metrics)


def _run_evaluate_lm(args, problem: str) -> int:
    """evaluate for a masked / causal LM: top-1 and perplexity (lm_eval.evaluate_lm); texts of
    --file are one per line, or the columns the task flags name."""
    from distiller.taskdata.resolve import task_from_args

    from .lm_eval import evaluate_lm

    if args.predictions:
        raise UsageError("--predictions is for classification and question answering; an LM "
                         "student's evaluation reports its metrics only")
    base = None
    if args.file and (args.task or args.task_file or args.text_a is not None):
        base, _ = task_from_args(args, required=False)
    metrics = evaluate_lm(args.model, problem, cache=args.cache, corpus=args.corpus,
                          file=args.file, task=base, batch_size=args.batch_size,
                          max_length=args.max_length, mask_prob=args.mask_prob,
                          seed=args.mask_seed, device=args.device)
    return _print_json(metrics)


def _print_json(metrics) -> int:
    from .runlog import json_safe

    json.dump(json_safe(metrics), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
    return 0
