"""Scoring measured side by side, for bench_cache.py (issue 21).

Our scoring (tokenize, key, score, write a float16 cache, commit) and two bare length-sorted
forward loops over the same sentences (the careful user's ten lines, `user_loop`, and one over our
own batch plan, `bare_sorted_loop`; no keys, no hidden states kept, nothing written) run in
interleaved rounds, each round in a rotated order, so that a change in
the machine's load hits every variant alike; rates are medians over rounds and each ratio is the
median of the per-round ratios.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import time
from typing import Callable, Dict, List, Sequence

import numpy as np


def bare_sorted_loop(teacher, rows, keep: bool = False) -> float:
    """Seconds of a bare length-sorted forward loop over the teacher's own batch plan, at the
    teacher's precision (autocast when it has one): the floor of our overhead. With `keep`, the
    loop also keeps what a cache row holds (every hidden state, float16, each row trimmed to its
    length, in memory; nothing keyed or written): the floor of any scorer that keeps them."""
    import torch

    from distiller.builders.teacher.batching import plan_batches

    toks = teacher.tokenize(rows)
    lengths = [len(t[0]) for t in toks]
    cfg = teacher.config
    plan = plan_batches(lengths, max_tokens=cfg.max_tokens_per_batch,
                        max_batch_size=cfg.max_batch_size, window=cfg.sort_window)
    pad = teacher.tokenizer.pad_token_id or 0
    device = teacher.device
    t = time.perf_counter()
    with torch.inference_mode(), teacher.autocast():
        for batch in plan:
            width = max(lengths[i] for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(batch):
                ids[r, :lengths[i]] = torch.from_numpy(toks[i][0].astype(np.int64))
                mask[r, :lengths[i]] = 1
            out = teacher.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                output_hidden_states=keep)
            logits = out.logits.float().cpu().numpy()   # the results reach the host
            if keep:
                hidden = torch.stack(out.hidden_states, 1).to(torch.float16).cpu().numpy()
                kept = [hidden[r, :, :lengths[i]] for r, i in enumerate(batch)]
                kept.append(logits)
    return time.perf_counter() - t


def user_loop(teacher, rows, batch_size: int = 64) -> float:
    """Seconds of what a careful user writes in ten lines: sort the texts by length, tokenize
    each batch of `batch_size` with padding, forward, logits to the host (tokenization timed)."""
    import torch

    from distiller.builders.teacher.model import as_text_pair

    pairs = sorted((as_text_pair(r) for r in rows), key=lambda p: len(p[0]) + len(p[1] or ""))
    t = time.perf_counter()
    with torch.inference_mode(), teacher.autocast():
        for s in range(0, len(pairs), batch_size):
            a = [p[0] for p in pairs[s:s + batch_size]]
            b = [p[1] for p in pairs[s:s + batch_size]]
            enc = teacher.tokenizer(a, b if b[0] is not None else None, padding=True,
                                    truncation=True, max_length=teacher.config.max_length,
                                    return_tensors="pt").to(teacher.device)
            teacher.model(**enc).logits.float().cpu().numpy()
    return time.perf_counter() - t


def ours(teacher, rows, workdir: str, name: str, chunk: int = 512, writers: int = 1) -> float:
    """Seconds of `score_into_cache` of `rows` into a fresh float16 cache (written, committed)."""
    from distiller.builders import TeacherCache
    from distiller.builders.teacher.scoring import score_into_cache

    path = os.path.join(workdir, name)
    shutil.rmtree(path, ignore_errors=True)
    cache = TeacherCache.create(path, teacher.spec("float16"))
    t = time.perf_counter()
    score_into_cache(teacher, cache, rows, chunk=chunk, writers=writers)
    seconds = time.perf_counter() - t
    shutil.rmtree(path, ignore_errors=True)
    return seconds


def writer_alone(teacher, rows, workdir: str, writers: int = 1, chunk: int = 512,
                 cpu: bool = False) -> float:
    """Seconds (with `cpu`: CPU seconds of this process) to encode, write, hash, fsync and
    commit precomputed float16 outputs of `rows`: the writer's share, without any forward."""
    from distiller.builders import TeacherCache
    from distiller.builders.teacher.scoring import ShardWriter

    outputs = teacher.score(rows, store_as="float16")
    path = os.path.join(workdir, f"writer{writers}")
    shutil.rmtree(path, ignore_errors=True)
    cache = TeacherCache.create(path, teacher.spec("float16"))
    clock = time.process_time if cpu else time.perf_counter
    start = clock()
    writer = ShardWriter(cache, writers=writers)
    for s in range(0, len(outputs), chunk):
        writer.put(outputs[s:s + chunk])
    writer.close()
    seconds = clock() - start
    shutil.rmtree(path, ignore_errors=True)
    return seconds


