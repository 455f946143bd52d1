"""`distiller score --devices` with several devices: one replica each, the same cache as one."""
from __future__ import annotations

import json

from distiller.cli import main

from .test_cli import sst2_file  # noqa: F401  (fixture)


def _shards(cache):
    with open(f"{cache}/manifest.json") as fh:
        return sorted((s["name"], s["sha256"]) for s in json.load(fh)["shards"])


def test_two_device_slots_write_the_shards_one_device_writes(tmp_path, tiny_teacher_dir,
                                                             sst2_file, capsys):  # noqa: F811
    runs = {}
    for devices in ("cpu", "cpu,cpu"):
        cache = str(tmp_path / devices.replace(",", "_"))
        assert main(["score", "--input", sst2_file, "--task", "sst2", "--teacher",
                     tiny_teacher_dir, "--cache", cache, "--max-length", "64", "--devices",
                     devices, "--chunk", "4"]) == 0
        runs[devices] = json.loads(capsys.readouterr().out)
        runs[devices]["shard_list"] = _shards(cache)
    one, two = runs["cpu"], runs["cpu,cpu"]
    assert two["scored"] == one["scored"] == 30 and two["shard_list"] == one["shard_list"]
    assert len(two["shard_list"]) >= 8  # 30 keys in chunks of whole batches of at most 4
