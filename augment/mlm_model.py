"""A masked LM loaded once per process, with batched, length-bucketed prediction at chosen slots.

Used by the contextual augmenter. ``MaskedLM.predict(rows)`` takes token-id rows and the
positions to predict in each, runs as few forward passes as the token budget allows (rows grouped
by padded width, fp16/bf16 autocast on a GPU), applies the LM head only at the requested positions,
and returns float32 log-probabilities over the vocabulary on the CPU.

Batch-independent numbers: every row is padded to its own *canonical width* (its length rounded
up to a multiple of ``WIDTH_STEP``) and a batch only holds rows of one width. A row's scores then
do not depend on which rows share its batch: padding to a different width changes the reduction
order in attention and moves scores in the last float bits, which is enough to flip a sampled
word now and then. On the CPU the scores are bit-identical whether a row is scored alone or in
any batch (tests/augment/test_mlm.py checks this); GPU kernels give no such promise.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from distiller.common.errors import UsageError
from distiller.common.device import resolve_device

__all__ = ["MaskedLM", "get_masked_lm", "lm_head"]

log = logging.getLogger(__name__)
_lock = threading.Lock()
_LOADED: Dict[Tuple[str, str], "MaskedLM"] = {}
WIDTH_STEP = 8
HEAD_ROWS = 32


def canonical_width(length: int) -> int:
    """The padded width of a row of `length` tokens, whatever batch it lands in."""
    return -(-length // WIDTH_STEP) * WIDTH_STEP


def autocast(device):
    """bfloat16 (float16 where the GPU lacks it) autocast on a GPU; nothing on a CPU, where the
    masked LM runs in float32."""
    import contextlib

    import torch

    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


class MaskedLM:
    """A Hugging Face masked LM, its fast tokenizer, and its whole-word vocabulary entries."""

    def __init__(self, name: str, device: str = "auto") -> None:
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self.name = name
        check_masked_lm_path(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name)
        except OSError as exc:
            raise UsageError(f"cannot load the masked LM {name!r}: {exc}") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise UsageError(f"masked LM {name!r} has no fast tokenizer: character offsets are "
                             "needed to edit only the chosen words; install `tokenizers` or use a "
                             "model that ships tokenizer.json")
        if self.tokenizer.mask_token_id is None:
            raise UsageError(f"model {name!r} has no mask token: it is not a masked LM")
        self.device = resolve_device(device)
        self.model = AutoModelForMaskedLM.from_pretrained(name).to(self.device).eval()
        self.counters: Counter = Counter()
        self._head = lm_head(self.model)
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        special = set(self.tokenizer.all_special_ids)
        n_wordpiece = sum(t.startswith("##") for t in vocab)
        if n_wordpiece > len(vocab) // 20:  # WordPiece: continuation pieces start with ##
            starts = [not t.startswith("##") for t in vocab]
            strip = ""
        else:  # SentencePiece (U+2581) or byte-level BPE (U+0120) mark a word start
            starts = [t[:1] in ("\u2581", "\u0120") for t in vocab]
            strip = "\u2581\u0120"
        words = [t.lstrip(strip) for t in vocab]
        ok = [s and i not in special and w.isalpha() and len(w) > 0 and not
              (w.startswith("[") or w.startswith("<"))
              for i, (s, w) in enumerate(zip(starts, words))]
        # Whole-word vocabulary: replacements are drawn only from these (no '##', no specials).
        self.model_vocab = self.model.get_output_embeddings().weight.shape[0]
        self.word_ids = torch.tensor(
            [i for i, good in enumerate(ok) if good and i < self.model_vocab], dtype=torch.long)
        self.word_text = {i: words[i] for i in self.word_ids.tolist()}
        self.allowed = torch.full((self.model_vocab,), float("-inf"))
        self.allowed[self.word_ids] = 0.0
        log.info("masked LM %s on %s: %d of %d vocabulary entries are whole words", name,
                 self.device, len(self.word_ids), len(vocab))
        self._emb_unit = None

    def word_embeddings_unit(self):
        """Input embeddings of the whole-word vocabulary, L2-normalised (for kNN), [W, H]."""
        import torch

        if self._emb_unit is None:
            emb = self.model.get_input_embeddings().weight.detach().float().cpu()
            self._emb_unit = torch.nn.functional.normalize(emb[self.word_ids], dim=-1)
        return self._emb_unit

    def input_embeddings(self, ids: Sequence[int]):
        """Mean input embedding of token ids, [H] float32 CPU."""
        import torch

        emb = self.model.get_input_embeddings().weight.detach()
        return emb[torch.tensor(list(ids), device=emb.device)].float().mean(0).cpu()

    def predict(self, rows: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], *,
                top: int, max_tokens: int = 8192, max_rows: int = 256) -> List:
        """The `top` best whole-word predictions at each requested position of each row.

        rows: token ids including special tokens; positions: indices into each row.
        Returns, per row i, (log_probs [len(positions[i]), top] float32 CPU, best first;
        token_ids [len(positions[i]), top]); sub-word pieces and special tokens are excluded.
        Rows are grouped by canonical width (module docstring), in input order within a width,
        and packed while rows*width <= max_tokens.
        """
        import torch

        order = sorted(range(len(rows)), key=lambda i: (canonical_width(len(rows[i])), i))
        out: List[Optional[torch.Tensor]] = [None] * len(rows)
        pad = self.tokenizer.pad_token_id or 0
        start = 0
        while start < len(order):
            width = canonical_width(len(rows[order[start]]))
            end = start + 1
            while (end < len(order) and end - start < max_rows
                   and (end - start + 1) * width <= max_tokens
                   and canonical_width(len(rows[order[end]])) == width):
                end += 1
            batch = order[start:end]
            start = end
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):
                ids[r, :len(rows[i])] = torch.tensor(rows[i])
                mask[r, :len(rows[i])] = 1
            self.counters["forward_passes"] += 1
            self.counters["tokens_real"] += int(mask.sum())
            self.counters["tokens_padded"] += int(mask.numel())
            bi = torch.tensor([r for r, i in enumerate(batch) for _ in positions[i]],
                              dtype=torch.long)
            pi = torch.tensor([p for i in batch for p in positions[i]], dtype=torch.long)
            logits = self._forward(ids, mask, bi, pi)
            logp = torch.log_softmax(logits.float().cpu(), dim=-1) + self.allowed
            vals, idx = torch.topk(logp, min(top, logp.shape[-1]), dim=-1)
            offset = 0
            for i in batch:
                n = len(positions[i])
                out[i] = (vals[offset:offset + n], idx[offset:offset + n])
                offset += n
        return out

    def _forward(self, ids, mask, bi, pi):
        import torch

        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.inference_mode(), autocast(self.device):
            if self._head is not None:
                hidden = self.model.base_model(input_ids=ids, attention_mask=mask)[0]
                picked = hidden[bi.to(self.device), pi.to(self.device)]
                # The head runs on blocks of exactly HEAD_ROWS rows (the last one zero-padded):
                # a matmul over fewer rows takes another kernel whose sums differ in the last
                # bits, so a row's scores would depend on how many positions share its batch.
                n = picked.shape[0]
                blocks = -(-n // HEAD_ROWS)
                padded = picked.new_zeros((blocks * HEAD_ROWS, picked.shape[1]))
                padded[:n] = picked
                return torch.cat([self._head(b) for b in padded.split(HEAD_ROWS)])[:n]
            return self.model(input_ids=ids, attention_mask=mask).logits[
                bi.to(self.device), pi.to(self.device)]


def lm_head(m):
    """A masked LM's head as a function hidden [N, H] -> vocabulary logits [N, V], so that it
    runs at the chosen positions only; None for an architecture it does not know (then the full
    model runs)."""
    if hasattr(m, "cls") and hasattr(m.cls, "predictions"):  # BERT
        return m.cls
    if hasattr(m, "lm_head"):  # RoBERTa, XLM-R
        return m.lm_head
    if hasattr(m, "vocab_projector"):  # DistilBERT
        import torch.nn.functional as F

        def head(h):
            h = F.gelu(m.vocab_transform(h))
            return m.vocab_projector(m.vocab_layer_norm(h))
        return head
    return None


def check_masked_lm_path(name: str) -> None:
    """A masked LM named by a local path that does not exist: FileNotFoundError saying how to
    build one (a hub name passes: it is resolved when loaded)."""
    if not os.path.isdir(name) and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise FileNotFoundError(
            f"masked LM {name!r} does not exist: build one from an encoder with `distiller "
            "mlm-adapt` (`make mlm` builds runs/mlm/minilm-glue) or name a local masked LM")


def get_masked_lm(name: str, device: str = "auto") -> MaskedLM:
    """The process-wide MaskedLM for (name, device), loaded on first use."""
    key = (name, device)
    with _lock:
        if key not in _LOADED:
            _LOADED[key] = MaskedLM(name, device)
        return _LOADED[key]