def interleaved(variants: Dict[str, Callable[[], float]], rounds: int,
                log: Callable[[str], None] = print) -> Dict[str, Dict[str, List[float]]]:
    """{"wall": {name: seconds per round}, "cpu": {name: CPU seconds of this process per round}};
    round r runs the variants rotated by r."""
    names = list(variants)
    out: Dict[str, Dict[str, List[float]]] = {"wall": {n: [] for n in names},
                                              "cpu": {n: [] for n in names}}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            cpu = time.process_time()
            out["wall"][n].append(variants[n]())
            out["cpu"][n].append(time.process_time() - cpu)
        log(f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {out['wall'][n][-1]:.2f}s" for n in names)
            + f" (load {os.getloadavg()[0]:.2f})")
    return out


def median_ratio(seconds: Dict[str, List[float]], num: str, den: str) -> float:
    """Median over rounds of speed(num) / speed(den) = seconds(den) / seconds(num)."""
    return statistics.median(d / n for n, d in zip(seconds[num], seconds[den]))


def differences(ref: Sequence[dict], other: Sequence[dict]) -> Dict[str, float]:
    """How far `other` outputs are from `ref` ones (same rows): max abs and relative RMS of
    hidden states and logits, and the share of rows with the same argmax."""
    hid_abs = log_abs = num = den = 0.0
    same = 0
    for a, b in zip(ref, other):
        d = np.abs(np.asarray(a["logits"], np.float64) - b["logits"])
        log_abs = max(log_abs, float(d.max()))
        same += int(np.argmax(a["logits"]) == np.argmax(b["logits"]))
        for k, h in a["hidden"].items():
            e = np.asarray(h, np.float64) - np.asarray(b["hidden"][k], np.float64)
            hid_abs = max(hid_abs, float(np.abs(e).max()))
            num += float((e ** 2).sum())
            den += float((np.asarray(h, np.float64) ** 2).sum())
    return {"hidden_max_abs": hid_abs, "hidden_rel_rms": (num / den) ** 0.5 if den else 0.0,
            "logits_max_abs": log_abs, "argmax_agreement": same / max(1, len(ref))}


def warm_up(teacher, rows) -> float:
    """Seconds of a first scoring (compilation for torch.compile; the first batches otherwise)."""
    t = time.perf_counter()
    with contextlib.redirect_stdout(None):
        teacher.score(rows)
    return time.perf_counter() - t


