"""Wrong pairings and bad input for `distiller train|evaluate` fail before the first step, with
one line naming the thing and what to do (issue 15): a student whose vocabulary differs from the
cache's, config values of the wrong type, malformed YAML, an empty dev corpus, a missing corpus,
damaged shards under --verify; and result.json is valid JSON without a dev set."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from distiller.cli import main

from .conftest import build_cache, make_bert

BASE = ["--task", "sst2", "--train-corpus", "sst2-train", "--epochs", "1", "--batch-size", "8",
        "--no-progress"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


def _tokenizer_dir(path, source, tokens):
    """The fast tokenizer of directory `source` with its WordPiece vocabulary replaced by
    `tokens` (id i is tokens[i]), saved to `path`."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(source):
        if name.startswith("tokenizer") or name.startswith("special_tokens"):
            shutil.copy(os.path.join(source, name), path)
    with open(os.path.join(path, "tokenizer.json"), encoding="utf-8") as fh:
        data = json.load(fh)
    data["model"]["vocab"] = {t: i for i, t in enumerate(tokens)}
    with open(os.path.join(path, "tokenizer.json"), "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return str(path)


def _tokens(tokenizer_dir):
    """The token of each id of a saved tokenizer."""
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(tokenizer_dir).get_vocab()
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


@pytest.fixture(scope="module")
def students(tmp_path_factory, tokenizer_dir, cache_f32):
    """Students that cannot read the cache's ids: `swapped` has the teacher's 600 tokens with
    ids 100 and 101 exchanged (same size); `smaller` has the teacher's first n tokens, n one
    more than the largest id of the first training row (the old check's blind spot)."""
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.cache.reader import CacheReader

    root = tmp_path_factory.mktemp("students")
    tokens = _tokens(tokenizer_dir)
    swapped = list(tokens)
    swapped[100], swapped[101] = swapped[101], swapped[100]
    rows = TeacherCache.open(cache_f32).read_corpus("sst2-train")
    reader = CacheReader(cache_f32, layers=[])
    first = int(max(reader.get(rows[0]["key"])["input_ids"]))
    assert any(int(max(reader.get(r["key"])["input_ids"])) > first for r in rows)
    out = {}
    for name, toks in (("swapped", swapped), ("smaller", tokens[:first + 1])):
        tok = _tokenizer_dir(root / f"{name}-tok", tokenizer_dir, toks)
        out[name] = make_bert(str(root / name), tok, layers=2)
    out["first_max_id"] = first
    return out


@pytest.fixture(scope="module")
def caches(tmp_path_factory, teacher_dir, sst2_small, cache_f32):
    """The same teacher outputs three ways, made on demand: "recorded" (vocabulary recorded at
    build time), "old" (a cache without it: vocabulary from the teacher's tokenizer at
    spec.model) and "gone" (an old cache whose teacher directory is gone: vocabulary unknown)."""
    root = tmp_path_factory.mktemp("caches")

    def make(kind):
        if kind == "old":
            return cache_f32
        if kind == "recorded":
            from transformers import AutoTokenizer

            from distiller.builders.cache.store import TeacherCache
            from distiller.builders.cache.vocab import record_vocabulary

            recorded = shutil.copytree(cache_f32, root / "recorded")
            assert record_vocabulary(TeacherCache.open(str(recorded)),
                                     AutoTokenizer.from_pretrained(teacher_dir))
            return str(recorded)
        gone_teacher = shutil.copytree(teacher_dir, root / "teacher-copy")
        gone = build_cache(root / "gone", str(gone_teacher), *sst2_small)
        shutil.rmtree(gone_teacher)
        return gone

    made = {}

    def get(kind):
        if kind not in made:
            made[kind] = make(kind)
        return made[kind]
    return get


@pytest.mark.parametrize("kind", ["recorded", "old"])
def test_a_student_with_another_vocabulary_is_refused_before_training(
        kind, tmp_path, caches, students, teacher_dir, capsys):
    cache = caches(kind)
    source = "vocab.json" if kind == "recorded" else f"the tokenizer of the cache's teacher " \
                                                      f"{teacher_dir}"
    code, _, err = run(capsys, "train", "--cache", cache, "--student", students["swapped"],
                       "--run-dir", str(tmp_path / "swapped"), *BASE)
    line = one_line(err)
    assert code == 2 and line.startswith(
        f"distiller train: error: the tokenizer of {students['swapped']} is not the one the "
        "cache was tokenised with (")
    assert source in line
    assert "): 2 of the ids both have differ (600 tokens each); id 100 is " in line and \
        "id 101 is " in line
    assert line.endswith("use a student with the teacher's tokenizer (--student-init truncate of "
                         "the teacher, or a model sharing its vocabulary)")
    assert not os.path.exists(tmp_path / "swapped" / "checkpoint.pt")

    code, _, err = run(capsys, "train", "--cache", cache, "--student", students["smaller"],
                       "--run-dir", str(tmp_path / "smaller"), *BASE)
    n = students["first_max_id"] + 1
    assert code == 2 and f"): it has {n} tokens, the cache's 600 (the first {n} agree): use a " \
                         "student with the teacher's tokenizer" in one_line(err)

    # the teacher cut down passes by construction (it carries the teacher's tokenizer)
    code, out, err = run(capsys, "train", "--cache", cache, "--student", teacher_dir,
                         "--student-init", "truncate", "--student-num-layers", "1",
                         "--limit-train", "8", "--run-dir", str(tmp_path / "cut"), *BASE)
    assert code == 0, err
    assert json.loads(out)["best_epoch"] == 0


def test_unknown_vocabulary_checks_the_ids_of_every_batch(tmp_path, caches, students, capsys):
    cache = caches("gone")
    capsys.readouterr()   # what building the cache printed (its teacher's load) is not the run's
    code, _, err = run(capsys, "train", "--cache", cache, "--student",
                       students["smaller"], "--run-dir", str(tmp_path / "r"), *BASE)
    line = one_line(err)
    assert code == 2 and line.startswith("distiller train: error: cache row ") and \
        f"but the student embeds only {students['first_max_id'] + 1} ids" in line
    assert "IndexError" not in line


def test_evaluate_refuses_a_model_with_another_vocabulary(caches, students, capsys):
    cache = caches("recorded")
    capsys.readouterr()
    code, _, err = run(capsys, "evaluate", "--model", students["swapped"], "--task", "sst2",
                       "--cache", cache, "--corpus", "sst2-dev")
    assert code == 2 and "2 of the ids both have differ" in one_line(err)


@pytest.mark.parametrize("setting,message", [
    ("lr=abc", "config key 'lr': got 'abc'; expected a number in (0, 1]"),
    ("temperature=[1,2]", "config key 'temperature': got [1, 2]; expected a positive number"),
    ("w_kd=.nan", "config key 'w_kd': got nan; expected a number >= 0"),
    ("max_grad_norm={a: 1}", "config key 'max_grad_norm': got {'a': 1}; expected a positive "
                             "number or null"),
    ("seed=abc", "config key 'seed': got 'abc'; expected an integer"),
    ("resume=maybe", "config key 'resume': got 'maybe'; expected true or false"),
    ("run_dir=5", "config key 'run_dir': got 5; expected a path"),
    ("student_layers=[a]", "config key 'student_layers': got ['a']; expected a list of integers "
                           "or null"),
    ("lr=[1,", "--set 'lr=[1,': the value is not valid YAML at line 1, column 4: expected the "
               "node content, but found '<stream end>'"),
])
def test_values_of_the_wrong_type_are_one_line(setting, message, capsys):
    code, _, err = run(capsys, "train", "--cache", "c", "--student", "s", *BASE, "--set",
                       setting)
    assert code == 2 and one_line(err) == f"distiller train: error: {message}"


def test_malformed_yaml_config_is_one_line_and_numeric_strings_are_numbers(tmp_path, capsys):
    from distiller.distill_train.config import TrainConfig

    bad = tmp_path / "kd.yaml"
    bad.write_text("task: sst2\ntemperature: [1, 2\nlr: 1e-4\n")
    code, _, err = run(capsys, "train", "--config", str(bad), "--cache", "c", "--student", "s",
                       "--train-corpus", "t")
    assert code == 2 and one_line(err) == (
        f"distiller train: error: --config '{bad}' is not valid YAML at line 3, column 3: "
        "expected ',' or ']', but got ':'")
    # PyYAML reads 1e-4 as a string: a float key takes it as the number it spells
    cfg = TrainConfig(task="sst2", cache="c", train_corpus="t", student="s", lr="1e-4")
    assert cfg.lr == 1e-4 and isinstance(cfg.lr, float)


def test_empty_dev_corpus_is_refused_and_no_dev_set_writes_valid_json(tmp_path, cache_f32,
                                                                      teacher_dir, capsys):
    from distiller.builders.cache.store import TeacherCache

    cache = str(shutil.copytree(cache_f32, tmp_path / "cache"))
    TeacherCache.open(cache).write_corpus("sst2-nothing", [])
    common = ["train", "--cache", cache, "--student", teacher_dir, "--student-init", "truncate",
              "--student-num-layers", "1", "--limit-train", "8", *BASE]
    code, _, err = run(capsys, *common, "--dev-corpus", "sst2-nothing",
                       "--run-dir", str(tmp_path / "a"))
    assert code == 2 and one_line(err) == (
        f"distiller train: error: dev corpus 'sst2-nothing' of cache '{cache}' is empty: build "
        "it from a file that has rows, or leave out --dev-corpus")

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))

    code, out, _ = run(capsys, *common, "--run-dir", str(tmp_path / "b"))
    assert code == 0 and strict(out)["best_metric"] is None
    assert strict((tmp_path / "b" / "result.json").read_text())["best_metric"] is None
    for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines():
        strict(line)


