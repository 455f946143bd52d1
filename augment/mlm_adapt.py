"""Turn an encoder without a masked-LM head into a masked LM (`distiller mlm-adapt`).

Sentence encoders and domain encoders often ship without their MLM head, and the contextual
augmenter needs one. This loads the encoder with a fresh BERT-style head
(``AutoModelForMaskedLM``: dense + GELU + LayerNorm, then a decoder over the vocabulary that is
tied to the input embeddings where the architecture allows), starts the decoder's bias at the
corpus's log unigram frequencies (the head's best guess before it has learned anything), and
trains head and encoder (the embeddings and the first K layers optionally frozen) on masked
tokens of a text corpus (distiller.augment.mlm_data). The loss and the vocabulary projection run at
the masked positions only, which halves the cost of a step for a small encoder and a 30k vocabulary.

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

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from tqdm import tqdm

from distiller.common.config import Allowed, Rule, Wording, setting, validate
from distiller.common.errors import UsageError
from distiller.common.device import resolve_device
from distiller.common.files import replace_durably
from distiller.common.seeding import stable_hash

from .mlm_data import IGNORE, Corpus, MaskingConfig, apply_masks, epoch_batches, example_rng
from .mlm_heldout import Encoded, HeldOut, masked_logits, pad_rows, random_ids
from .mlm_model import autocast, lm_head
from .mlm_setup import freeze, is_tied, load_masked_lm, make_optimizer, quiet_transformers
from .mlm_runfiles import CHECKPOINT_FILE, RESULT_FILE, load_checkpoint, log_event, \
    prepare_output, remove_checkpoint, save_checkpoint, write_json

__all__ = ["MlmAdaptConfig", "adapt", "load_masked_lm", "freeze"]

log = logging.getLogger(__name__)
VERSION = "mlm-adapt-1"
# settings that change how a run is watched, not what it computes
# (device too: a run may resume on another one; the weights then match to rounding only)
_NOT_IN_FINGERPRINT = ("output", "eval_every", "save_every", "log_every", "progress", "fresh",
                       "device")


_COUNT = Allowed(kind="int", low=1)
_RATE = Allowed(kind="number", low=0, high=1, low_open=True, high_open=True)
WORDING = Wording(field="mlm-adapt setting {key!r}", whole="mlm-adapt")
RULES = (
    Rule("a new output", key="output",
         holds=lambda c: os.path.abspath(c.output) != os.path.abspath(c.encoder),
         says="expected a directory other than the encoder's own (--output, --encoder)"),
)


@dataclasses.dataclass(frozen=True)
class MlmAdaptConfig:
    """What `adapt` trains; see the module docstring. lr: the encoder's learning rate (AdamW,
    linear warm-up over warmup_ratio of the steps, then linear decay to 0); head_lr: the new
    head's (None: 10 × lr); freeze_up_to: None trains everything, K >= 0 freezes the embeddings
    (a tied decoder's weights with them) and encoder layers 1..K; max_steps: stop there (the
    schedule spans it) instead of after `epochs`; device: "auto" (a GPU when there is one, with
    bfloat16 autocast), "cpu" or "cuda[:N]". Each field declares what it may hold
    (distiller.common.config); `RULES` (above) the rules between fields."""

    encoder: str = setting(kind="path")
    output: str = setting(kind="path")
    masking: MaskingConfig = MaskingConfig()
    max_length: int = setting(128, kind="int", low=3)
    batch_size: int = setting(32, _COUNT)
    epochs: int = setting(1, _COUNT)
    max_steps: Optional[int] = setting(None, _COUNT, optional=True)
    lr: float = setting(1e-4, _RATE)
    head_lr: Optional[float] = setting(None, _RATE, optional=True)
    weight_decay: float = setting(0.01, kind="number", low=0)
    warmup_ratio: float = setting(0.06, kind="number", low=0, high=1, high_open=True)
    max_grad_norm: float = setting(1.0, kind="number", low=0, low_open=True)
    # None trains everything; K >= 0 freezes the embeddings (0) and layers 1..K
    freeze_up_to: Optional[int] = setting(None, kind="int", low=0, optional=True)
    unigram_bias: bool = setting(True, kind="bool")
    seed: int = setting(0, kind="int")
    eval_every: Optional[int] = setting(None, _COUNT, optional=True)
    save_every: int = setting(200, _COUNT)
    log_every: int = setting(50, _COUNT)
    progress: bool = setting(True, kind="bool")
    fresh: bool = setting(False, kind="bool")
    device: str = setting("auto", kind="str")

    def __post_init__(self) -> None:
        validate(self, RULES, WORDING)   # each field as declared, then the rules below

    def fingerprint(self, corpus: Corpus) -> str:
        """Changes with anything that changes the trained weights or the held-out figures."""
        settings = {k: v for k, v in dataclasses.asdict(self).items()
                    if k not in _NOT_IN_FINGERPRINT}
        return stable_hash(VERSION, json.dumps(settings, sort_keys=True, default=str),
                           tuple(corpus.train), tuple(corpus.held_out))


# ------------------------------------------------------------------------------ the loop
def adapt(config: MlmAdaptConfig, corpus: Corpus,
          on_step: Optional[Callable[[int, float], None]] = None) -> Dict[str, Any]:
    """Train (or resume, or find done) the masked LM; returns the result (also in
    OUTPUT/mlm_adapt.json). on_step(step, loss) is called after every optimizer step."""
    fingerprint = config.fingerprint(corpus)
    done = prepare_output(config, fingerprint)
    if done is not None:
        log.info("%s: already built by this very run (fingerprint %s)", config.output,
                 fingerprint[:12])
        return dict(done, reused=True)
    run = _set_up(config, corpus, fingerprint, on_step)
    _start_or_resume(run)
    if run.state["step"] == 0 and not run.state["history"]:
        _evaluate(run, "start")
    _train(run)
    if run.state["history"][-1]["step"] != run.state["step"]:
        _evaluate(run, "end")
    return _finish(config, run.model, run.tokenizer, run.state, corpus, run.baseline,
                   dict(run.facts, steps=run.total, steps_per_epoch=run.per_epoch))


@dataclasses.dataclass
class _Run:
    """What the loop works with: the model and its data, the optimisation, and `state` (the
    loop position, clocks and eval history a checkpoint keeps)."""

    config: MlmAdaptConfig
    model: Any
    tokenizer: Any
    head: Any
    device: torch.device
    encoded: Encoded
    held_out: HeldOut
    baseline: Dict[str, Any]
    replacements: Any
    optimizer: Any
    scheduler: Any
    total: int       # optimizer steps of the run
    per_epoch: int
    facts: Dict[str, Any]   # fresh_head, tied, frozen_parameters: for the result
    on_step: Optional[Callable[[int, float], None]]
    state: Dict[str, Any]
    window: List[float] = dataclasses.field(default_factory=list)  # losses since the last log
    started: Tuple[float, float] = (0.0, 0.0)   # (wall, CPU) clock readings at step 0

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.config.output, CHECKPOINT_FILE)


def _set_up(config: MlmAdaptConfig, corpus: Corpus, fingerprint: str, on_step) -> _Run:
    """The encoder with its head (the decoder bias at the unigram frequencies), the encoded
    corpus, the held-out set and its unigram baseline, and the optimizer, in this order (the
    model's fresh weights are drawn from the seed)."""
    model, tokenizer, fresh_head = load_masked_lm(config.encoder, config.seed)
    device = resolve_device(config.device)
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
    model.to(device)
    optimizer, scheduler = make_optimizer(model, config, total)
    state = {"step": 0, "epoch": 0, "batch": 0, "wall_s": 0.0, "cpu_s": 0.0, "history": [],
             "fingerprint": fingerprint}
    return _Run(config, model, tokenizer, head, device, encoded, held_out, baseline,
                replacements, optimizer, scheduler, total, per_epoch,
                dict(fresh_head=fresh_head, tied=tied, frozen_parameters=frozen), on_step, state)


def _unigram_counts(encoded: Encoded, vocab_size: int, special):
    counts = torch.zeros(vocab_size)
    flat = torch.tensor([t for ids in encoded.ids for t in ids], dtype=torch.long)
    counts.index_add_(0, flat, torch.ones(len(flat)))
    counts[list(special)] = 0
    return counts


def _start_bias(model, counts) -> bool:
    """Set the fresh decoder bias to log unigram frequencies (add-0.5 smoothed)."""
    out = model.get_output_embeddings()
    bias = getattr(out, "bias", None)
    if bias is None or bias.shape[0] != counts.shape[0]:
        return False
    with torch.no_grad():
        bias.copy_(torch.log((counts + 0.5) / (counts.sum() + 0.5 * counts.shape[0])))
    return True


def _start_or_resume(run: _Run) -> None:
    """Continue from OUTPUT's checkpoint (refused when it is another run's), else log the
    start; the clocks go on from the checkpoint's minutes."""
    config, path = run.config, run.checkpoint_path
    if os.path.exists(path):
        payload = load_checkpoint(path)
        if payload["state"].get("fingerprint") != run.state["fingerprint"]:
            raise UsageError(f"{config.output} holds a checkpoint of another mlm-adapt run "
                             "(other settings or corpus); use another --output, or --fresh to "
                             "start over")
        run.model.load_state_dict(payload["model"])
        run.optimizer.load_state_dict(payload["optimizer"])
        run.scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"])
        if run.device.type == "cuda" and "cuda_rng" in payload:
            torch.cuda.set_rng_state(payload["cuda_rng"], run.device)
        run.state = payload["state"]
        log.info("resuming %s at step %d of %d", config.output, run.state["step"], run.total)
        log_event(config.output, {"event": "resume", "step": run.state["step"]})
    else:
        log_event(config.output, {"event": "start", "fingerprint": run.state["fingerprint"],
                                  "steps": run.total, "train_texts": len(run.encoded.ids),
                                  "baseline": run.baseline})
    run.started = (time.perf_counter() - run.state["wall_s"],
                   time.process_time() - run.state["cpu_s"])


def _clock(run: _Run) -> None:
    run.state["wall_s"] = time.perf_counter() - run.started[0]
    run.state["cpu_s"] = time.process_time() - run.started[1]


def _evaluate(run: _Run, reason: str) -> None:
    """Score the held-out texts; the entry goes to the history and the log."""
    with autocast(run.device):
        scores = run.held_out.score(run.model, run.head)
    _clock(run)
    state = run.state
    entry = {"step": state["step"], "epoch": state["epoch"], "reason": reason, **scores,
             "minutes": state["wall_s"] / 60, "cpu_minutes": state["cpu_s"] / 60}
    state["history"].append(entry)
    log_event(run.config.output, {"event": "eval", **entry})
    log.info("step %d: held-out top-1 %.2f%% top-5 %.2f%%", state["step"], scores["top1"],
             scores["top5"])


def _checkpoint(run: _Run) -> None:
    _clock(run)
    save_checkpoint(run.checkpoint_path, run.state, run.model, run.optimizer, run.scheduler)


def _train(run: _Run) -> None:
    """Epochs of steps until `total`; an epoch's end is evaluated (unless a step just was) and
    checkpointed, but the last one's (the caller evaluates the end)."""
    config, state = run.config, run.state
    run.model.train()
    bar = tqdm(total=run.total, initial=state["step"], desc="mlm-adapt", unit="step",
               disable=not config.progress)
    while state["step"] < run.total:
        batches = epoch_batches(run.encoded.lengths, config.batch_size, config.seed,
                                state["epoch"])
        for index in batches[state["batch"]:]:
            _train_step(run, index)
            _after_step(run, bar)
            if state["step"] >= run.total:
                break
            if state["step"] % config.save_every == 0:
                _checkpoint(run)
        if state["batch"] >= len(batches):
            state["epoch"] += 1
            state["batch"] = 0
            if state["step"] < run.total:
                if not (config.eval_every and state["step"] % config.eval_every == 0):
                    _evaluate(run, "epoch")
                _checkpoint(run)
    bar.close()


def _train_step(run: _Run, index: List[int]) -> None:
    """One optimizer step on the texts `index` of the epoch, masked as (seed, epoch, text)
    says (a batch that masks nothing only advances the schedule)."""
    config, state, tokenizer = run.config, run.state, run.tokenizer
    rows = [apply_masks(run.encoded.ids[i], run.encoded.units[i], config.masking,
                        example_rng(config.seed, "mlm-train", state["epoch"], i),
                        mask_id=tokenizer.mask_token_id, random_ids=run.replacements)
            for i in index]
    ids, attention = pad_rows([r[0] for r in rows], tokenizer.pad_token_id or 0)
    labels, _ = pad_rows([r[1] for r in rows], IGNORE)
    state["batch"] += 1
    if bool((labels != IGNORE).any()):  # a batch of short texts may mask nothing
        with autocast(run.device):
            logits, gold = masked_logits(run.model, run.head, ids.to(run.device),
                                         attention.to(run.device), labels.to(run.device))
        loss = F.cross_entropy(logits.float(), gold)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [p for p in run.model.parameters() if p.requires_grad], config.max_grad_norm)
        run.optimizer.step()
        run.window.append(loss.item())
    run.scheduler.step()
    state["step"] += 1


def _after_step(run: _Run, bar) -> None:
    """The progress bar, the caller's on_step, the log every `log_every` steps and the
    held-out score every `eval_every`."""
    config, state, window = run.config, run.state, run.window
    bar.update(1)
    if window:
        bar.set_postfix(loss=f"{sum(window[-20:]) / len(window[-20:]):.3f}")
    if run.on_step is not None:
        run.on_step(state["step"], window[-1] if window else float("nan"))
    if state["step"] % config.log_every == 0 and window:
        log_event(config.output, {"event": "train", "step": state["step"],
                                  "loss": sum(window) / len(window),
                                  "lr": run.scheduler.get_last_lr()[-1]})
        run.window = []
    if config.eval_every and state["step"] % config.eval_every == 0:
        _evaluate(run, "every")


def _finish(config: MlmAdaptConfig, model, tokenizer, state, corpus: Corpus, baseline,
            facts: Dict[str, Any]) -> Dict[str, Any]:
    """Save the model and tokenizer into OUTPUT, then the result (the completion marker)."""
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
            replace_durably(os.path.join(tmp, name), os.path.join(config.output, name))
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
