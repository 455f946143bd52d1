"""`make gpu-check`: one prepared run for a lent GPU machine without network (docs/gpu.md).

Steps, each in its own process with its own time limit (e2e at most 0.3 of the budget, tests 0.6,
the benchmark what is left), all inside one overall budget:
  versions  python, torch, CUDA, transformers, pyarrow, the GPU's name        -> versions.json
  e2e       `distiller score` -> `train` -> `evaluate` on the SST-2 sample carried in
            benchmarks/gpu_sample, with a tiny teacher built here (no hub)      -> e2e.log
  tests     pytest tests/builders tests/distill_train tests/taskdata, CUDA visible (tests that
            need a package or the shared data this machine lacks skip with a reason)
                                                             -> junit.xml, pytest.log (--tb=long)
  bench     benchmarks/bench_gpu.py on a random BERT of MiniLM-L6's shape built here (or
            --bench-model DIR; without CUDA a narrow one and a short smoke run), sentences
            from the sample                                          -> bench.json, bench.log
The tests read the shared data from DISTILLER_DATA or ../shared/data, else from runs/gpu-data
(`make gpu-data` copies the part they read there, about 9 MB, to be carried with the tree).
Everything lands under --out (default $OUT, else runs/gpu-check); summary.json says what each
step did. Without CUDA the benchmark runs as a short CPU smoke run (said in its log). Exit status:
0 when every step passed or skipped, 1 otherwise.

--as-gpu-machine rehearses the lent machine on a developer's one: Beam, datasets, nltk, optuna
and dask are hidden from every step and the shared data directory points nowhere.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "benchmarks", "gpu_sample")
CARRIED_DATA = os.path.join(REPO, "runs", "gpu-data")   # `make gpu-data`, carried with the tree
WITHOUT_DIR = os.path.join(REPO, "benchmarks", "gpu_check", "without")
ABSENT_ON_GPU_MACHINE = "apache_beam,datasets,nltk,optuna,dask"
TEST_DIRS = ["tests/builders", "tests/distill_train", "tests/taskdata"]


def versions() -> dict:
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "cpus": os.cpu_count(), "platform": platform.platform()}
    for mod in ("transformers", "tokenizers", "pyarrow", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    if torch.cuda.is_available():
        out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        out["bf16_supported"] = torch.cuda.is_bf16_supported()
    return out


def build_models(work: str, bench: bool, cuda: bool) -> dict:
    """A tiny teacher for the end-to-end run and, with `bench`, a random BERT of MiniLM-L6's
    shape (6 layers, 384 wide, 12 heads; without CUDA 32 wide, 2 heads: the CPU smoke run only
    checks that the benchmark runs) for the benchmark: both with a WordPiece tokenizer trained
    on the sample, saved with save_pretrained."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from tests.tinymodels import tiny_bert_classifier, wordpiece_tokenizer

    with open(os.path.join(SAMPLE, "glue", "SST-2", "train.tsv"), encoding="utf-8") as fh:
        texts = [line.split("\t")[0] for line in fh.read().splitlines()[1:]]
    out = {"tiny": tiny_bert_classifier(os.path.join(work, "tiny-teacher"), texts[:2000])}
    if bench:
        fast = wordpiece_tokenizer(texts, 8000)
        torch.manual_seed(0)
        wide, heads = (384, 12) if cuda else (32, 2)
        config = BertConfig(vocab_size=len(fast), hidden_size=wide, num_hidden_layers=6,
                            num_attention_heads=heads, intermediate_size=4 * wide,
                            max_position_embeddings=512, num_labels=2)
        path = os.path.join(work, "minilm-shaped")
        BertForSequenceClassification(config).eval().save_pretrained(path)
        fast.save_pretrained(path)
        out["bench"] = path
    return out


