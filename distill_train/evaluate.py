"""Evaluate a saved model (a HF directory, e.g. RUN/best_model) on a cache corpus or a file."""
from __future__ import annotations

from typing import Dict, Optional

__all__ = ["evaluate_saved"]


def evaluate_saved(model_dir: str, task: str, *, cache: Optional[str] = None,
                   corpus: Optional[str] = None, file: Optional[str] = None,
                   batch_size: int = 128, max_length: int = 128,
                   device: str = "auto") -> Dict[str, object]:
    """{"student": metrics, "teacher": metrics or None, "examples": n}."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .assemble import read_text_records
    from .config import task_info
    from .data import Batches, cache_fetcher, text_examples, text_fetcher
    from .forward import evaluate
    from .student import check_vocab

    _, _, _, metric = task_info(task)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(dev)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError):
        tokenizer = None
    pad_id = tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id \
        is not None else 0
    if file:
        if tokenizer is None:
            raise ValueError(f"{model_dir!r} has no tokenizer to read raw text with")
        rows = text_examples(read_text_records(file, task), tokenizer, max_length)
        batches = Batches(rows, text_fetcher(pad_id), batch_size=batch_size, shuffle=False)
    else:
        from builders.cache import TeacherCache
        from builders.reader import CacheReader

        from builders.vocab import cache_vocabulary

        rows = TeacherCache.open(cache).read_corpus(corpus)
        reader = CacheReader(cache, layers=[], attentions=False)
        expected, source = cache_vocabulary(cache)
        check_vocab(model, tokenizer, expected, source=source, student=model_dir)
        embeds = model.get_input_embeddings().weight.shape[0]
        batches = Batches(rows, cache_fetcher(reader, pad_id=pad_id, vocab_size=embeds),
                          batch_size=batch_size, shuffle=False)
    student, teacher = evaluate(model, batches, metric, dev)
    return {"metric": metric, "student": student, "teacher": teacher, "examples": len(rows)}
