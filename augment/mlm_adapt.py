"""Turn an encoder without a masked-LM head into a masked LM (`distiller mlm-adapt`).

Sentence encoders and domain encoders often ship without their MLM head, and the contextual
augmenter needs one. This loads the encoder with a fresh BERT-style head
(``AutoModelForMaskedLM``: dense + GELU + LayerNorm, then a decoder over the vocabulary that is
tied to the input embeddings where the architecture allows), starts the decoder's bias at the
corpus's log unigram frequencies (the head's best guess before it has learned anything), and
trains head and encoder (the embeddings and the first K layers optionally frozen) on masked
tokens of a text corpus (augment.mlm_data). The loss and the vocabulary projection run at the
masked positions only, which halves the cost of a step for a small encoder and a 30k vocabulary.

Every `eval_every` steps and at the end of each epoch the held-out texts are scored with fixed
masks: masked-token top-1 / top-5 accuracy and loss, logged with the wall and CPU minutes spent,
beside the unigram baseline (always guessing the most frequent tokens). Checkpoints
(OUTPUT/checkpoint.pt: model, optimizer, schedule, loop position and the torch RNG) are written
atomically every `save_every` steps and at each epoch end; the batches and masks of a step depend
only on (seed, epoch, position), so a run killed and run again ends with the same weights as one
never interrupted. At the end OUTPUT holds a standard checkpoint (`save_pretrained` + tokenizer)
that ``contextual(model=OUTPUT)`` loads, plus mlm_adapt.json (config, corpus counts, the eval
curve) and metrics.jsonl (the log).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional

from .mlm_data import IGNORE, Corpus, MaskingConfig, apply_masks, epoch_batches, example_rng
from .mlm_heldout import Encoded, HeldOut, masked_logits, pad_rows, random_ids
from .mlm_model import lm_head
from .mlm_runfiles import CHECKPOINT_FILE, RESULT_FILE, log_event, prepare_output, \
    remove_checkpoint, save_checkpoint, write_json
from .seeding import derive_seed, stable_hash

__all__ = ["MlmAdaptConfig", "adapt", "load_masked_lm", "freeze"]

log = logging.getLogger(__name__)
VERSION = "mlm-adapt-1"
# settings that change how a run is watched, not what it computes
_NOT_IN_FINGERPRINT = ("output", "eval_every", "save_every", "log_every", "progress", "fresh")


@dataclasses.dataclass(frozen=True)
class MlmAdaptConfig:
    """What `adapt` trains; see the module docstring. lr: the encoder's learning rate (AdamW,
    linear warm-up over warmup_ratio of the steps, then linear decay to 0); head_lr: the new
    head's (None: 10 × lr); freeze_up_to: None trains everything, K >= 0 freezes the embeddings
    (a tied decoder's weights with them) and encoder layers 1..K; max_steps: stop there (the
    schedule spans it) instead of after `epochs`."""

    encoder: str
    output: str
    masking: MaskingConfig = MaskingConfig()
    max_length: int = 128
    batch_size: int = 32
    epochs: int = 1
    max_steps: Optional[int] = None
    lr: float = 1e-4
    head_lr: Optional[float] = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    freeze_up_to: Optional[int] = None
    unigram_bias: bool = True
    seed: int = 0
    eval_every: Optional[int] = None
    save_every: int = 200
    log_every: int = 50
    progress: bool = True
    fresh: bool = False

    def __post_init__(self) -> None:
        for name in ("max_length", "batch_size", "epochs", "save_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"mlm-adapt {name} must be an integer >= 1, got {value!r}")
        for name in ("max_steps", "eval_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"mlm-adapt {name} must be an integer >= 1, got {value!r}")
        if self.max_length < 3:
            raise ValueError(f"mlm-adapt max_length must be >= 3, got {self.max_length}")
        for name in ("lr", "head_lr"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ValueError(f"mlm-adapt {name} must be a number in (0, 1), got {value!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"mlm-adapt warmup_ratio must be in [0, 1), got "
                             f"{self.warmup_ratio}")
        if self.freeze_up_to is not None and self.freeze_up_to < 0:
            raise ValueError(f"mlm-adapt freeze_up_to must be >= 0 (0: the embeddings only), "
                             f"got {self.freeze_up_to}")
        if os.path.abspath(self.output) == os.path.abspath(self.encoder):
            raise ValueError("--output must not be the encoder's own directory")

    def fingerprint(self, corpus: Corpus) -> str:
        """Changes with anything that changes the trained weights or the held-out figures."""
        settings = {k: v for k, v in dataclasses.asdict(self).items()
                    if k not in _NOT_IN_FINGERPRINT}
        return stable_hash(VERSION, json.dumps(settings, sort_keys=True, default=str),
                           tuple(corpus.train), tuple(corpus.held_out))


# ------------------------------------------------------------------------------ model
def load_masked_lm(encoder: str, seed: int):
    """(model, tokenizer, names of the tensors the checkpoint lacked) for an encoder loaded as a
    masked LM with a fresh head, the decoder tied to the input embeddings where it can be."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(encoder)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load a tokenizer from {encoder!r}: {exc}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{encoder!r} has no fast tokenizer (tokenizer.json): word boundaries "
                         "are needed for whole-word masking and by the contextual augmenter")
    if tokenizer.mask_token_id is None:
        raise ValueError(f"the tokenizer of {encoder!r} has no mask token: it cannot be trained "
                         "as a masked LM")
    torch.manual_seed(derive_seed(seed, "mlm-head-init"))  # the fresh head's initial weights
    try:
        with quiet_transformers():  # the load report lists the (expected) new head
            model, info = AutoModelForMaskedLM.from_pretrained(
                encoder, tie_word_embeddings=True, output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot load {encoder!r} as a masked LM: {exc}") from None
    prefix = model.base_model_prefix + "."
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefix))
    body_missing = sorted(k for k in info.get("missing_keys", ()) if k.startswith(prefix))
    if body_missing:
        raise ValueError(f"{encoder!r} lacks encoder weights ({body_missing[:4]} ...): it is not "
                         "a trained encoder of this architecture")
    return model, tokenizer, missing