def run_step(name: str, cmd, *, log: str, timeout: float, env: dict, cwd: str = REPO) -> dict:
    """Run `cmd`, its stdout and stderr into `log`; {"status", "seconds", "returncode"}."""
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        try:
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  timeout=max(1.0, timeout))
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = None
    status = "passed" if code == 0 else ("timed out" if code is None else "failed")
    result = {"status": status, "seconds": round(time.perf_counter() - start, 1),
              "returncode": code}
    print(f"gpu-check: {name}: {status} ({result['seconds']} s) -> {os.path.basename(log)}",
          flush=True)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT") or os.path.join(REPO, "runs",
                                                                          "gpu-check"))
    p.add_argument("--budget", type=float, default=450.0, help="seconds for all steps together")
    p.add_argument("--steps", default="versions,e2e,tests,bench")
    p.add_argument("--tests", nargs="*", default=TEST_DIRS, help="pytest paths")
    p.add_argument("--bench-model", help="a teacher directory for the benchmark (e.g. MiniLM)")
    p.add_argument("--data", help="the shared data for the tests (default: DISTILLER_DATA or "
                   "../shared/data, else runs/gpu-data when it was carried)")
    p.add_argument("--as-gpu-machine", action="store_true",
                   help=f"hide {ABSENT_ON_GPU_MACHINE} and the shared data (a rehearsal)")
    args = p.parse_args(argv)
    deadline = time.perf_counter() + args.budget
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    # models, caches and runs go to a scratch directory: only the reports come back from $OUT
    work = tempfile.mkdtemp(prefix="gpu-check-")
    steps = args.steps.split(",")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    sys.path.insert(0, REPO)
    from distiller.taskdata.paths import shared_data

    if args.data or (not os.path.isdir(shared_data()) and os.path.isdir(CARRIED_DATA)):
        env["DISTILLER_DATA"] = os.path.abspath(args.data or CARRIED_DATA)
    if args.as_gpu_machine:
        env["PYTHONPATH"] = WITHOUT_DIR + os.pathsep + env["PYTHONPATH"]
        env["DISTILLER_WITHOUT"] = ABSENT_ON_GPU_MACHINE
        env["DISTILLER_DATA"] = os.path.join(work, "no-shared-data")
    summary = {"out": out, "as_gpu_machine": args.as_gpu_machine, "steps": {},
               "shared_data": env.get("DISTILLER_DATA") or shared_data()}
    info = versions()
    summary["versions"] = info
    with open(os.path.join(out, "versions.json"), "w") as fh:
        json.dump(info, fh, indent=1)
    print(f"gpu-check: {json.dumps(info)}", flush=True)
    cuda = bool(info["cuda_available"])
    models = build_models(work, bench="bench" in steps and not args.bench_model, cuda=cuda)
    py = sys.executable

    def left(cap: float) -> float:
        return min(cap, deadline - time.perf_counter())

    if "e2e" in steps:
        summary["steps"]["e2e"] = e2e(py, models["tiny"], work, os.path.join(out, "e2e.log"),
                                      env, left(0.3 * args.budget))
    if "tests" in steps:
        summary["steps"]["tests"] = run_step(
            "tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
                      "--tb=long", f"--junitxml={os.path.join(out, 'junit.xml')}",
                      *args.tests], log=os.path.join(out, "pytest.log"), env=env,
            timeout=left(0.6 * args.budget))
    if "bench" in steps:
        model = args.bench_model or models["bench"]
        flags = (["--sentences", "4000", "--rounds", "2"] if cuda else
                 ["--device", "cpu", "--sentences", "256", "--rounds", "1", "--precisions",
                  "float32", "--max-tokens", "4096"])
        bench_env = dict(env, DISTILLER_DATA=SAMPLE)
        summary["steps"]["bench"] = run_step(
            "bench", [py, os.path.join(REPO, "benchmarks", "bench_gpu.py"), "--model", model,
                      "--out", os.path.join(out, "bench.json"), *flags],
            log=os.path.join(out, "bench.log"), env=bench_env, timeout=left(args.budget))
        summary["steps"]["bench"]["mode"] = ("cuda" if cuda else
                                             "cpu smoke run: no CUDA device here")
    shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    bad = [k for k, v in summary["steps"].items() if v["status"] != "passed"]
    print(f"gpu-check: {'all steps passed' if not bad else 'not passed: ' + ', '.join(bad)}; "
          f"results in {out}", flush=True)
    return 1 if bad else 0


def e2e(py: str, teacher: str, work: str, log: str, env: dict, timeout: float) -> dict:
    """`distiller score` (the sample's first 400 train rows and the dev set) -> `train` (one
    epoch, a 1-layer student cut from the teacher) -> `evaluate`; each through its real argv."""
    data = os.path.join(SAMPLE, "glue", "SST-2")
    cache = os.path.join(work, "e2e-cache")
    run_dir = os.path.join(work, "e2e-student")
    common = ["--teacher", teacher, "--cache", cache, "--task", "sst2", "--max-length", "64"]
    cmds = [["score", "--input", os.path.join(data, "train.tsv"), "--limit", "400",
             "--corpus", "sst2-train", *common],
            ["score", "--input", os.path.join(data, "dev.tsv"), "--corpus", "sst2-dev", *common],
            ["train", "--cache", cache, "--train-corpus", "sst2-train", "--dev-corpus",
             "sst2-dev", "--student", teacher, "--student-init", "truncate",
             "--student-num-layers", "1", "--epochs", "1", "--run-dir", run_dir,
             "--no-progress"],
            ["evaluate", "--model", os.path.join(run_dir, "best_model"), "--file",
             os.path.join(data, "dev.tsv"), "--task", "sst2"]]
    deadline = time.perf_counter() + timeout
    result = {"status": "passed", "seconds": 0.0, "returncode": 0}
    for cmd in cmds:
        r = run_step(f"e2e {cmd[0]}", [py, "-m", "distiller", "-v", *cmd], log=log, env=env,
                     timeout=deadline - time.perf_counter())
        result["seconds"] = round(result["seconds"] + r["seconds"], 1)
        if r["status"] != "passed":
            return dict(r, seconds=result["seconds"], failed_command=cmd[0])
    return result


if __name__ == "__main__":
    sys.exit(main())
