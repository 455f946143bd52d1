"""Student construction: a HF encoder by name/path, a truncated copy of the teacher, or a fresh
model from a (modified) config; plus the check that its vocabulary matches the cache's token ids.

The cache stores token ids made by the teacher's tokenizer and the trainer feeds those ids to the
student as they are, so the student must share the teacher's vocabulary. A mismatch is an error;
the cache's texts are never re-tokenised (the cache does not keep texts).
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Optional, Sequence, Tuple

from torch import nn

from distiller.builders.cache.vocab import tokenizer_tokens, vocab_differences
from distiller.common.errors import UsageError
from distiller.taskdata.heads import head_problem

from .mapping import skip_mapping

__all__ = ["build_student", "truncate_layers", "check_vocab"]

log = logging.getLogger(__name__)


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        log.warning("no tokenizer at %s (%s); token ids come from the cache only", path, exc)
        return None


def _layer_list(model: nn.Module) -> Tuple[nn.Module, str]:
    """(parent module, attribute) of the encoder's ModuleList of transformer layers."""
    for path in ("bert.encoder.layer", "roberta.encoder.layer", "electra.encoder.layer",
                 "distilbert.transformer.layer", "deberta.encoder.layer", "encoder.layer",
                 "transformer.layer",
                 # causal LMs: GPT-2, Llama-style (Llama, Qwen, Mistral ...), GPT-NeoX
                 "transformer.h", "model.layers", "gpt_neox.layers"):
        parent = model
        parts = path.split(".")
        try:
            for part in parts[:-1]:
                parent = getattr(parent, part)
            if isinstance(getattr(parent, parts[-1]), nn.ModuleList):
                return parent, parts[-1]
        except AttributeError:
            continue
    raise UsageError(f"cannot find the transformer layers of {type(model).__name__} to truncate; "
                     "use student_init 'config' or 'pretrained' for this architecture")


def truncate_layers(model: nn.Module, keep: Sequence[int]) -> nn.Module:
    """A copy of `model` keeping transformer layers `keep` (1-based, in order), DistilBERT style."""
    parent, attr = _layer_list(model)
    layers = getattr(parent, attr)
    n = len(layers)
    if not keep or any(not 1 <= k <= n for k in keep) or list(keep) != sorted(set(keep)):
        raise UsageError(f"layers to keep must be increasing, distinct and within 1..{n}, "
                         f"got {list(keep)}")
    out = copy.deepcopy(model)
    parent, attr = _layer_list(out)
    old = getattr(parent, attr)
    setattr(parent, attr, nn.ModuleList([old[k - 1] for k in keep]))
    for name in ("num_hidden_layers", "n_layers"):
        if hasattr(out.config, name):
            setattr(out.config, name, len(keep))
    for i, layer in enumerate(getattr(parent, attr)):  # keep per-layer indices consistent
        attn = getattr(layer, "attention", None)
        inner = getattr(attn, "self", attn)
        if inner is not None and hasattr(inner, "layer_idx"):
            inner.layer_idx = i
    return out


