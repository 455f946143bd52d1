"""What killed writers leave in a cache: `cache verify` lists it (warnings, exit 0), `cache clean`
and the next build remove what nothing can use; the teacher's vocabulary is recorded; `score`
checks the corpus name before it scores and warns on an input without rows (issue 15)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from distiller.builders import TeacherCache
from distiller.cli import main

from .synthetic import damage_a_data_page, make_outputs, make_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _killed_writer(final: str) -> str:
    """Start a process that opens `final`'s temp file as the cache writers do, writes half a
    line and is SIGKILLed; returns the temp file it left."""
    code = ("import os, signal, sys\n"
            "from distiller.common.tempnames import temp_path\n"
            "tmp = temp_path(sys.argv[1])\n"
            "fh = open(tmp, 'w'); fh.write('{\"id\": \"half'); fh.flush()\n"
            "print(tmp, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, final], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc.stdout.strip()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_carry_their_writer():
    from distiller.common.tempnames import HOST, temp_owner, temp_path

    name = os.path.basename(temp_path("/c/corpora/sst2-train.jsonl"))
    assert name.startswith(".sst2-train.jsonl.tmp-")
    assert temp_owner(name) == (HOST, os.getpid())
    assert temp_owner(".x.jsonl.tmp-123-abcdef12") == (HOST, 123)   # earlier versions' names
    assert temp_owner("x.parquet.tmp-77") == (HOST, 77)
    assert temp_owner("shard-1.parquet") is None


def test_verify_lists_leftovers_and_clean_removes_what_nothing_can_use(tmp_path, capsys):
    from distiller.common.tempnames import temp_path

    cache = TeacherCache.create(str(tmp_path / "cache"), make_spec())
    cache.add(make_outputs(["a", "b"]))
    cache.write_corpus("t-train", [{"id": "1", "key": "a"}, {"id": "2", "key": "b"}])
    killed = _killed_writer(os.path.join(cache.path, "corpora", "t-train.jsonl"))
    dead = _dead_pid()
    old_style = os.path.join(cache.path, "shards", f".shard-x.parquet.tmp-{dead}-abcdef12")
    live = temp_path(os.path.join(cache.path, "manifest.json"))        # this process: alive
    remote = os.path.join(cache.path, "corpora", ".t.jsonl.tmp-otherhost9-1-abcdef12")
    for path in (old_style, live, remote):
        with open(path, "wb") as fh:
            fh.write(b"partial")
    sound = cache.write_shard(make_outputs(["c", "d"]))     # scored, never committed (disk full)
    bad = cache.write_shard(make_outputs(["e", "f"]))
    damage_a_data_page(cache.shard_path(bad.name))

    assert main(["cache", "verify", cache.path]) == 0          # warnings, not failures
    out = capsys.readouterr().out.splitlines()
    warnings = [line for line in out if line.startswith("warning: ")]
    assert out[-1] == "ok: 1 shard(s), 2 example(s) verified"
    assert len(warnings) == 6, out
    said = "\n".join(warnings)
    for path in (killed, old_style):
        assert f"{os.path.relpath(path, cache.path)} (" in said
    assert "is gone): `distiller cache clean` or the next build removes it" in said
    assert f"process {os.getpid()} still runs): left alone while its writer may run" in said
    assert "written on host otherhost9, not checked from here" in said
    assert f"uncommitted shard shards/{sound.name} (2 row(s), left by a build that did not " \
           "finish): the next build commits it" in said
    assert f"uncommitted shard shards/{bad.name} is unusable (damaged: it cannot be read): " \
           "`distiller cache clean` removes it" in said

    assert main(["cache", "clean", cache.path]) == 0
    out = capsys.readouterr().out
    assert "clean: 3 file(s) removed" in out, out
    assert "kept 1 uncommitted shard(s) holding 2 row(s), whole and sound: the next build " \
           "commits them" in out
    for path in (killed, old_style, cache.shard_path(bad.name)):
        assert not os.path.exists(path)
    for path in (live, remote, cache.shard_path(sound.name)):
        assert os.path.exists(path)
    assert main(["cache", "verify", cache.path]) == 0
    assert capsys.readouterr().out.count("warning: ") == 3
    os.unlink(live)


def test_score_records_the_vocabulary_cleans_up_and_checks_names_first(tmp_path, sst2_rows,
                                                                       tiny_teacher_dir, capsys):
    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{r['text_a']}\t{r['label']}\n"
                                                  for r in sst2_rows[:6]), encoding="utf-8")
    cache = str(tmp_path / "cache")
    base = ["score", "--input", str(data), "--task", "sst2", "--teacher", tiny_teacher_dir,
            "--cache", cache, "--max-length", "64", "--device", "cpu"]
    # a corpus name that cannot be written is refused before anything is scored or created
    assert main(base + ["--corpus", "my corpus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("distiller score: error: corpus name 'my corpus' must be") and \
        err.rstrip().endswith("pass --corpus NAME") and err.count("\n") == 1
    assert not os.path.exists(cache)

    assert main(base) == 0
    capsys.readouterr()
    from transformers import AutoTokenizer

    from distiller.builders.cache.vocab import cache_vocabulary, tokenizer_tokens

    manifest = json.load(open(os.path.join(cache, "manifest.json")))
    assert manifest["vocab"]["size"] == len(AutoTokenizer.from_pretrained(tiny_teacher_dir))
    tokens, source = cache_vocabulary(cache)
    assert tokens == tokenizer_tokens(AutoTokenizer.from_pretrained(tiny_teacher_dir))
    assert source.endswith("vocab.json")

    # a killed writer's temp file is gone after the next scoring run; the run warns that the
    # header-only input gave an empty corpus
    left = _killed_writer(os.path.join(cache, "corpora", "sst2-dev.jsonl"))
    empty = tmp_path / "empty.tsv"
    empty.write_text("sentence\tlabel\n", encoding="utf-8")
    assert main(base[:2] + [str(empty)] + base[3:]) == 0
    err = capsys.readouterr().err
    assert not os.path.exists(left)
    assert err == f"distiller score: warning: {empty} holds no rows (is it the right file?): " \
                  "corpus sst2-empty is empty\n"
    assert main(["cache", "verify", cache]) == 0
    assert "warning" not in capsys.readouterr().out
    with open(os.path.join(cache, "vocab.json"), "r+b") as fh:   # the vocabulary is checked too
        fh.seek(20)
        fh.write(b"#")
    assert main(["cache", "verify", cache]) == 1
    assert "BAD vocabulary: vocab.json checksum mismatch (content altered)" in \
        capsys.readouterr().out
