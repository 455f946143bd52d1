"""`distiller build` on bad input (issue 15): every name and path is checked before any work;
a failed build says one line (the workers' tracebacks go to a log it names); a build is quiet
(no Beam WARN lines, no LOAD REPORT tables); an input without rows is said; the summary counts
the rows another build committed first."""
import errno
import os
import subprocess
import sys

import pytest

from distiller.builders.cache.store import TeacherCache
from distiller.cli import main
from .pipeline_testlib import glue_path, head_tsv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("case", ["split", "dead_letters_dir", "cache_under_file", "input_dir",
                                  "input_format", "augment_yaml"])
def test_names_and_paths_are_checked_before_any_work(case, tmp_path, tiny_teacher, capsys):
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 5)
    cache = str(tmp_path / "cache")
    args = {"--input": data, "--cache": cache, "--split": "train"}
    expected = {
        "split": "corpus name 'sst2-a/b' must be 1-200 characters of letters, digits and . _ + = "
                 "- (not starting with punctuation): it is made from --task, --split and the "
                 "policy name; choose another --split or --task",
        "dead_letters_dir": f"the dead-letter file '{tmp_path}' is a directory: pass "
                            "--dead-letters FILE.jsonl",
        "cache_under_file": f"--cache '{data}/cache' cannot be created: '{data}' is a file, not "
                            "a directory; choose another path",
        "input_dir": f"input '{tmp_path}' is a directory: give a file, a glob such as "
                     f"{tmp_path}/*.tsv, or a dataset saved with save_to_disk",
        "input_format": f"cannot tell the format of '{tmp_path}/train.xml' from its extension: "
                        "use .tsv, .csv, .jsonl, .parquet or .txt (or give the format: "
                        "--format)",
        "augment_yaml": f"policy file '{tmp_path}/policy.yaml' is not valid YAML at line 2, "
                        "column 6: expected ',' or ']', but got ':'",
    }[case]
    if case == "split":
        args["--split"] = "a/b"
    elif case == "dead_letters_dir":
        args["--dead-letters"] = str(tmp_path)
    elif case == "cache_under_file":
        args["--cache"] = f"{data}/cache"
    elif case == "input_dir":
        args["--input"] = str(tmp_path)
    elif case == "augment_yaml":
        (tmp_path / "policy.yaml").write_text("steps: [eda_swap:0.1\n  - x: [\n")
        args["--augment"] = str(tmp_path / "policy.yaml")
    else:
        os.replace(data, tmp_path / "train.xml")
        args["--input"] = str(tmp_path / "train.xml")
    argv = ["build", "--task", "sst2", "--teacher", tiny_teacher, "--max-length", "64",
            "--no-progress", *[x for kv in args.items() for x in kv]]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"distiller build: error: {expected}\n"
    assert not os.path.exists(cache)   # nothing scored, nothing created


def test_summary_counts_the_rows_another_build_committed_first(tmp_path):
    from distiller.builders.cache.corpusparts import staging_dir, write_part
    from distiller.pipelines.build_cli import format_summary
    from distiller.pipelines.finalize import finalize_build
    from distiller.pipelines.parts import row_entry
    from tests.builders.synthetic import make_outputs, make_spec

    cache = TeacherCache.create(str(tmp_path / "cache"), make_spec())
    known = [info.name for info in cache.shards()]   # the build starts: nothing committed
    mine = cache.write_shard(make_outputs(["a", "b", "c", "d"]))  # this build scored 4 keys ...
    cache.add(make_outputs(["b", "c"]))              # ... while another build committed 2 of them
    staging = staging_dir(cache.path)
    lines = [row_entry({"id": f"f:{k}", "key": k, "label": 1, "truncated": False})[0]
             for k in "dcba"]
    parts = [dict(write_part(staging, "rows", lines[:2]), counts={"originals": 2}),
             dict(write_part(staging, "rows", lines[2:]), counts={"originals": 2})]
    items = [("shard", mine), ("keys", ("rows", (4, 0)))] + [("part", p) for p in parts]
    summary = finalize_build((None, items), cache_path=cache.path, corpus_names=["t-train"],
                             dead_letter_path=str(tmp_path / "dead.jsonl"),
                             summary_path=str(tmp_path / "summary.json"), staging_dir=staging,
                             known_shards=known)
    assert summary["newly_scored"] == 4 and summary["committed_rows"] == 2
    assert summary["committed_by_other"] == 2
    assert sorted(TeacherCache.open(cache.path).keys()) == ["a", "b", "c", "d"]
    # the corpus merged from two parts: sorted by id, as write_corpus writes it
    assert [r["id"] for r in TeacherCache.open(cache.path).read_corpus("t-train")] == [
        "f:a", "f:b", "f:c", "f:d"]
    assert TeacherCache.open(cache.path).verify() == [] and not os.path.exists(staging)
    text = format_summary(dict(summary, seconds=1.0, runner="direct", workers=2,
                               cache=cache.path))
    assert "  newly scored      4  (1 shards)  (of them 2 already committed by another build " \
           "running at the same time: stored once)" in text.splitlines()
    assert f"  flags             distiller cache corpora {cache.path}  (prints the " \
           "--train-corpus/--dev-corpus flags of every corpus)" in text.splitlines()


