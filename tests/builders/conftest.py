"""Shared fixtures: a tiny random BERT teacher with a WordPiece tokenizer trained on SST-2."""
from __future__ import annotations

import os

import pytest

GLUE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "glue")
GLUE = os.environ.get("DISTILLER_GLUE", os.path.abspath(GLUE)
                      if os.path.isdir(os.path.abspath(GLUE)) else "/work/shared/data/glue")


def read_tsv(path, limit):
    from augment.records import column_map_for_task, read_records

    task = {"SST-2": "sst2", "RTE": "rte", "STS-B": "stsb"}[os.path.basename(os.path.dirname(path))]
    out = []
    for rec in read_records(path, column_map_for_task(task), limit=limit):
        if isinstance(rec, dict):
            out.append(rec)
    return out


@pytest.fixture(scope="session")
def sst2_rows():
    return read_tsv(os.path.join(GLUE, "SST-2", "dev.tsv"), 200)


@pytest.fixture(scope="session")
def rte_rows():
    return read_tsv(os.path.join(GLUE, "RTE", "dev.tsv"), 24)


def make_tiny_teacher(directory, sentences, *, seed=0, num_labels=2, vocab_size=400):
    """Train a WordPiece tokenizer on `sentences`, build a random BertForSequenceClassification,
    save both to `directory` (loadable by path)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                                 special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "token_type_ids",
                                                      "attention_mask"])
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=num_labels)
    model = BertForSequenceClassification(config)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, sst2_rows):
    d = tmp_path_factory.mktemp("tiny_teacher")
    return make_tiny_teacher(d, [r["text_a"] for r in sst2_rows])


@pytest.fixture(scope="session")
def tiny_teacher(tiny_teacher_dir):
    from builders.teacher import Teacher, TeacherConfig

    return Teacher(TeacherConfig(model=tiny_teacher_dir, max_length=64, device="cpu",
                                 num_threads=1, max_tokens_per_batch=512)).load()
