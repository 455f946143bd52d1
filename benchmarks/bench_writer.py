"""The cache writer alone (issue 30): encoding, checksum and Parquet write of scored rows, in
MB/s per core and in total, against the disk's sequential write rate, all in one run.

Rows are synthetic teacher outputs of MiniLM-L6's shape (7 hidden states x 384, float16, 8-40
real tokens: ~130 KB a row, as SST-2 through MiniLM), so no model runs. Variants, each over the
same shards in interleaved rounds (medians):
  today        the library's path: `write_shard_file` (encode, Parquet with page CRCs, sha256
               of the bytes as written, fsync, rename)
  parts        the same work split into its steps, CPU seconds each: encode, Parquet with and
               without page CRCs (into memory), and checksums of the shard's bytes: sha256,
               BLAKE3 and xxh3-128 when those modules are installed
  threads N    `write_shard_file` on N threads at once (total MB/s; per core = total / N)
  disk         sequential writes of 8 MB blocks with one fsync (the disk's rate)

Usage: python benchmarks/bench_writer.py [--rows 2048] [--chunk 512] [--rounds 3]
       [--threads 2] [--dir DIR] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

LAYERS = tuple(range(7))
HIDDEN = 384


def make_spec():
    from distiller.builders.cache.spec import CacheSpec

    return CacheSpec(fingerprint="b" * 32, tokenization=(("max_length", 128),), layers=LAYERS,
                     hidden_size=HIDDEN, num_heads=12, num_hidden_layers=6, dtype="float16")


def make_rows(n: int, seed: int = 0):
    """`n` teacher outputs as the scorer hands them over: float16 hidden states that are views
    of one packed [layers, tokens, hidden] array per batch of 64 (forward.py)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for first in range(0, n, 64):
        lens = rng.integers(8, 41, min(64, n - first))
        packed = rng.normal(size=(len(LAYERS), int(lens.sum()), HIDDEN)).astype(np.float16)
        at = 0
        for i, k in enumerate(lens):
            k = int(k)
            rows.append({"key": f"row-{first + i:07d}", "input_ids": np.arange(k, dtype=np.int32),
                         "token_type_ids": np.zeros(k, np.int8),
                         "logits": rng.normal(size=2).astype(np.float32),
                         "hidden": {l: packed[j, at:at + k] for j, l in enumerate(LAYERS)}})
            at += k
    return rows


def checksums():
    """{name: function of bytes -> hex digest} for the algorithms installed here."""
    out = {"sha256": lambda b: hashlib.sha256(b).hexdigest()}
    try:
        import blake3
        out["blake3"] = lambda b: blake3.blake3(b).hexdigest()
    except ImportError:
        pass
    try:
        import xxhash
        out["xxh3_128"] = lambda b: xxhash.xxh3_128(b).hexdigest()
    except ImportError:
        pass
    return out