def test_error_lines_name_cause_path_and_fix():
    from distiller.pipelines.buildcheck import failure_message
    from distiller.taskdata.console import error_message

    full = OSError(errno.ENOSPC, "No space left on device")
    full.filename = "/data/cache/manifest.json"
    assert error_message(full) == ("No space left on device: /data/cache/manifest.json (free "
                                   "disk space there and run the same command again)")
    assert error_message(KeyError("cache 'c' has no corpus 'x'")) == "cache 'c' has no corpus 'x'"
    worker = RuntimeError(  # what pyarrow's full-disk error looks like once Beam wrapped it
        "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
        "RuntimeError: OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No "
        "space left on device [while running 'build_distill_set/score/score']\n")
    assert failure_message(worker, cache="/c", log_path="/tmp/w.log") == (
        "the build failed: OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] "
        "No space left on device (free disk space where /c is and run the same command again: "
        "shards already written are committed by the next build, not scored again); the "
        "workers' log is /tmp/w.log (-v prints it as the build runs)")


def _bare_encoder(directory, teacher_dir):
    """The tiny teacher's encoder without its classifier head: loading it for classification
    makes transformers print a LOAD REPORT (in every worker process too)."""
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(teacher_dir).save_pretrained(directory)
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(directory)
    return str(directory)


def _cli(*argv):
    env = dict(os.environ, PYTHONPATH=REPO, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for name in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS", "GRPC_VERBOSITY"):
        env.pop(name, None)  # what a user's shell has: the command must quiet them itself
    return subprocess.run([sys.executable, "-m", "distiller", *argv], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


@pytest.mark.slow
def test_builds_are_quiet_and_a_failed_build_says_one_line(tmp_path, tiny_teacher):
    bare = _bare_encoder(tmp_path / "bare", tiny_teacher)
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 12)
    cache = str(tmp_path / "cache")
    common = ["--task", "sst2", "--teacher", bare, "--cache", cache, "--max-length", "64",
              "--no-progress"]
    done = _cli("build", "--input", data, *common, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("distiller build: done\n")
    # only our own warning, once (from this process, not from each worker)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "weight(s) not in the checkpoint were initialised" in lines[0], \
        done.stderr

    empty = tmp_path / "empty.tsv"
    empty.write_text("sentence\tlabel\n", encoding="utf-8")
    done = _cli("build", "--input", str(empty), "--split", "empty", *common, "--workers", "1")
    assert done.returncode == 0 and "  records read      0\n" in done.stdout
    assert done.stderr.splitlines()[-1] == (f"distiller build: warning: {empty} holds no rows: "
                                            "sst2-empty is empty (is it the right file?)")
    assert len(done.stderr.splitlines()) == 2, done.stderr

    shard = TeacherCache.open(cache).shards()[0]     # a damaged cache: its keys cannot be read
    with open(TeacherCache.open(cache).shard_path(shard.name), "r+b") as fh:
        fh.truncate(shard.bytes // 2)
    failed = _cli("build", "--input", data, "--split", "again", *common, "--workers", "1")
    assert failed.returncode == 1 and failed.stdout == ""
    line = failed.stderr.splitlines()[-1]
    assert len(failed.stderr.splitlines()) == 2, failed.stderr
    assert line.startswith(f"distiller build: error: the build failed: CorruptShardError: shard "
                           f"'{shard.name}' is truncated")
    assert f"run `distiller cache verify {cache}`; the workers' log is " in line
    log = line.split("the workers' log is ")[1].split(" ")[0]
    with open(log, encoding="utf-8") as fh:
        assert "Traceback" in fh.read()    # the tracebacks are kept there, not printed
    os.unlink(log)
