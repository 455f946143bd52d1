"""The data layer: teacher-output providers, examples, and per-batch padded batches.

A *provider* is anything with ``get_many(keys) -> list of dicts``
(distiller.builders.cache.reader.CacheReader,
`InMemoryProvider`, `OnlineTeacherProvider`), each dict holding ``input_ids`` [L],
``token_type_ids`` [L], ``logits`` [C], ``hidden`` {layer: [L, H]} and optionally
``attentions`` {layer: [heads, L, L]}. A training *row* is a corpus row of the cache:
``{"id", "key", "label", ...}``; a mixup row also has ``mix_key_a``, ``mix_key_b`` (the
parents' keys), ``mix_lam`` and ``mix_label_b`` and its ``key`` names the teacher's outputs on
the interpolated input (docs/cache.md, "Mixup rows"). A question-answering row is one context
window: its label is the gold [start, end] token positions, ``ctx_start``/``ctx_end``/``cls_index``
say which positions an answer may take, and its teacher logits are [L, 2]. Batches are padded to
their longest example.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch

from distiller.common.errors import UsageError
from distiller.common.seeding import derive_seed

from .forward import logits_of

__all__ = ["InMemoryProvider", "OnlineTeacherProvider", "OnlineTokenProvider", "Batches",
           "batch_lengths",
           "collate", "cache_fetcher", "text_examples", "text_fetcher", "SPAN_FIELDS"]

# as distiller.builders.cache.store stores them
SPAN_FIELDS = ("window", "ctx_start", "ctx_end", "ctx_first", "cls_index")


def _t(x, dtype=None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    return t.to(dtype) if dtype is not None else t


class InMemoryProvider:
    """Teacher outputs held in a dict key -> outputs (tests, small experiments)."""

    def __init__(self, outputs: Mapping[str, Mapping[str, Any]]):
        self.outputs = dict(outputs)

    def __len__(self) -> int:
        return len(self.outputs)

    def get_many(self, keys: Sequence[str]) -> List[Mapping[str, Any]]:
        missing = [k for k in keys if k not in self.outputs]
        if missing:
            raise KeyError(f"{len(missing)} keys are not in the provider, e.g. {missing[0]!r}")
        return [self.outputs[k] for k in keys]

    def lengths(self, keys: Sequence[str]) -> List[int]:
        return [len(o["input_ids"]) for o in self.get_many(keys)]


class OnlineTeacherProvider:
    """Runs the teacher on each requested batch (the study's online setting): the baseline of the
    cache parity test and of the benchmark. `texts` maps key -> (text_a, text_b)."""

    def __init__(self, model, tokenizer, texts: Mapping[str, Tuple[str, Optional[str]]], *,
                 max_length: int = 128, layers: Optional[Sequence[int]] = None,
                 attentions: bool = False, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.tokenizer, self.texts, self.max_length = tokenizer, texts, max_length
        self.layers, self.attentions, self.device = layers, attentions, device

    def lengths(self, keys: Sequence[str]) -> List[int]:
        """Token lengths of `keys`' texts, as get_many would encode them (no teacher run)."""
        return [len(self.tokenizer(*self.texts[k], truncation=True,
                                   max_length=self.max_length)["input_ids"]) for k in keys]

    @torch.no_grad()
    def get_many(self, keys: Sequence[str]) -> List[Dict[str, Any]]:
        pairs = [self.texts[k] for k in keys]
        a = [p[0] for p in pairs]
        b = [p[1] for p in pairs] if pairs and pairs[0][1] is not None else None
        enc = self.tokenizer(a, b, truncation=True, max_length=self.max_length, padding=True,
                             return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        out = self.model(**enc, output_hidden_states=True, output_attentions=self.attentions)
        layers = range(len(out.hidden_states)) if self.layers is None else self.layers
        result = []
        for i, n in enumerate(enc["attention_mask"].sum(1).tolist()):
            item = {"input_ids": enc["input_ids"][i, :n].cpu(),
                    "token_type_ids": enc.get("token_type_ids",
                                              torch.zeros_like(enc["input_ids"]))[i, :n].cpu(),
                    "logits": out.logits[i].float().cpu(),
                    "hidden": {j: out.hidden_states[j][i, :n].float().cpu() for j in layers}}
            if self.attentions:
                item["attentions"] = {j: out.attentions[j - 1][i, :, :n, :n].float().cpu()
                                      for j in layers if j > 0}
            result.append(item)
        return result


class OnlineTokenProvider:
    """Runs a teacher on token ids it is given (key -> (input_ids, token_type_ids)): the online
    baseline for inputs the builder tokenized itself, such as question-answering windows.
    Logits are [C], or [L, 2] (start, end) for a question-answering model."""

    def __init__(self, model, tokens: Mapping[str, Tuple[Sequence[int], Sequence[int]]], *,
                 pad_id: int = 0, device: str = "cpu"):
        self.model, self.tokens = model.eval().to(device), tokens
        self.pad_id, self.device = pad_id, device

    def lengths(self, keys: Sequence[str]) -> List[int]:
        return [len(self.tokens[k][0]) for k in keys]

    @torch.no_grad()
    def get_many(self, keys: Sequence[str]) -> List[Dict[str, Any]]:
        ids = [_t(self.tokens[k][0], torch.long) for k in keys]
        tts = [_t(self.tokens[k][1], torch.long) for k in keys]
        width = max(len(x) for x in ids)
        mask = _pad([torch.ones(len(x), dtype=torch.long) for x in ids], width)
        out = self.model(input_ids=_pad(ids, width, self.pad_id).to(self.device),
                         token_type_ids=_pad(tts, width).to(self.device),
                         attention_mask=mask.to(self.device), output_hidden_states=True)
        logits = logits_of(out).float().cpu()
        result = []
        for i, x in enumerate(ids):
            n = len(x)
            result.append({"input_ids": x, "token_type_ids": tts[i],
                           "logits": logits[i, :n] if logits.dim() == 3 else logits[i],
                           "hidden": {j: h[i, :n].float().cpu()
                                      for j, h in enumerate(out.hidden_states)}})
        return result


def _pad(seqs: Sequence[torch.Tensor], length: int, value=0) -> torch.Tensor:
    out = torch.full((len(seqs), length) + tuple(seqs[0].shape[1:]), value, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, :s.shape[0]] = s
    return out


def collate(items: Sequence[Mapping[str, Any]], *, pad_id: int = 0,
            layers: Sequence[int] = (), attn_layers: Sequence[int] = ()) -> Dict[str, Any]:
    """Pad a list of examples to their longest one.

    Each item: input_ids [L], token_type_ids [L], label; optionally logits [C], hidden {l: [L,H]},
    attentions {l: [h,L,L]}, and for mixup mix_ids_b [L_b], mix_lam, mix_label_b.
    Returns input_ids/attention_mask/token_type_ids [B, Lb] (Long), labels [B], and when present
    teacher_logits [B, C], teacher_hidden {l: [B, Lb, H]}, teacher_attn {l: [B, h, Lb, Lb]},
    mix_ids_b [B, Lb], mix_mask_b [B, Lb], mix_lam [B], mix_label_b [B].
    Question-answering windows (items with ctx_start): labels [B, 2] (-100 unlabelled),
    span_mask [B, Lb] bool (context tokens and [CLS]), teacher_logits [B, Lb, 2].
    """
    ids = [_t(it["input_ids"], torch.long) for it in items]
    lens_b = [len(it["mix_ids_b"]) for it in items if it.get("mix_ids_b") is not None]
    length = max([len(x) for x in ids] + lens_b)
    batch: Dict[str, Any] = {
        "input_ids": _pad(ids, length, pad_id),
        "attention_mask": _pad([torch.ones(len(x), dtype=torch.long) for x in ids], length),
        "token_type_ids": _pad([_t(it["token_type_ids"], torch.long) for it in items], length),
    }
    labels = [it["label"] for it in items]
    span = "ctx_start" in items[0]
    if span:
        batch["labels"] = torch.tensor([[-100, -100] if y is None else [int(v) for v in y]
                                        for y in labels], dtype=torch.long)
        allowed = torch.zeros(len(items), length, dtype=torch.bool)
        for i, it in enumerate(items):
            allowed[i, int(it["ctx_start"]):int(it["ctx_end"])] = True
            allowed[i, int(it["cls_index"])] = True
        batch["span_mask"] = allowed
    elif any(isinstance(y, float) for y in labels):  # regression
        batch["labels"] = torch.tensor([float("nan") if y is None else float(y) for y in labels])
    else:
        batch["labels"] = torch.tensor([-100 if y is None else int(y) for y in labels])
    if "logits" in items[0] and span:
        batch["teacher_logits"] = _pad([_t(it["logits"], torch.float32) for it in items],
                                       length, 0.0)
    elif "logits" in items[0]:
        batch["teacher_logits"] = torch.stack([_t(it["logits"], torch.float32) for it in items])
    if layers:
        batch["teacher_hidden"] = {l: _pad([_t(it["hidden"][l], torch.float32) for it in items],
                                           length, 0.0) for l in layers}
    if attn_layers:
        batch["teacher_attn"] = {}
        for l in attn_layers:
            maps = [_t(it["attentions"][l], torch.float32) for it in items]
            out = torch.zeros(len(maps), maps[0].shape[0], length, length)
            for i, m in enumerate(maps):
                out[i, :, :m.shape[1], :m.shape[2]] = m
            batch["teacher_attn"][l] = out
    if lens_b:
        # Rows without a partner mix with themselves at lam = 1 (an exact no-op).
        ids_b = [_t(it["mix_ids_b"], torch.long) if it.get("mix_ids_b") is not None else ids[i]
                 for i, it in enumerate(items)]
        tt_b = [_t(it["mix_tt_b"], torch.long) if it.get("mix_ids_b") is not None
                else _t(it["token_type_ids"], torch.long) for it in items]
        batch["mix_ids_b"] = _pad(ids_b, length, pad_id)
        mask_b = _pad([torch.ones(len(x), dtype=torch.long) for x in ids_b], length)
        tt_b = _pad(tt_b, length)
        mask_a = batch["attention_mask"]
        batch["token_type_ids"] = torch.where(mask_a.bool(), batch["token_type_ids"], tt_b)
        batch["attention_mask"] = torch.maximum(mask_a, mask_b)
        batch["mix_lam"] = torch.tensor([float(it.get("mix_lam", 1.0)) for it in items])
        batch["mix_label_b"] = torch.tensor(
            [it["mix_label_b"] if it.get("mix_ids_b") is not None else it["label"]
             for it in items], dtype=batch["labels"].dtype)
    return batch


def _check_ids(rows: Sequence[Mapping], items: Sequence[Mapping], vocab_size: int) -> None:
    for row, item in zip(rows, items):
        for field in ("input_ids", "mix_ids_b"):
            ids = item.get(field)
            if ids is not None and len(ids) and int(max(ids)) >= vocab_size:
                raise UsageError(f"cache row {row['key']} holds token id {int(max(ids))} but the "
                                 f"student embeds only {vocab_size} ids: use a student with the "
                                 "teacher's tokenizer")


def cache_fetcher(provider, *, pad_id: int = 0, layers: Sequence[int] = (),
                  attn_layers: Sequence[int] = (), vocab_size: Optional[int] = None
                  ) -> Callable[[Sequence[Mapping]], Dict[str, Any]]:
    """rows -> padded batch, reading teacher outputs (and mixup parents' ids) from `provider`;
    with `vocab_size`, a token id the student cannot embed is a clear error, not an IndexError
    deep in the embedding layer."""
    def fetch(rows: Sequence[Mapping]) -> Dict[str, Any]:
        outputs = provider.get_many([r["key"] for r in rows])
        mixed = [i for i, r in enumerate(rows) if r.get("mix_key_a")]
        parents: Dict[str, Mapping] = {}
        if mixed:
            need = sorted({rows[i][k] for i in mixed for k in ("mix_key_a", "mix_key_b")})
            parents = dict(zip(need, provider.get_many(need)))
        items = []
        for i, (row, out) in enumerate(zip(rows, outputs)):
            item = dict(out, label=row.get("label"))
            item.update({f: row[f] for f in SPAN_FIELDS if f in row})
            if row.get("mix_key_a"):
                pa, pb = parents[row["mix_key_a"]], parents[row["mix_key_b"]]
                item.update(input_ids=pa["input_ids"], token_type_ids=pa["token_type_ids"],
                            mix_ids_b=pb["input_ids"], mix_tt_b=pb["token_type_ids"],
                            mix_lam=float(row["mix_lam"]), mix_label_b=row["mix_label_b"])
            items.append(item)
        if vocab_size is not None:
            _check_ids(rows, items, vocab_size)
        return collate(items, pad_id=pad_id, layers=layers, attn_layers=attn_layers)
    return fetch


def text_examples(records: Sequence[Mapping], tokenizer, max_length: int) -> List[Dict[str, Any]]:
    """Tokenise records (text_a, text_b, label) once: rows for `Batches` without a teacher."""
    out = []
    for r in records:
        enc = tokenizer(r["text_a"], r.get("text_b"), truncation=True, max_length=max_length)
        out.append({"id": r["id"], "label": r["label"], "input_ids": enc["input_ids"],
                    "token_type_ids": enc.get("token_type_ids", [0] * len(enc["input_ids"]))})
    return out


class Batches:
    """Iterates rows in batches: shuffled per epoch from (seed, epoch) only, so an epoch's order is
    the same after a resume; `fetch` turns a list of rows into a padded batch.

    lengths (one per row, e.g. token counts): shuffled batches of near-equal length. Each window
    of `GROUP_WINDOW` batches of the epoch's random order is sorted by length and cut into
    batches; the full batches then come in random order, the longest first (a batch too big for
    the device fails at once, not hours in), a short last batch last. A batch is padded to its
    longest row, so on varied texts this spends far fewer steps' compute on padding.

    prefetch: fetch the next batch on a background thread while the caller trains on this one.
    Only for fetchers that read and decode (the cache reader: pyarrow and torch copies release
    the GIL); a fetcher that computes (an online teacher) would only fight the training step for
    the same cores. Batches and their order are the same either way."""

    GROUP_WINDOW = 50   # batches per sorted window: large enough to pad little, small enough
    # that a window still mixes rows from all over the corpus

    def __init__(self, rows: Sequence[Mapping], fetch: Callable[[Sequence[Mapping]], Dict],
                 *, batch_size: int, shuffle: bool, seed: int = 0, prefetch: bool = False,
                 lengths: Optional[Sequence[int]] = None):
        if not rows:
            raise UsageError("no examples to iterate over (empty corpus?)")
        self.rows, self.fetch = list(rows), fetch
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.prefetch = prefetch
        if lengths is not None and len(lengths) != len(self.rows):
            raise ValueError(f"{len(lengths)} lengths for {len(self.rows)} rows")
        self.lengths = None if lengths is None else [int(n) for n in lengths]

    def __len__(self) -> int:
        return (len(self.rows) + self.batch_size - 1) // self.batch_size

    def order(self, epoch: int) -> List[int]:
        if not self.shuffle:
            return list(range(len(self.rows)))
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "order", epoch))
        order = torch.randperm(len(self.rows), generator=gen).tolist()
        if self.lengths is None:
            return order
        return self._grouped(order, epoch)

    def _grouped(self, order: List[int], epoch: int) -> List[int]:
        size, lengths = self.batch_size, self.lengths
        window = size * self.GROUP_WINDOW
        batches: List[List[int]] = []
        for start in range(0, len(order), window):
            part = sorted(order[start:start + window], key=lambda i: -lengths[i])  # stable
            batches.extend(part[s:s + size] for s in range(0, len(part), size))
        tail = [batches.pop()] if len(batches[-1]) < size else []
        if batches:
            longest = max(range(len(batches)), key=lambda b: lengths[batches[b][0]])
            first = batches.pop(longest)
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "batches", epoch))
            batches = [first] + [batches[b] for b in
                                 torch.randperm(len(batches), generator=gen).tolist()]
        return [i for batch in batches + tail for i in batch]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Tuple[List[Mapping], Dict[str, Any]]]:
        """(rows, batch) pairs of one epoch, skipping the first `skip` batches (resume)."""
        order = self.order(epoch)
        chunks = ([self.rows[i] for i in order[start:start + self.batch_size]]
                  for start in range(skip * self.batch_size, len(order), self.batch_size))
        if not self.prefetch:
            for rows in chunks:
                yield rows, self.fetch(rows)
            return
        from concurrent.futures import ThreadPoolExecutor

        # One fetch in flight at most; leaving the loop early waits for it (pool shutdown), so
        # no fetch outlives the epoch.
        with ThreadPoolExecutor(1, thread_name_prefix="distiller-prefetch") as pool:
            pending = None
            for rows in chunks:
                future = pool.submit(self.fetch, rows)
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = (rows, future)
            if pending is not None:
                yield pending[0], pending[1].result()


def batch_lengths(batching: str, rows: Sequence[Mapping], provider=None) -> Optional[List[int]]:
    """The `lengths` of Batches for a run's `batching` setting: None for random batches; for
    length-grouped ones each row's token count, from the row itself (rows tokenized for a
    fine-tuning run) or from the provider's `lengths(keys)` (a cache reads them from its index)."""
    if batching != "length":
        return None
    if "input_ids" in rows[0]:
        return [len(r["input_ids"]) for r in rows]
    lengths = getattr(provider, "lengths", None)
    if lengths is None:
        raise UsageError("batching=length needs each row's token count, which this teacher "
                         "source cannot give without running the teacher; use batching=random")
    return lengths([r["key"] for r in rows])


def text_fetcher(pad_id: int = 0) -> Callable[[Sequence[Mapping]], Dict[str, Any]]:
    """rows from `text_examples` -> padded batch (no teacher outputs)."""
    return lambda rows: collate(rows, pad_id=pad_id)
