"""Contextual word substitution with any Hugging Face masked LM (``contextual``).

Two flavours, one batched engine (distiller.augment.mlm_model):

- ``mode="sample"`` (nlpaug / Distiller study): a fraction ``aug_p`` of the words of each copy is
  masked at once (one [MASK] per chosen word, whatever its number of word pieces) and each is
  replaced by a whole word sampled from the MLM's prediction after top-k then top-p (0.8)
  filtering at ``temperature``. nlpaug masks and predicts one word at a time (a forward pass per
  word); we predict all chosen words of all copies of all sentences in a few length-bucketed
  forward passes, which is where the speed comes from.
- ``mode="tinybert"`` (Jiao et al. 2020, as published): every word is considered; with
  probability ``p_t`` (0.4) it is replaced by a uniformly chosen candidate. Candidates of a word
  that is one word piece are the MLM's top ``top_k`` (15) predictions with that word alone masked;
  those of a multi-piece word are its ``top_k`` nearest neighbours (cosine) in the MLM's input
  embedding space (mean of its pieces), which stands in for TinyBERT's GloVe table. Candidates are
  computed once per sentence and shared by its N_a copies.

Replacements are whole vocabulary words only (never '##' pieces or special tokens), differ from
the original word, take the original's case pattern, and are written into the original word's
character span; everything else in the text is kept byte-identical. Texts longer than
``max_length`` tokens are edited only within the first ``max_length`` tokens (counted as
``truncated``). Sampling uses one CPU torch generator per job, so outputs do not depend on batch
composition.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Dict, List, Optional, Sequence

from distiller.common.errors import UsageError
from distiller.common.seeding import make_rng, make_torch_generator

from .base import Job, check_choice, check_fraction, check_positive
from .mlm_model import check_masked_lm_path, get_masked_lm
from .model_files import local_model_digest
from .words import Word, apply_edits, editable, match_case, n_to_change, split_words

__all__ = ["ContextualConfig", "Contextual"]


@dataclasses.dataclass(frozen=True)
class ContextualConfig:
    """Config of the contextual (masked LM) augmenter; see the module docstring."""

    model: str = ""                # HF name or local path of a masked LM (required)
    mode: str = "sample"           # "sample" (nlpaug/Distiller) or "tinybert"
    aug_p: float = 0.3             # sample mode: fraction of words replaced
    aug_min: int = 1
    aug_max: Optional[int] = None
    top_k: int = 100               # sample: top-k before top-p; tinybert: K candidates (use 15)
    top_p: float = 0.8             # sample mode: nucleus mass
    temperature: float = 1.0
    p_t: float = 0.4               # tinybert mode: probability of replacing each word
    skip_stop_words: bool = False  # nlpaug replaces stop words too
    max_length: int = 128          # tokens seen by the MLM, special tokens included
    max_tokens_per_batch: int = 8192
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise UsageError("ContextualConfig.model must name a masked LM (HF name or local "
                             f"path), got {self.model!r}; e.g. model=distilbert-base-uncased")
        check_choice("ContextualConfig", "mode", self.mode, ("sample", "tinybert"))
        check_fraction("ContextualConfig", "aug_p", self.aug_p)
        check_fraction("ContextualConfig", "top_p", self.top_p)
        check_fraction("ContextualConfig", "p_t", self.p_t)
        check_positive("ContextualConfig", "aug_min", self.aug_min, allow_zero=True)
        if self.aug_max is not None:
            check_positive("ContextualConfig", "aug_max", self.aug_max)
        check_positive("ContextualConfig", "top_k", self.top_k)
        check_positive("ContextualConfig", "temperature", self.temperature, integer=False)
        check_positive("ContextualConfig", "max_length", self.max_length)
        if self.max_length < 3:
            raise UsageError(f"ContextualConfig.max_length must be >= 3, got {self.max_length}")
        check_positive("ContextualConfig", "max_tokens_per_batch", self.max_tokens_per_batch)


class _Parsed:
    """A text's words; per word the token ids of its pieces (None if truncated away) and their
    positions in token_ids (the text's tokens without specials, cut to the MLM's window)."""

    def __init__(self, text: str, words: List[Word], pieces: List[Optional[List[int]]],
                 piece_pos: List[List[int]], token_ids: List[int], truncated: bool,
                 skip_stop_words: bool) -> None:
        self.text, self.words, self.pieces, self.truncated = text, words, pieces, truncated
        self.piece_pos, self.token_ids = piece_pos, token_ids
        self.slots = [i for i, w in enumerate(words) if pieces[i] and editable(
            text, w, skip_stop_words=skip_stop_words)]
        self.n_editable = sum(editable(text, w, skip_stop_words=skip_stop_words) for w in words)


class Contextual:
    """Masked-LM substitution; see the module docstring."""

    VERSION = "contextual-1"

    def __init__(self, config: ContextualConfig) -> None:
        self.config = config
        self.name = "contextual"
        self.lm = None

    def identity(self) -> Optional[Dict[str, str]]:
        """What the policy fingerprint adds for this step: the masked LM's files when it is a
        local directory (augment/model_files.py), else None."""
        digest = local_model_digest(self.config.model)
        return {"model": digest} if digest else None

    def check(self) -> None:
        """FileNotFoundError now when the masked LM is a local path that does not exist."""
        check_masked_lm_path(self.config.model)

    def load(self) -> None:
        if self.lm is None:
            self.lm = get_masked_lm(self.config.model, self.config.device)

    # ---- tokenisation -------------------------------------------------------------------
    def _parse(self, texts: Sequence[str]) -> Dict[str, _Parsed]:
        tok = self.lm.tokenizer
        unique = sorted(set(texts))
        enc = tok(unique, add_special_tokens=False, return_offsets_mapping=True,
                  return_attention_mask=False) if unique else {"input_ids": [],
                                                                "offset_mapping": []}
        budget = self.config.max_length - 2
        parsed = {}
        for text, ids, offsets in zip(unique, enc["input_ids"], enc["offset_mapping"]):
            words = split_words(text)
            found: List[List[tuple]] = [[] for _ in words]
            w = 0
            for t, (tid, (s, e)) in enumerate(zip(ids, offsets)):
                if e <= s:
                    continue
                while w < len(words) and words[w].end <= s:
                    w += 1
                if w < len(words) and words[w].start <= s < words[w].end:
                    found[w].append((t, tid))
            # a word is editable only when all its pieces fit in the MLM's window
            clean: List[Optional[List[int]]] = [
                [tid for _, tid in f] if f and f[-1][0] < budget else None for f in found]
            parsed[text] = _Parsed(text, words, clean, [[t for t, _ in f] for f in found],
                                   list(ids[:budget]), len(ids) > budget,
                                   self.config.skip_stop_words)
        return parsed

    def _row(self, p: _Parsed, masked: Sequence[int]):
        """Token ids with each masked word collapsed to one [MASK]; returns (row, positions)."""
        tok = self.lm.tokenizer
        first = {p.piece_pos[i][0]: i for i in masked}
        drop = {t for i in masked for t in p.piece_pos[i][1:]}
        row = [tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id]
        positions = []
        for t, tid in enumerate(p.token_ids):
            if t in drop:
                continue
            if t in first:
                positions.append(len(row))
                row.append(tok.mask_token_id)
            else:
                row.append(tid)
        row.append(tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id)
        return row, positions

    # ---- sampling -----------------------------------------------------------------------
    def _sample(self, vals, ids, original: str, gen) -> Optional[int]:
        """Draw a replacement from the best whole words (vals: log-probs, best first): the
        original word is excluded, then temperature, top-k and top-p (nucleus) filtering."""
        import torch

        low = original.lower()
        keep = [j for j, (v, i) in enumerate(zip(vals.tolist(), ids.tolist()))
                if v != float("-inf") and self.lm.word_text.get(i, "").lower() != low]
        keep = keep[:self.config.top_k]
        if not keep:
            return None
        probs = torch.softmax(vals[keep] / self.config.temperature, dim=-1)
        n = int((torch.cumsum(probs, dim=-1) < self.config.top_p).sum()) + 1
        n = min(n, len(keep))
        probs = probs[:n] / probs[:n].sum()
        return int(ids[keep[int(torch.multinomial(probs, 1, generator=gen))]])

    def augment(self, jobs: Sequence[Job]):
        self.load()
        if self.config.mode == "tinybert":
            return self._augment_tinybert(jobs)
        return self._augment_sample(jobs)

    def _augment_sample(self, jobs: Sequence[Job]):
        c, stats = self.config, Counter()
        parsed = self._parse([j.text for j in jobs])
        rows, positions, chosen = [], [], []
        for job in jobs:
            p = parsed[job.text]
            stats["truncated"] += p.truncated
            k = min(n_to_change(c.aug_p, p.n_editable, c.aug_min, c.aug_max), len(p.slots))
            pick = sorted(make_rng(job.seed, "contextual-positions").sample(p.slots, k))
            chosen.append(pick)
            row, pos = self._row(p, pick) if pick else ([], [])
            rows.append(row)
            positions.append(pos)
        todo = [i for i, pick in enumerate(chosen) if pick]
        preds = self.lm.predict([rows[i] for i in todo], [positions[i] for i in todo],
                                top=c.top_k + 1, max_tokens=c.max_tokens_per_batch)
        out = [j.text for j in jobs]
        for i, logp in zip(todo, preds):
            job, p = jobs[i], parsed[jobs[i].text]
            gen = make_torch_generator(job.seed, "contextual-sample")
            edits = []
            vals, ids = logp
            for slot, v, t in zip(chosen[i], vals, ids):
                w = p.words[slot]
                tid = self._sample(v, t, w.text, gen)
                if tid is not None:
                    edits.append((w.start, w.end, match_case(w.text, self.lm.word_text[tid])))
            out[i] = apply_edits(job.text, edits)
        for i, job in enumerate(jobs):
            stats["noop" if out[i] == job.text else "changed"] += 1
        return out, stats

    def _augment_tinybert(self, jobs: Sequence[Job]):
        import torch

        c, stats = self.config, Counter()
        parsed = self._parse([j.text for j in jobs])
        rows, positions, owners = [], [], []
        candidates: Dict[tuple, List[int]] = {}
        for text in sorted(parsed):
            p = parsed[text]
            for slot in p.slots:
                if len(p.pieces[slot]) == 1:  # single piece: ask the MLM, this word masked alone
                    row, pos = self._row(p, [slot])
                    rows.append(row)
                    positions.append(pos)
                    owners.append((text, slot))
                else:  # multi-piece: nearest neighbours in the input-embedding space
                    query = torch.nn.functional.normalize(
                        self.lm.input_embeddings(p.pieces[slot]), dim=0)
                    sims = self.lm.word_embeddings_unit() @ query
                    scores = torch.full((self.lm.model_vocab,), float("-inf"))
                    scores[self.lm.word_ids] = sims
                    candidates[(text, slot)] = self._top(scores, p.words[slot].text)
        for (text, slot), (vals, ids) in zip(owners, self.lm.predict(
                rows, positions, top=c.top_k + 1, max_tokens=c.max_tokens_per_batch)):
            low = parsed[text].words[slot].text.lower()
            candidates[(text, slot)] = [
                int(i) for v, i in zip(vals[0].tolist(), ids[0].tolist())
                if v != float("-inf") and self.lm.word_text.get(int(i), "").lower() != low
            ][:c.top_k]
        out = []
        for job in jobs:
            p = parsed[job.text]
            stats["truncated"] += p.truncated
            rng = make_rng(job.seed, "contextual-tinybert")
            edits = []
            for slot in p.slots:
                cands = candidates.get((job.text, slot))
                if cands and rng.random() < c.p_t:
                    w = p.words[slot]
                    edits.append((w.start, w.end,
                                  match_case(w.text, self.lm.word_text[rng.choice(cands)])))
            new = apply_edits(job.text, edits)
            stats["noop" if new == job.text else "changed"] += 1
            out.append(new)
        return out, stats

    def _top(self, scores, original: str) -> List[int]:
        """Ids of the top_k whole words by score, the original word excluded, best first."""
        import torch

        low = original.lower()
        vals, idx = torch.topk(scores, min(self.config.top_k + 1, scores.numel()))
        ids = [int(i) for v, i in zip(vals.tolist(), idx.tolist())
               if v != float("-inf") and self.lm.word_text.get(int(i), "").lower() != low]
        return ids[:self.config.top_k]


# this module's augmenter, {name: (config class, factory)}, for the registry (registry.py)
AUGMENTERS = {"contextual": (ContextualConfig, Contextual)}