def test_a_missing_corpus_is_named_without_quotes(cache_f32, teacher_dir, tmp_path, capsys):
    code, _, err = run(capsys, "train", "--cache", cache_f32, "--student", teacher_dir,
                       "--run-dir", str(tmp_path / "r"), "--task", "sst2",
                       "--train-corpus", "sst2-nope", "--no-progress")
    assert code == 2 and one_line(err) == (
        f"distiller train: error: cache '{cache_f32}' has no corpus 'sst2-nope'; it has "
        "['sst2-dev', 'sst2-train']")


def test_train_verify_checks_the_shards_it_reads_in_full(tmp_path, cache_f32, teacher_dir,
                                                         capsys):
    from distiller.builders.cache.store import TeacherCache

    cache = str(shutil.copytree(cache_f32, tmp_path / "cache"))
    common = ["train", "--cache", cache, "--student", teacher_dir, "--student-init", "truncate",
              "--student-num-layers", "1", "--limit-train", "8", "--verify", *BASE]
    code, _, err = run(capsys, *common, "--run-dir", str(tmp_path / "ok"))
    shards = TeacherCache.open(cache).shards()
    lines = err.splitlines()
    assert code == 0 and lines[0] == (f"distiller train: verified {len(shards)} shard(s), "
                                      f"{sum(s.rows for s in shards)} row(s) the run reads")
    # then the one summary line of a finished run, and nothing else
    assert len(lines) == 2 and lines[1].startswith("distiller train: no dev set: the last epoch")
    damaged = shards[0]
    with open(TeacherCache.open(cache).shard_path(damaged.name), "r+b") as fh:
        fh.seek(damaged.bytes // 2)
        fh.write(bytes(b ^ 0xFF for b in fh.read(16)))
    code, _, err = run(capsys, *common, "--run-dir", str(tmp_path / "bad"))
    assert code == 2 and one_line(err) == (
        f"distiller train: error: --verify: 1 of the shards the run reads are damaged: "
        f"{damaged.name}: checksum mismatch (content altered) (`distiller cache verify {cache}` "
        "lists every problem; restore the cache from a copy or build a new one)")
    assert not os.path.exists(tmp_path / "bad" / "checkpoint.pt")