def cpu_time(fn):
    """(CPU seconds of this process, result) of fn()."""
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def parts(spec, chunks):
    """CPU seconds of each step over all `chunks`, and the shards' bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distiller.builders.cache.encoding import encode_columns
    from distiller.builders.cache.shards import shard_schema

    sec = {"encode": 0.0, "parquet_crc": 0.0, "parquet_no_crc": 0.0}
    files = []
    for outs in chunks:
        t, cols = cpu_time(lambda: encode_columns(outs, spec))
        sec["encode"] += t
        table = pa.table(cols, schema=shard_schema(spec))
        for crc in (True, False):
            sink = pa.BufferOutputStream()
            t, _ = cpu_time(lambda: pq.write_table(
                table, sink, compression="none", use_dictionary=False, write_statistics=False,
                write_page_checksum=crc, row_group_size=max(1, len(outs) // 4)))
            sec["parquet_crc" if crc else "parquet_no_crc"] += t
            if crc:
                files.append(sink.getvalue())
    for name, fn in checksums().items():
        sec[f"hash_{name}"] = sum(cpu_time(lambda: fn(memoryview(f)))[0] for f in files)
    return sec, sum(f.size for f in files)


def write_today(spec, chunks, directory, threads=1):
    """Wall seconds, CPU seconds and bytes of writing every chunk as a shard with the library's
    path, `threads` shards at a time."""
    from distiller.builders.cache.shards import write_shard_file

    done, lock = [], threading.Lock()
    todo = list(enumerate(chunks))

    def work():
        while True:
            with lock:
                if not todo:
                    return
                i, outs = todo.pop()
            info = write_shard_file(directory, spec, outs, name=f"s{i}.parquet")
            with lock:
                done.append(info.bytes)

    start, cpu = time.perf_counter(), time.process_time()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - start, time.process_time() - cpu, sum(done)


def disk_rate(directory, total=512 << 20, block=8 << 20):
    """MB/s of sequential 8 MB writes of `total` bytes and one fsync."""
    data = os.urandom(block)
    path = os.path.join(directory, "disk-rate.bin")
    start = time.perf_counter()
    with open(path, "wb") as fh:
        for _ in range(total // block):
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - start
    os.unlink(path)
    return total / seconds / 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2048)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dir", help="where shards are written (default: a temporary directory)")
    p.add_argument("--out")
    args = p.parse_args()
    base = tempfile.mkdtemp(prefix="bench-writer-", dir=args.dir)
    spec = make_spec()
    rows = make_rows(args.rows)
    chunks = [rows[i:i + args.chunk] for i in range(0, len(rows), args.chunk)]
    print(f"{len(rows)} rows in shards of {args.chunk}, {os.cpu_count()} CPUs, "
          f"writing under {base}", flush=True)
    results = {"today_w1": [], f"today_w{args.threads}": [], "disk": [], "parts": []}
    try:
        for r in range(args.rounds):
            for variant in (["today_w1", f"today_w{args.threads}", "disk", "parts"][r % 4:] +
                            ["today_w1", f"today_w{args.threads}", "disk", "parts"][:r % 4]):
                d = os.path.join(base, f"{variant}-{r}")
                os.makedirs(d)
                if variant == "disk":
                    results["disk"].append(disk_rate(d))
                elif variant == "parts":
                    results["parts"].append(parts(spec, chunks))
                else:
                    threads = int(variant.split("_w")[1])
                    results[variant].append(write_today(spec, chunks, d, threads))
                shutil.rmtree(d)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    summary = report(results, args.threads)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(summary, fh, indent=1)
    return 0


def report(results, threads):
    """Print and return the medians: MB/s per core and in total for each variant."""
    summary = {"disk_MBps": round(statistics.median(results["disk"]))}
    print(f"disk, sequential 8 MB writes + fsync: {summary['disk_MBps']:,} MB/s")
    for name in ("today_w1", f"today_w{threads}"):
        wall = statistics.median(r[0] for r in results[name])
        cpu = statistics.median(r[1] for r in results[name])
        mb = results[name][0][2] / 1e6
        summary[name] = {"MBps_total": round(mb / wall), "MBps_per_cpu_second": round(mb / cpu),
                         "cpu_s_per_GB": round(cpu / mb * 1000, 3)}
        print(f"{name}: {mb / wall:,.0f} MB/s total, {mb / cpu:,.0f} MB per CPU-second "
              f"({cpu / mb * 1000:.3f} CPU-s per GB)")
    mb = results["parts"][0][1] / 1e6
    steps = {k: statistics.median(r[0][k] for r in results["parts"])
             for k in results["parts"][0][0]}
    summary["parts_cpu_s_per_GB"] = {k: round(v / mb * 1000, 3) for k, v in steps.items()}
    print("CPU-s per GB of shard, by step: " + ", ".join(
        f"{k} {v / mb * 1000:.3f}" for k, v in steps.items()))
    for k, v in steps.items():
        if k.startswith("hash_"):
            print(f"  {k[5:]}: {mb / v:,.0f} MB/s on one core")
    print("SUMMARY " + json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    sys.exit(main())
