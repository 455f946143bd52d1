"""The teacher's forward on ONNX Runtime (CPU): `--backend onnx`.

At load the model is exported to ONNX (inputs input_ids, attention_mask[, token_type_ids] with
dynamic batch and length; outputs the logits and the kept hidden states), its attention, layer
norm and GELU subgraphs fused by ONNX Runtime's transformer optimizer where the architecture is
one it knows (BERT-like encoders), and run by an InferenceSession with as many intra-op threads
as torch has. Export and optimisation take seconds (`warmup_s`); the files live in a temporary
directory only while the session is created.

Not supported (a clear error at load or call): attention maps, mixup inputs (embeddings instead
of ids), autocast (amp bf16/fp16), a GPU device.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any, Dict, Sequence

from distiller.common.errors import UsageError

from .backends import output_logits

__all__ = ["OnnxBackend"]

log = logging.getLogger(__name__)

# Model types that ONNX Runtime's "bert" fusions understand (same encoder block).
_FUSABLE = ("bert", "roberta", "xlm-roberta", "camembert", "electra")


def _exportable(model, layers: Sequence[int]):
    """A module whose forward returns (logits, *kept hidden states): what is exported."""
    import torch

    class Exportable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, output_hidden_states=bool(layers))
            return (output_logits(out),) + tuple(out.hidden_states[i] for i in layers)

    return Exportable().eval()


class OnnxBackend:
    name = "onnx"

    def __init__(self, model, *, teacher) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("backend 'onnx' needs ONNX Runtime: pip install 'distiller[onnx]' "
                             "(onnxruntime, onnx), or use backend eager or compile") from None
        if teacher.device.type != "cpu":
            raise UsageError("backend 'onnx' runs on a CPU here; on a GPU use eager or compile")
        if teacher.attention_layers:
            raise UsageError("backend 'onnx' does not return attention maps: use eager or "
                             "compile to keep attentions")
        if teacher.compute_dtype != "float32":
            raise UsageError("backend 'onnx' runs float32: use amp 'off' with it (bf16 "
                             "autocast is for eager or compile)")
        start = time.perf_counter()
        self.layers = tuple(teacher.layers)
        self.token_types = teacher.uses_token_types
        self.span = teacher.config.head == "span"
        self.fused = False
        with tempfile.TemporaryDirectory(prefix="distiller-onnx-") as tmp:
            path = self._export(model, os.path.join(tmp, "teacher.onnx"))
            path = self._optimize(model, path)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = _torch_threads()
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.warmup_s = time.perf_counter() - start
        log.info("teacher exported to ONNX Runtime %s in %.1f s (fused: %s)", ort.__version__,
                 self.warmup_s, self.fused)

    def _export(self, model, path: str) -> str:
        import warnings

        import torch

        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if self.token_types else [])
        example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
        outputs = ["logits"] + [f"hidden_{i}" for i in self.layers]
        axes = {n: {0: "batch", 1: "length"} for n in names}
        axes.update({f"hidden_{i}": {0: "batch", 1: "length"} for i in self.layers})
        # question answering: start/end logits per position [B, W, 2]
        axes["logits"] = {0: "batch", 1: "length"} if self.span else {0: "batch"}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")    # tracer warnings about Python control flow
            torch.onnx.export(_exportable(model, self.layers), example, path,
                              input_names=names, output_names=outputs, dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        return path

    def _optimize(self, model, path: str) -> str:
        cfg = model.config
        if getattr(cfg, "model_type", None) not in _FUSABLE:
            return path
        logging.disable(logging.INFO)     # the optimizer logs every fusion at INFO
        try:
            from onnxruntime.transformers import optimizer

            fused = optimizer.optimize_model(path, model_type="bert",
                                             num_heads=int(cfg.num_attention_heads),
                                             hidden_size=int(cfg.hidden_size), opt_level=1)
            out = path[:-5] + "-fused.onnx"
            fused.save_model_to_file(out)
        except Exception as exc:     # an unknown variant: the unfused graph still runs
            log.warning("ONNX Runtime could not fuse the teacher's graph (%s): running it "
                        "unfused", exc)
            return path
        finally:
            logging.disable(logging.NOTSET)
        self.fused = True
        return out

    def forward(self, kwargs: Dict[str, Any], layers: Sequence[int], attn_layers: Sequence[int]):
        import torch

        if "inputs_embeds" in kwargs:
            raise UsageError("backend 'onnx' scores token ids only: mixup (embeddings) needs "
                             "backend eager or compile")
        if tuple(layers) != self.layers or attn_layers:
            raise UsageError(f"this ONNX graph returns hidden states {self.layers} and no "
                             "attention maps")
        feed = {"input_ids": kwargs["input_ids"].numpy(),
                "attention_mask": kwargs["attention_mask"].numpy()}
        if self.token_types:
            feed["token_type_ids"] = kwargs["token_type_ids"].numpy()
        out = self.session.run(None, feed)
        return (torch.from_numpy(out[0]), tuple(torch.from_numpy(h) for h in out[1:]) or None,
                None)


def _torch_threads() -> int:
    import torch

    return max(1, torch.get_num_threads())