def scoring_section(args, rows, model_path, workdir, fig):
    """Section 2: interleaved rounds of our scoring and the bare loop, per precision/backend."""
    import functools

    from distiller.builders.teacher.model import Teacher, TeacherConfig

    def teacher(**kw):
        return Teacher(TeacherConfig(model=model_path, num_labels=2, max_length=128,
                                     max_tokens_per_batch=args.max_tokens_per_batch,
                                     num_threads=args.threads, device="cpu", **kw)).load()

    teachers = {"float32": teacher(), "bf16": teacher(amp="bf16")}
    wanted = [b for b in args.backends.split(",") if b]
    for name in wanted:                    # "compile_bf16": torch.compile under bf16 autocast
        backend, _, amp = name.partition("_")
        try:
            teachers[name] = teacher(backend=backend, **({"amp": amp} if amp else {}))
        except ValueError as exc:          # e.g. onnxruntime not installed: say so, go on
            print(f"backend {name}: not measured ({exc})", flush=True)
    warm = rows[:64]
    for name, t in teachers.items():
        seconds = warm_up(t, warm) + t.backend.warmup_s * (name == "onnx")
        fig[f"warmup_s_{name}"] = seconds
        print(f"warm-up {name}: {seconds:.1f} s", flush=True)
    variants = {"bare_float32": functools.partial(bare_sorted_loop, teachers["float32"], rows),
                "bare_bf16": functools.partial(bare_sorted_loop, teachers["bf16"], rows),
                "bare_keep_float32": functools.partial(bare_sorted_loop, teachers["float32"],
                                                       rows, keep=True),
                "user10_float32": functools.partial(user_loop, teachers["float32"], rows),
                "user10_bf16": functools.partial(user_loop, teachers["bf16"], rows)}
    for name, t in teachers.items():
        variants[f"ours_{name}"] = functools.partial(ours, t, rows, workdir, f"c-{name}")
    ours(teachers["float32"], rows[:64], workdir, "warm")   # one-time imports (pyarrow, pandas)
    print(f"{args.rounds} interleaved rounds over {len(rows)} sentences:", flush=True)
    res = interleaved(variants, args.rounds)
    fig["rounds"] = res
    for n, secs in res["wall"].items():
        fig[f"{n}_sentences_per_s"] = len(rows) / statistics.median(secs)
        fig[f"{n}_sentences_per_cpu_s"] = len(rows) / statistics.median(res["cpu"][n])
    ref = teachers["float32"].score(rows[:args.error_sample])
    for name, t in teachers.items():
        bf16 = name.endswith("bf16")       # compared with the loops at the same precision
        bare = "bare_bf16" if bf16 else "bare_float32"
        user = "user10_bf16" if bf16 else "user10_float32"
        fig[f"ours_{name}_vs_user10"] = median_ratio(res["wall"], f"ours_{name}", user)
        fig[f"ours_{name}_vs_bare"] = median_ratio(res["wall"], f"ours_{name}", bare)
        fig[f"ours_{name}_vs_bare_cpu"] = median_ratio(res["cpu"], f"ours_{name}", bare)
        fig[f"ours_{name}_vs_ours_float32"] = median_ratio(res["wall"], f"ours_{name}",
                                                           "ours_float32")
        diff = differences(ref, t.score(rows[:args.error_sample])) if name != "float32" else {}
        fig[f"diff_{name}_vs_float32_eager"] = diff
        print(f"ours {name:8s}: {fig[f'ours_{name}_sentences_per_s']:6.1f} sentences/s; / {bare} "
              f"= {fig[f'ours_{name}_vs_bare']:.3f} (per CPU-second "
              f"{fig[f'ours_{name}_vs_bare_cpu']:.3f}); / {user} "
              f"{fig[f'ours_{name}_vs_user10']:.3f}; / ours float32 "
              f"{fig[f'ours_{name}_vs_ours_float32']:.2f}"
              + (f"; vs float32 eager {json.dumps({k: float(f'{v:.3g}') for k, v in diff.items()})}"
                 if diff else ""), flush=True)
    for bare in ("bare_float32", "bare_bf16", "bare_keep_float32", "user10_float32",
                 "user10_bf16"):
        print(f"{bare}: {fig[f'{bare}_sentences_per_s']:.1f} sentences/s", flush=True)
    # The ceiling: a bare loop that keeps what a cache row holds, over the plain bare loop.
    fig["bare_keep_vs_bare"] = median_ratio(res["wall"], "bare_keep_float32", "bare_float32")
    fig["ours_float32_vs_bare_keep"] = median_ratio(res["wall"], "ours_float32",
                                                    "bare_keep_float32")
    print(f"ceiling: keeping every hidden state costs a bare loop {fig['bare_keep_vs_bare']:.3f} "
          f"of its speed; ours float32 / that loop = {fig['ours_float32_vs_bare_keep']:.3f}",
          flush=True)
    # What the cache's writes cost in CPU: on a machine whose cores all run the forward, a
    # scorer that writes can at best reach bare / (bare + write CPU / cores + tokenize).
    t32 = teachers["float32"]
    write_cpu = statistics.median(writer_alone(t32, rows, workdir, cpu=True)
                                  for _ in range(args.rounds))
    start = time.perf_counter()
    t32.tokenize(rows)
    tokenize_s = time.perf_counter() - start
    fig["write_cpu_s"], fig["tokenize_s"] = write_cpu, tokenize_s
    for prec in ("float32", "bf16"):       # at each precision, against both loops
        bare_s = statistics.median(res["wall"][f"bare_{prec}"])
        best_s = bare_s + write_cpu / max(1, args.threads) + tokenize_s
        for loop, key in ((f"bare_{prec}", "bare"), (f"user10_{prec}", "user10")):
            ceiling = statistics.median(res["wall"][loop]) / best_s
            fig[f"ceiling_{prec}_vs_{key}"] = ceiling
            fig[f"ours_{prec}_vs_ceiling_{key}"] = fig[f"ours_{prec}_vs_{key}"] / ceiling
        print(f"ceiling at {prec} of a scorer that writes this cache on {args.threads} cores: "
              f"writing {len(rows)} rows takes {write_cpu:.2f} CPU-s, tokenizing "
              f"{tokenize_s:.2f} s, the bare loop {bare_s:.2f} s: at best "
              f"{fig[f'ceiling_{prec}_vs_bare']:.3f} of the loop over our batches and "
              f"{fig[f'ceiling_{prec}_vs_user10']:.3f} of the ten-line loop; ours reaches "
              f"{fig[f'ours_{prec}_vs_ceiling_user10']:.3f} of that ceiling", flush=True)
    return teachers["float32"]