@contextlib.contextmanager
def quiet_transformers():
    """No load report and no progress bars from transformers inside (restored after)."""
    import transformers
    from transformers.utils import logging as hf_logging

    verbosity = transformers.logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def is_tied(model) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def freeze(model, up_to: Optional[int]) -> int:
    """Freeze the embeddings and encoder layers 1..up_to; returns the frozen parameter count."""
    import torch

    if up_to is None:
        return 0
    body = model.base_model
    n_layers = model.config.num_hidden_layers
    if up_to > n_layers:
        raise ValueError(f"--freeze-up-to {up_to}: the encoder has only {n_layers} layers")
    layers = next((m for m in body.modules() if isinstance(m, torch.nn.ModuleList)
                   and len(m) == n_layers), None)
    embeddings = getattr(body, "embeddings", None) or model.get_input_embeddings()
    if layers is None:
        raise ValueError(f"cannot find the {n_layers} encoder layers of "
                         f"{type(model).__name__} to freeze; train without --freeze-up-to")
    frozen = 0
    for module in [embeddings] + list(layers[:up_to]):
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def _optimizer(model, config: MlmAdaptConfig, total_steps: int):
    import torch

    prefix = model.base_model_prefix + "."
    groups: Dict[tuple, List] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = not name.startswith(prefix)
        no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((is_head, no_decay), []).append(p)
    head_lr = config.head_lr if config.head_lr is not None else 10 * config.lr
    params = [{"params": ps, "lr": head_lr if is_head else config.lr,
               "weight_decay": 0.0 if no_decay else config.weight_decay}
              for (is_head, no_decay), ps in sorted(groups.items())]
    opt = torch.optim.AdamW(params)
    warmup = int(config.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


# ------------------------------------------------------------------------------ the loop
def _unigram_counts(encoded: Encoded, vocab_size: int, special):
    import torch

    counts = torch.zeros(vocab_size)
    flat = torch.tensor([t for ids in encoded.ids for t in ids], dtype=torch.long)
    counts.index_add_(0, flat, torch.ones(len(flat)))
    counts[list(special)] = 0
    return counts


def _start_bias(model, counts) -> bool:
    """Set the fresh decoder bias to log unigram frequencies (add-0.5 smoothed)."""
    import torch

    out = model.get_output_embeddings()
    bias = getattr(out, "bias", None)
    if bias is None or bias.shape[0] != counts.shape[0]:
        return False
    with torch.no_grad():
        bias.copy_(torch.log((counts + 0.5) / (counts.sum() + 0.5 * counts.shape[0])))
    return True


def adapt(config: MlmAdaptConfig, corpus: Corpus,
          on_step: Optional[Callable[[int, float], None]] = None) -> Dict[str, Any]:
    """Train (or resume, or find done) the masked LM; returns the result (also in
    OUTPUT/mlm_adapt.json). on_step(step, loss) is called after every optimizer step."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    fingerprint = config.fingerprint(corpus)
    done = prepare_output(config, fingerprint)
    if done is not None:
        log.info("%s: already built by this very run (fingerprint %s)", config.output,
                 fingerprint[:12])
        return dict(done, reused=True)
    model, tokenizer, fresh_head = load_masked_lm(config.encoder, config.seed)
    head = lm_head(model)
    tied = is_tied(model)
    frozen = freeze(model, config.freeze_up_to)
    encoded = Encoded(tokenizer, corpus.train, config.max_length, config.masking.whole_word)
    special = set(tokenizer.all_special_ids)
    vocab = model.get_input_embeddings().weight.shape[0]
    counts = _unigram_counts(encoded, vocab, special)
    held_out = HeldOut(tokenizer, corpus.held_out, config)
    baseline = held_out.baseline(counts)
    if config.unigram_bias and any("bias" in k for k in fresh_head):
        _start_bias(model, counts)
    replacements = random_ids(tokenizer)
    per_epoch = math.ceil(len(encoded.ids) / config.batch_size)
    total = config.max_steps or config.epochs * per_epoch
    optimizer, scheduler = _optimizer(model, config, total)
    ckpt = os.path.join(config.output, CHECKPOINT_FILE)
    state: Dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "wall_s": 0.0, "cpu_s": 0.0,
                             "history": [], "fingerprint": fingerprint}
    if os.path.exists(ckpt):
        payload = torch.load(ckpt, map_location="cpu", weights_only=False)
        if payload["state"].get("fingerprint") != fingerprint:
            raise ValueError(f"{config.output} holds a checkpoint of another mlm-adapt run "
                             "(other settings or corpus); use another --output, or --fresh to "
                             "start over")
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"])
        state = payload["state"]
        log.info("resuming %s at step %d of %d", config.output, state["step"], total)
        log_event(config.output, {"event": "resume", "step": state["step"]})
    else:
        log_event(config.output, {"event": "start", "fingerprint": fingerprint, "steps": total,
                             "train_texts": len(encoded.ids), "baseline": baseline})
    t0, c0 = time.perf_counter() - state["wall_s"], time.process_time() - state["cpu_s"]

    def clock() -> None:
        state["wall_s"] = time.perf_counter() - t0
        state["cpu_s"] = time.process_time() - c0

    def evaluate(reason: str) -> None:
        scores = held_out.score(model, head)
        clock()
        entry = {"step": state["step"], "epoch": state["epoch"], "reason": reason, **scores,
                 "minutes": state["wall_s"] / 60, "cpu_minutes": state["cpu_s"] / 60}
        state["history"].append(entry)
        log_event(config.output, {"event": "eval", **entry})
        log.info("step %d: held-out top-1 %.2f%% top-5 %.2f%%", state["step"], scores["top1"],
                 scores["top5"])

    def checkpoint() -> None:
        clock()
        save_checkpoint(ckpt, state, model, optimizer, scheduler)

    if state["step"] == 0 and not state["history"]:
        evaluate("start")
    model.train()
    bar = tqdm(total=total, initial=state["step"], desc="mlm-adapt", unit="step",
               disable=not config.progress)
    window: List[float] = []
    while state["step"] < total:
        batches = epoch_batches(encoded.lengths, config.batch_size, config.seed, state["epoch"])
        for index in batches[state["batch"]:]:
            rows = [apply_masks(encoded.ids[i], encoded.units[i], config.masking,
                                example_rng(config.seed, "mlm-train", state["epoch"], i),
                                mask_id=tokenizer.mask_token_id, random_ids=replacements)
                    for i in index]
            ids, attention = pad_rows([r[0] for r in rows], tokenizer.pad_token_id or 0)
            labels, _ = pad_rows([r[1] for r in rows], IGNORE)
            state["batch"] += 1
            if bool((labels != IGNORE).any()):  # a batch of short texts may mask nothing
                logits, gold = masked_logits(model, head, ids, attention, labels)
                loss = F.cross_entropy(logits, gold)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], config.max_grad_norm)
                optimizer.step()
                window.append(loss.item())
            scheduler.step()
            state["step"] += 1
            bar.update(1)
            if window:
                bar.set_postfix(loss=f"{sum(window[-20:]) / len(window[-20:]):.3f}")
            if on_step is not None:
                on_step(state["step"], window[-1] if window else float("nan"))
            if state["step"] % config.log_every == 0 and window:
                log_event(config.output, {"event": "train", "step": state["step"],
                                     "loss": sum(window) / len(window),
                                     "lr": scheduler.get_last_lr()[-1]})
                window = []
            if config.eval_every and state["step"] % config.eval_every == 0:
                evaluate("every")
            if state["step"] >= total:
                break
            if state["step"] % config.save_every == 0:
                checkpoint()
        if state["batch"] >= len(batches):
            state["epoch"] += 1
            state["batch"] = 0
            if state["step"] < total:
                if not (config.eval_every and state["step"] % config.eval_every == 0):
                    evaluate("epoch")
                checkpoint()
    bar.close()
    if state["history"][-1]["step"] != state["step"]:
        evaluate("end")
    return _finish(config, model, tokenizer, state, corpus, baseline, dict(
        fresh_head=fresh_head, tied=tied, frozen_parameters=frozen, steps=total,
        steps_per_epoch=per_epoch))


def _finish(config: MlmAdaptConfig, model, tokenizer, state, corpus: Corpus, baseline,
            facts: Dict[str, Any]) -> Dict[str, Any]:
    """Save the model and tokenizer into OUTPUT, then the result (the completion marker)."""
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix=".mlm-adapt-", dir=config.output)
    try:
        with quiet_transformers():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        files = sorted(os.listdir(tmp))
        umask = os.umask(0)
        os.umask(umask)
        for name in files:  # some writers create 0600 files: make them as readable as others
            os.chmod(os.path.join(tmp, name), 0o666 & ~umask)
            os.replace(os.path.join(tmp, name), os.path.join(config.output, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    settings = dataclasses.asdict(config)
    result = {"fingerprint": state["fingerprint"], "config": settings, "corpus": corpus.stats,
              "dead_letters": corpus.dead_letters, "unigram_baseline": baseline,
              "final": state["history"][-1], "history": state["history"],
              "minutes": state["wall_s"] / 60, "cpu_minutes": state["cpu_s"] / 60,
              "files": files, **facts}
    write_json(os.path.join(config.output, RESULT_FILE), result)
    log_event(config.output, {"event": "done", "final": result["final"]})
    remove_checkpoint(config.output)
    return result