def build_student(config) -> Tuple[nn.Module, Any]:
    """(model, tokenizer or None) for a TrainConfig; the model is a ...ForSequenceClassification
    with the task's labels by name, or a ...ForQuestionAnswering for a span task (eager
    attention when attention maps are distilled, else SDPA). A checkpoint whose head does not
    fit the task is an error unless `reinit_head`."""
    import transformers
    from transformers import AutoConfig

    task = config.task_def
    # Eager attention only when attention maps are distilled (SDPA kernels return none).
    attn = "eager" if config.inter_loss.startswith("att_") else "sdpa"
    auto = transformers.AutoModelForQuestionAnswering if task.is_span else \
        transformers.AutoModelForSequenceClassification
    id2label = task.id2label()
    kwargs = dict(num_labels=task.num_labels, problem_type=task.problem_type,
                  attn_implementation=attn, id2label=id2label,
                  label2id={name: i for i, name in id2label.items()})
    if task.is_span:   # a QA head has its two outputs; Hugging Face knows no QA problem_type
        kwargs = dict(attn_implementation=attn)
    tokenizer = _load_tokenizer(config.student)
    if config.student_init in ("pretrained", "truncate"):
        problem = head_problem(AutoConfig.from_pretrained(config.student), task, what="model",
                               where=repr(config.student))
        if problem and not config.reinit_head:
            raise UsageError(problem)
        model = auto.from_pretrained(config.student, ignore_mismatched_sizes=bool(problem),
                                     **kwargs)
        if problem:
            _reinit_head(model)
            log.warning("%s: a new %d-output head for task %s (reinit_head)", config.student,
                        task.num_labels, task.name)
    if config.student_init == "truncate":
        n_teacher = model.config.num_hidden_layers
        keep = config.student_layers
        if keep is None:
            if not config.student_num_layers:
                raise UsageError("student_init 'truncate' needs student_layers (teacher layers to "
                                 "keep, 1-based) or student_num_layers (kept by skip mapping)")
            keep = [t for _, t in skip_mapping(config.student_num_layers, n_teacher)[1:]]
        model = truncate_layers(model, keep)
        log.info("student: %s truncated to layers %s", config.student, list(keep))
    elif config.student_init == "config":
        base = AutoConfig.from_pretrained(config.student)
        changes = {"num_hidden_layers": config.student_num_layers,
                   "hidden_size": config.student_hidden,
                   "num_attention_heads": config.student_heads,
                   "intermediate_size": config.student_intermediate
                   or (4 * config.student_hidden if config.student_hidden else None)}
        for key, value in changes.items():
            if value is not None:
                setattr(base, key, value)
        if base.hidden_size % base.num_attention_heads:
            raise UsageError(f"student hidden size {base.hidden_size} is not divisible by "
                             f"{base.num_attention_heads} heads")
        for key, value in kwargs.items():
            if key != "attn_implementation":
                setattr(base, key, value)
        model = auto.from_config(base, attn_implementation=attn)
    if not task.is_span:
        model.config.problem_type = task.problem_type
    return model, tokenizer


def _reinit_head(model: nn.Module) -> None:
    """Fresh weights for every module outside the base encoder (the task head)."""
    prefix = model.base_model_prefix
    for name, module in model.named_modules():
        if name and not name.startswith(prefix) and not list(module.children()):
            model._init_weights(module)


def check_vocab(model: nn.Module, tokenizer, expected: Optional[Sequence[Optional[str]]] = None,
                *, source: str = "", max_token_id: Optional[int] = None,
                what: str = "the cache", student: str = "the student") -> None:
    """Raise a one-line ValueError when the student cannot read `what`'s token ids.

    expected: the token of each id of the tokenizer the ids were made with
    (distiller.builders.cache.vocab;
    `source` says where it came from): the student's tokenizer must hold the same tokens at the
    same ids, and its embedding matrix a row for each. Without it only `max_token_id` (the
    largest id seen) is checked against the embedding rows."""
    rows = model.get_input_embeddings().weight.shape[0]
    fix = ("use a student with the teacher's tokenizer (--student-init truncate of the teacher, "
           "or a model sharing its vocabulary)")
    if expected is not None:
        if tokenizer is not None:
            mine = tokenizer_tokens(tokenizer)
            common = min(len(mine), len(expected))
            n, first = vocab_differences(expected[:common], mine[:common])
            if n or len(mine) != len(expected):
                head = (f"the tokenizer of {student} is not the one {what} was tokenised with "
                        f"({source}): ")
                if not n:
                    raise UsageError(f"{head}it has {len(mine)} tokens, {what}'s {len(expected)} "
                                     f"(the first {common} agree): {fix}")
                sizes = (f"{len(mine)} tokens against {len(expected)}"
                         if len(mine) != len(expected) else f"{len(expected)} tokens each")
                raise UsageError(f"{head}{n} of the ids both have differ ({sizes}); "
                                 f"{'; '.join(first)}: {fix}")
        else:
            log.warning("%s has no tokenizer: its vocabulary cannot be compared with %s's (%s); "
                        "only its size is checked", student, what, source)
        if rows < len(expected):
            raise UsageError(f"{student} embeds {rows} token ids but {what} was tokenised with a "
                             f"vocabulary of {len(expected)} ({source}): {fix}")
    if max_token_id is not None and max_token_id >= rows:
        raise UsageError(f"{what} holds token id {max_token_id} but {student} embeds only {rows} "
                         f"ids: {fix}")
