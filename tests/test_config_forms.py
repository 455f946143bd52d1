"""The serialised forms of the declared configs stay byte for byte what they were before the
declarative layer (distiller.common.config): a TrainConfig's to_dict (config.json, the resume
check), a CacheSpec's to_dict (manifests and shard metadata), a Task's to_dict (caches'
corpora, distiller_task.json, read from task files) and an MlmAdaptConfig's fingerprint (its
resume check). config_forms.json holds what `forms()` printed on the code before the layer, so
run directories, caches and ledgers written before keep working."""
from __future__ import annotations

import json
import os
import pathlib

FORMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config_forms.json")


def forms(workdir: str) -> dict:
    """Name -> the serialised form (JSON text, keys in field order; a fingerprint) of configs
    built from varied inputs; task files are written to `workdir`, named relative to it."""
    from distiller.augment.mlm_adapt import MlmAdaptConfig
    from distiller.augment.mlm_data import Corpus, MaskingConfig
    from distiller.builders.cache.spec import CacheSpec
    from distiller.distill_train.config import TrainConfig
    from distiller.taskdata.builtin import BUILTIN_TASKS
    from distiller.taskdata.resolve import load_task_file
    from distiller.taskdata.task import Task

    out = {}
    train = {
        "default": TrainConfig(task="sst2", cache="c", train_corpus="sst2-train", student="s"),
        "varied": TrainConfig.from_dict(dict(
            task={"name": "mine", "text_a": "t", "labels": ["a", "b", "c"]}, mode="distill",
            cache=pathlib.Path("/c"), train_corpus="mine-train",
            dev_corpus=["mine-dev", "mine-dev2"], student="s", student_init="truncate",
            student_layers=[1, 3], mapping="explicit", mapping_pairs=[[0, 0], [2, 6]],
            inter_loss="mi", mi_alpha=0.5, lr="1e-4", temperature=2, max_grad_norm=None,
            seed=7, loader_workers=0, max_steps=10, null_threshold=0)),
        "regression": TrainConfig(task="stsb", cache="c", train_corpus="t", student="s",
                                  dev_corpus=["d"]),
        "finetune": TrainConfig(task="rte", mode="finetune", train_file="x.tsv",
                                dev_file=("a.tsv",), student="s", student_init="config",
                                student_hidden=64),
        "cache_task": TrainConfig(task=None, cache="c", train_corpus="t", student="s"),
        "task_object": TrainConfig(task=BUILTIN_TASKS["mrpc"], cache="c", train_corpus="t",
                                   student="s", w_gold=1, warmup_ratio=0),
    }
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with open("scores.yaml", "w", encoding="utf-8") as fh:
            fh.write("text_a: 0\nlabel: 1\nheader: false\nkind: regression\n")
        with open("trec.yaml", "w", encoding="utf-8") as fh:
            fh.write("text_a: 1\nlabel: 0\nheader: false\nlabels: [ABBR, DESC, ENTY]\n"
                     "metrics: macro_f1,accuracy\ndev_splits: test\n")
        with open("kd.yaml", "w", encoding="utf-8") as fh:
            fh.write("task: scores.yaml\nmode: finetune\ntrain_file: x.tsv\nstudent: s\n"
                     "lr: 1e-4\n")
        from_file = TrainConfig.from_yaml("kd.yaml")
        train["task_file"] = from_file
        out["task_file_task"] = json.dumps(from_file.task_def.to_dict())
        out["task_trec_yaml"] = json.dumps(load_task_file("trec.yaml").to_dict())
    finally:
        os.chdir(cwd)
    for name, config in train.items():
        out[f"train_{name}"] = json.dumps(config.to_dict())
    spec = CacheSpec(fingerprint="f" * 32, tokenization={"max_length": 128, "b": True},
                     layers=[0, 1, 2], attentions=[1], num_labels=3, hidden_size=32,
                     num_heads=2, num_hidden_layers=2, model=pathlib.Path("m"))
    out["spec_eager"] = json.dumps(spec.to_dict())
    out["spec_onnx"] = json.dumps(spec.with_(backend="onnx", compute="bfloat16", dtype="int8",
                                             logits_topk=5).to_dict())
    out["spec_qa"] = json.dumps(CacheSpec(
        fingerprint="a" * 32, tokenization=(("max_length", 64), ("doc_stride", 32)),
        layers=(0,), num_labels=2, problem_type="question_answering").to_dict())
    out["spec_read_back"] = json.dumps(CacheSpec.from_dict(json.loads(out["spec_eager"]))
                                       .to_dict())
    for name, task in sorted(BUILTIN_TASKS.items()):
        out[f"task_{name}"] = json.dumps(task.to_dict())
    tasks = {
        "own": {"name": " trec ", "text_a": "1", "label": "0|y", "labels": "ABBR,DESC,ENTY",
                "header": 0, "metrics": "accuracy,macro_f1", "id": ["a", "b"],
                "format": "tsv"},
        "regression": {"name": "r", "text_a": "a", "text_b": "b", "kind": "regression",
                       "dev_splits": []},
        "span": {"name": "qa", "kind": "span", "text_a": "q", "text_b": "c",
                 "label": "answers", "unanswerable": 1, "augment_fields": "text_a"},
        "unknown_labels": {"name": "u", "text_a": "t"},
        "fields_reordered": {"name": "p", "text_a": "a", "text_b": "b",
                             "augment_fields": ["text_b", "text_a"], "labels": [0, 1]},
    }
    for name, data in tasks.items():
        out[f"task_dict_{name}"] = json.dumps(Task.from_dict(data).to_dict())
    corpus = Corpus(train=["a b", "c d"], held_out=["e"], stats={}, dead_letters={})
    out["mlm_default"] = MlmAdaptConfig(encoder="enc", output="out").fingerprint(corpus)
    out["mlm_varied"] = MlmAdaptConfig(
        encoder=pathlib.Path("enc"), output="out", masking=MaskingConfig(mask_prob=0.3,
                                                                         whole_word=True),
        max_length=64, max_steps=5, lr=2e-4, head_lr=1e-3, freeze_up_to=0, seed=3,
        eval_every=2, weight_decay=0).fingerprint(corpus)
    return out


def test_serialised_forms_are_the_ones_written_before(tmp_path):
    with open(FORMS, encoding="utf-8") as fh:
        expected = json.load(fh)
    got = forms(str(tmp_path))
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name] == expected[name], name


if __name__ == "__main__":   # prints the forms (how config_forms.json was made)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(forms(tmp), indent=1))
