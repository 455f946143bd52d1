"""The installed wheel on its own: a tiny random teacher and a tiny labelled file made here, then
`distiller build` -> `train` -> `evaluate` through the console script.

Run by .ci/wheel-check with the fresh environment's Python, from a directory outside the
repository; it imports no repository code (only torch, transformers and tokenizers, which the
wheel's dependencies bring) and checks that `distiller` resolves to the installed package.
"""
import json
import os
import random
import subprocess
import sys


def run(*args):
    print("$ distiller", " ".join(args), flush=True)
    done = subprocess.run(["distiller", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"distiller {args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def tiny_teacher(directory, texts):
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=200,
                                                             special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, num_labels=2)
    BertForSequenceClassification(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)


def main():
    work = os.path.abspath(sys.argv[1])
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    import distiller
    where = os.path.dirname(os.path.realpath(distiller.__file__))
    if "site-packages" not in where:
        sys.exit(f"distiller imported from {where}, not from the installed wheel")
    rng = random.Random(0)
    good, bad = ["fine", "great", "lovely", "superb"], ["awful", "bad", "dull", "poor"]
    rows = []
    for i in range(48):
        label = i % 2
        word = rng.choice(good if label else bad)
        rows.append(f"the film was {word} and the cast {rng.choice(['acted', 'sang'])}\t{label}")
    for name, part in (("train.tsv", rows[:32]), ("dev.tsv", rows[32:])):
        with open(name, "w", encoding="utf-8") as fh:
            fh.write("sentence\tlabel\n" + "\n".join(part) + "\n")
    tiny_teacher("teacher", [r.split("\t")[0] for r in rows])

    run("--help")
    common = ["--task", "sst2", "--teacher", "teacher", "--cache", "cache", "--workers", "1",
              "--max-length", "32", "--no-progress"]
    run("build", "--input", "train.tsv", *common)
    run("build", "--input", "dev.tsv", "--split", "dev", *common)
    out = run("train", "--cache", "cache", "--train-corpus", "sst2-train", "--dev-corpus",
              "sst2-dev", "--student", "teacher", "--student-init", "truncate",
              "--student-num-layers", "1", "--epochs", "1", "--run-dir", "student",
              "--no-progress")
    result = json.loads(out[out.index("{"):])
    out = run("evaluate", "--model", os.path.join("student", "best_model"), "--file", "dev.tsv",
              "--task", "sst2")
    metrics = json.loads(out[out.index("{"):])
    if metrics["examples"] != 16 or "accuracy" not in metrics["student"]:
        sys.exit(f"unexpected evaluation: {metrics}")
    print(f"wheel smoke: build -> train (best {result['best_metric']:.3f}) -> evaluate "
          f"({metrics['examples']} examples) ok")


if __name__ == "__main__":
    main()
