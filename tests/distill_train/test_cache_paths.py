"""`distiller train` reads only files inside its cache (issue 27): a manifest naming a shard by
an absolute path or a path out of the cache, or a shard that is a symbolic link, is refused in
one line before training (before, it trained on the rows found there). The crafted caches are
copies of a real one whose shard files are moved out and named from there."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from distiller.cli import main

BASE = ["--task", "sst2", "--train-corpus", "sst2-train", "--epochs", "1", "--batch-size", "8",
        "--no-progress", "--student-init", "truncate", "--student-num-layers", "1",
        "--limit-train", "8"]


@pytest.mark.parametrize("how", ["absolute", "relative", "symlink"])
def test_train_refuses_a_shard_outside_its_cache(tmp_path, cache_f32, teacher_dir, capsys, how):
    cache = str(shutil.copytree(cache_f32, tmp_path / "cache"))
    manifest_path = os.path.join(cache, "manifest.json")
    with open(manifest_path, encoding="utf-8") as fh:
        manifest = json.load(fh)
    name = manifest["shards"][0]["name"]
    (tmp_path / "other" / "shards").mkdir(parents=True)
    moved = tmp_path / "other" / "shards" / name  # the same bytes: only where they are is wrong
    shutil.move(os.path.join(cache, "shards", name), moved)
    if how == "symlink":
        os.symlink(moved, os.path.join(cache, "shards", name))
    else:
        new = str(moved) if how == "absolute" else f"../../other/shards/{name}"
        manifest["shards"][0]["name"] = new
        with open(manifest_path, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh)
    code = main(["train", "--cache", cache, "--student", teacher_dir,
                 "--run-dir", str(tmp_path / "run"), *BASE])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("distiller train: error: ") and "do not use it" in err
    assert {"absolute": "which is an absolute path", "relative": "which is a path leading out",
            "symlink": "is a symbolic link, not a regular file"}[how] in err
    assert not os.path.exists(tmp_path / "run" / "result.json")
