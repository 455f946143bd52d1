"""Masked rows for `distiller mlm-adapt`: tokenized texts with their masking units, padded
batches, logits at the masked positions only, and the held-out score (masked-token top-1/top-5
accuracy with fixed masks, and the unigram baseline it is compared with)."""
from __future__ import annotations

from typing import Dict, List

from .mlm_data import IGNORE, apply_masks, example_rng, mask_units

__all__ = ["Encoded", "HeldOut", "pad_rows", "masked_logits", "random_ids"]


class Encoded:
    """Token ids and masking units of a list of texts (special tokens included)."""

    def __init__(self, tokenizer, texts: List[str], max_length: int, whole_word: bool):
        enc = tokenizer(texts, truncation=True, max_length=max_length)
        self.ids: List[List[int]] = enc["input_ids"]
        self.units = [mask_units(enc.word_ids(i), whole_word) for i in range(len(texts))]
        self.lengths = [len(x) for x in self.ids]


def pad_rows(rows, pad_id: int):
    """Rows of ids padded with pad_id to the longest: (ids [B, T], attention mask [B, T])."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask


def masked_logits(model, head, ids, attention, labels):
    """Logits [M, V] at the M positions whose label is not IGNORE, and those labels [M]."""
    picked = labels != IGNORE
    if head is None:
        return model(input_ids=ids, attention_mask=attention).logits[picked], labels[picked]
    hidden = model.base_model(input_ids=ids, attention_mask=attention)[0]
    return head(hidden[picked]), labels[picked]


def random_ids(tokenizer):
    """Ids a random replacement is drawn from: the vocabulary without special tokens and
    bracketed placeholders ([unused12], <extra_id_0>); a 1-d int64 numpy array."""
    import numpy as np

    special = set(tokenizer.all_special_ids)
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return np.array([i for i, t in enumerate(vocab) if i not in special
                     and not (t.startswith("[") and t.endswith("]"))
                     and not (t.startswith("<") and t.endswith(">"))], dtype=np.int64)


class HeldOut:
    """Held-out texts with fixed, seeded masks (every chosen unit [MASK]); `score(model)` gives
    masked-token top-1/top-5 accuracy (%) and mean loss."""

    def __init__(self, tokenizer, texts: List[str], cfg):
        """cfg: an MlmAdaptConfig (max_length, masking, seed)."""
        enc = Encoded(tokenizer, texts, cfg.max_length, cfg.masking.whole_word)
        self.rows = [apply_masks(ids, units, cfg.masking, example_rng(cfg.seed, "mlm-eval", 0, i),
                                 mask_id=tokenizer.mask_token_id, random_ids=(),
                                 always_mask=True)
                     for i, (ids, units) in enumerate(zip(enc.ids, enc.units))]
        self.rows = [r for r in self.rows if any(x != IGNORE for x in r[1])]
        self.rows.sort(key=lambda r: len(r[0]))
        self.masked = sum(sum(x != IGNORE for x in r[1]) for r in self.rows)
        self.pad_id = tokenizer.pad_token_id or 0

    def baseline(self, counts) -> Dict[str, float]:
        """Top-1/top-5 of always guessing the most frequent training tokens (`counts`: a
        tensor of training token counts over the vocabulary)."""
        import torch

        top5 = torch.topk(counts, 5).indices.tolist()
        labels = [x for r in self.rows for x in r[1] if x != IGNORE]
        return {"top1": 100.0 * sum(x == top5[0] for x in labels) / max(1, len(labels)),
                "top5": 100.0 * sum(x in top5 for x in labels) / max(1, len(labels))}

    def score(self, model, head, batch_size: int = 64) -> Dict[str, float]:
        import torch
        import torch.nn.functional as F

        was_training = model.training
        device = next(model.parameters()).device
        model.eval()
        top1 = top5 = 0
        loss = 0.0
        with torch.no_grad():
            for start in range(0, len(self.rows), batch_size):
                batch = self.rows[start:start + batch_size]
                ids, attention = pad_rows([r[0] for r in batch], self.pad_id)
                labels, _ = pad_rows([r[1] for r in batch], IGNORE)
                logits, gold = masked_logits(model, head, ids.to(device), attention.to(device),
                                             labels.to(device))
                loss += float(F.cross_entropy(logits.float(), gold, reduction="sum"))
                best = torch.topk(logits, 5, dim=-1).indices
                top1 += int((best[:, 0] == gold).sum())
                top5 += int((best == gold[:, None]).any(-1).sum())
        model.train(was_training)
        n = max(1, self.masked)
        return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n,
                "masked_tokens": self.masked}
