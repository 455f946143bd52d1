"""Size and inference speed of saved models, measured side by side (the demo's last table).

Each model classifies the same texts in length-sorted batches; the models take turns, round
after round, so that a machine busy with something else slows them alike, and the median
round of each is reported. Tokenisation is done once, outside the timed loop.
"""
from __future__ import annotations

import statistics
import time
from typing import Dict, Mapping, Sequence

__all__ = ["compare_models", "count_parameters"]


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def compare_models(models: Mapping[str, str], texts: Sequence[str], *, max_length: int = 64,
                   batch_size: int = 64, rounds: int = 3) -> Dict[str, Dict[str, float]]:
    """{name: {"parameters", "sentences_per_s", "layers"}} for each saved model directory,
    classifying `texts` (median of `rounds` interleaved rounds)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    loaded = {}
    for name, path in models.items():
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        tok = AutoTokenizer.from_pretrained(path)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [tok([texts[i] for i in order[s:s + batch_size]], truncation=True,
                       max_length=max_length, padding=True, return_tensors="pt")
                   for s in range(0, len(order), batch_size)]
        loaded[name] = (model, batches)
    times: Dict[str, list] = {name: [] for name in models}
    with torch.inference_mode():
        for _ in range(rounds + 1):                      # the first round warms up
            for name, (model, batches) in loaded.items():
                start = time.perf_counter()
                for batch in batches:
                    model(**batch)
                times[name].append(time.perf_counter() - start)
    return {name: {"parameters": count_parameters(model),
                   "layers": int(model.config.num_hidden_layers),
                   "sentences_per_s": len(texts) / statistics.median(times[name][1:])}
            for name, (model, _) in loaded.items()}
