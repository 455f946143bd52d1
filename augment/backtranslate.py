"""Back-translation through a pivot language with any pair of seq2seq models (``backtranslate``).

Source -> pivot with ``forward_model``, pivot -> source with ``backward_model`` (e.g.
Helsinki-NLP/opus-mt-en-fr and opus-mt-fr-en; any AutoModelForSeq2SeqLM + AutoTokenizer pair by
name or local path). Long texts are split into sentences, each translated, and the results
rejoined with the original separators. ``mode="beam"``: beam search, deterministic; the backward
decode returns ``num_return_sequences`` paraphrases at once and copy c takes paraphrase
c mod R. ``mode="sample"``: temperature / top-k / top-p sampling drawn per row from CPU
generators seeded by the job (a logits processor does the draw), so a job's paraphrase does not
depend on the batch it ran in; all copies of a text share one encoder pass
(num_return_sequences). A source sentence over ``max_length`` tokens is truncated and counted
(``truncated``); an output whose word count differs from the source's by more than the factor
``max_length_ratio`` is dropped (``length_filtered``) and the job returns its input unchanged.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from distiller.common.errors import UsageError
from distiller.common.device import resolve_device
from distiller.common.seeding import make_torch_generator

from .base import Job, check_choice, check_fraction, check_positive
from .model_files import local_model_digest

__all__ = ["BackTranslationConfig", "BackTranslation", "split_sentences"]

log = logging.getLogger(__name__)
_lock = threading.Lock()
_MODELS: Dict[Tuple[str, str], tuple] = {}
_SENT_RE = re.compile(r"(?<=[.!?])(\s+)(?=\S)")


def split_sentences(text: str) -> Tuple[List[str], List[str]]:
    """(sentences, separators): text == s0 + sep0 + s1 + ... ; splits after . ! ? + space."""
    parts = _SENT_RE.split(text)
    return parts[0::2], parts[1::2]


@dataclasses.dataclass(frozen=True)
class BackTranslationConfig:
    """Config of back-translation; see the module docstring."""

    forward_model: str = ""
    backward_model: str = ""
    mode: str = "beam"                 # "beam" or "sample"
    num_beams: int = 4
    num_return_sequences: int = 4      # beam mode: paraphrases per decode (<= num_beams)
    temperature: float = 1.0           # sample mode
    top_k: int = 0                     # sample mode; 0 = off
    top_p: float = 0.9                 # sample mode
    max_length: int = 256              # source tokens per sentence; longer is truncated, counted
    max_length_ratio: float = 2.0      # drop outputs with word count ratio beyond this
    split_sentences: bool = True
    batch_size: int = 32               # sentences per generate() call
    device: str = "auto"

    def __post_init__(self) -> None:
        for field in ("forward_model", "backward_model"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise UsageError(f"BackTranslationConfig.{field} must name a seq2seq model (HF "
                                 f"name or local path), got {value!r}; e.g. "
                                 "Helsinki-NLP/opus-mt-en-fr and Helsinki-NLP/opus-mt-fr-en")
        check_choice("BackTranslationConfig", "mode", self.mode, ("beam", "sample"))
        for field in ("num_beams", "num_return_sequences", "max_length", "batch_size"):
            check_positive("BackTranslationConfig", field, getattr(self, field))
        check_positive("BackTranslationConfig", "top_k", self.top_k, allow_zero=True)
        check_fraction("BackTranslationConfig", "top_p", self.top_p)
        check_positive("BackTranslationConfig", "temperature", self.temperature, integer=False)
        if self.mode == "beam" and self.num_return_sequences > self.num_beams:
            raise UsageError(f"BackTranslationConfig: num_return_sequences "
                             f"({self.num_return_sequences}) must be <= num_beams "
                             f"({self.num_beams}) in beam mode")
        if not isinstance(self.max_length_ratio, (int, float)) or self.max_length_ratio < 1:
            raise UsageError("BackTranslationConfig.max_length_ratio must be a number >= 1, got "
                             f"{self.max_length_ratio!r}")


def _load(name: str, device: str):
    with _lock:
        key = (name, device)
        if key not in _MODELS:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            dev = resolve_device(device)
            tok = AutoTokenizer.from_pretrained(name)
            model = AutoModelForSeq2SeqLM.from_pretrained(name).to(dev).eval()
            if dev.type == "cuda":
                model = model.half()
            _MODELS[key] = (tok, model, dev)
            log.info("seq2seq model %s loaded on %s", name, dev)
        return _MODELS[key]


def _row_sampler(gens, temperature: float, top_k: int, top_p: float):
    """A logits processor drawing each row's next token with that row's own CPU generator and
    returning scores that allow only the drawn token (so generate() just takes it)."""
    import torch
    from transformers import LogitsProcessor

    class RowSampler(LogitsProcessor):
        def __call__(self, input_ids, scores):
            out = torch.full_like(scores, float("-inf"))
            cpu = scores.float().cpu() / temperature
            for r in range(cpu.shape[0]):
                s = cpu[r]
                if top_k:
                    kth = torch.topk(s, min(top_k, s.numel())).values[-1]
                    s = s.masked_fill(s < kth, float("-inf"))
                probs = torch.softmax(s, dim=-1)
                sp, si = torch.sort(probs, descending=True)
                n = int((torch.cumsum(sp, 0) < top_p).sum()) + 1
                keep = sp[:n] / sp[:n].sum()
                tok = int(si[torch.multinomial(keep, 1, generator=gens[r])])
                out[r, tok] = 0.0
            return out

    return RowSampler()


class BackTranslation:
    """Back-translation augmenter; see the module docstring."""

    VERSION = "backtranslate-1"

    def __init__(self, config: BackTranslationConfig) -> None:
        self.config = config
        self.name = "backtranslate"
        self.counters: Counter = Counter()

    def identity(self) -> Optional[Dict[str, str]]:
        """The local translation models' files, for the policy fingerprint (see
        augment/model_files.py); None when both are hub names."""
        found = {f: local_model_digest(getattr(self.config, f))
                 for f in ("forward_model", "backward_model")}
        return {f: d for f, d in found.items() if d} or None

    def load(self) -> None:
        _load(self.config.forward_model, self.config.device)
        _load(self.config.backward_model, self.config.device)

    def _translate(self, model_name: str, stage: str, groups: List[Tuple[str, List[int]]],
                   n_return: int, stats: Counter) -> List[List[str]]:
        """For each (source, seeds) group: one decode of the source giving len(seeds) outputs
        (sample mode, row r drawn with seeds[r]) or n_return beams (beam mode)."""
        import torch

        c = self.config
        tok, model, dev = _load(model_name, c.device)
        # max length guards: the configured limit, and what the model's positions allow
        limit = min(c.max_length, getattr(model.config, "max_position_embeddings", None)
                    or c.max_length)
        results: List[List[str]] = [[] for _ in groups]
        by_width: Dict[int, List[int]] = defaultdict(list)
        for g, (_, seeds) in enumerate(groups):
            by_width[len(seeds) if c.mode == "sample" else n_return].append(g)
        for width, members in sorted(by_width.items()):
            lengths = {g: len(tok(groups[g][0])["input_ids"]) for g in members}
            members.sort(key=lambda g: (lengths[g], g))
            for start in range(0, len(members), c.batch_size):
                chunk = members[start:start + c.batch_size]
                stats["truncated"] += sum(lengths[g] > limit for g in chunk)
                enc = tok([groups[g][0] for g in chunk], return_tensors="pt", padding=True,
                          truncation=True, max_length=limit).to(dev)
                longest = min(limit, max(lengths[g] for g in chunk))
                # decoder length guard (max_length counts the decoder start token)
                kwargs = dict(max_length=min(int(longest * 1.5) + 10, limit - 1) + 1,
                              num_return_sequences=width)
                if c.mode == "sample":
                    gens = [make_torch_generator(seed, "backtranslate", stage)
                            for g in chunk for seed in groups[g][1]]
                    kwargs.update(do_sample=True, num_beams=1, top_k=0, top_p=1.0,
                                  temperature=1.0, logits_processor=[_row_sampler(
                                      gens, c.temperature, c.top_k, c.top_p)])
                else:
                    kwargs.update(do_sample=False, num_beams=c.num_beams)
                with torch.inference_mode():
                    ids = model.generate(**enc, **kwargs)
                self.counters["generate_calls"] += 1
                texts = tok.batch_decode(ids, skip_special_tokens=True)
                for i, g in enumerate(chunk):
                    results[g] = [t.strip() for t in texts[i * width:(i + 1) * width]]
        return results

    def augment(self, jobs: Sequence[Job]):
        c, stats = self.config, Counter()
        units: List[Tuple[int, int, str]] = []  # (job, sentence index, sentence)
        layout = []
        for j, job in enumerate(jobs):
            sents, seps = split_sentences(job.text) if c.split_sentences else ([job.text], [])
            layout.append(seps)
            units.extend((j, s, sent) for s, sent in enumerate(sents) if sent.strip())
        stats["sentences"] += len(units)
        pivots = self._stage(c.forward_model, units, jobs, "forward", 1, stats)
        back_units = [(j, s, pivots[u]) for u, (j, s, _) in enumerate(units)]
        backs = self._stage(c.backward_model, back_units, jobs, "backward",
                            c.num_return_sequences, stats)
        pieces: Dict[int, Dict[int, str]] = defaultdict(dict)
        for u, (j, s, _) in enumerate(units):
            pieces[j][s] = backs[u]
        out = []
        for j, job in enumerate(jobs):
            if not job.text.strip():
                out.append(job.text)
                stats["noop"] += 1
                continue
            sents, seps = split_sentences(job.text) if c.split_sentences else ([job.text], [])
            new_sents = [pieces[j].get(s, sent) for s, sent in enumerate(sents)]
            new = "".join(x + (seps[i] if i < len(seps) else "") for i, x in enumerate(new_sents))
            n_src, n_new = len(job.text.split()), len(new.split())
            ratio = c.max_length_ratio
            if not n_new or n_new > n_src * ratio or n_src > n_new * ratio:
                stats["length_filtered"] += 1
                new = job.text
            stats["noop" if new == job.text else "changed"] += 1
            out.append(new)
        return out, stats

    def _stage(self, model_name, units, jobs, stage, n_return, stats) -> List[str]:
        """Translate every unit; one decode per distinct source text."""
        groups: Dict[str, List[int]] = defaultdict(list)
        for u, (_, _, text) in enumerate(units):
            groups[text].append(u)
        keys = sorted(groups)
        seeds = [[jobs[units[u][0]].seed * 1000003 + units[u][1] for u in groups[k]]
                 for k in keys]
        decoded = self._translate(model_name, stage, list(zip(keys, seeds)), n_return, stats)
        result = [""] * len(units)
        for k, outs in zip(keys, decoded):
            for r, u in enumerate(groups[k]):
                if self.config.mode == "sample":
                    result[u] = outs[r]
                else:  # beams: copy c takes paraphrase c mod R
                    result[u] = outs[jobs[units[u][0]].copy % len(outs)] if outs else ""
        return result


# this module's augmenter, {name: (config class, factory)}, for the registry (registry.py)
AUGMENTERS = {"backtranslate": (BackTranslationConfig, BackTranslation)}
