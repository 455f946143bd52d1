"""Shared fixtures: a tiny random BERT teacher with a WordPiece tokenizer trained on SST-2."""
from __future__ import annotations

import os

import pytest

from distiller.taskdata.paths import shared_data

from ..tinymodels import tiny_bert_classifier

GLUE = shared_data("glue")


def read_tsv(path, limit):
    from distiller.taskdata import builtin_task, read_records

    task = {"SST-2": "sst2", "RTE": "rte", "STS-B": "stsb"}[os.path.basename(os.path.dirname(path))]
    out = []
    for rec in read_records(path, builtin_task(task), limit=limit):
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
    """A random BertForSequenceClassification and a WordPiece tokenizer trained on `sentences`,
    saved to `directory` (loadable by path)."""
    return tiny_bert_classifier(directory, sentences, vocab_size=vocab_size,
                                num_labels=num_labels, seed=seed)


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, sst2_rows):
    d = tmp_path_factory.mktemp("tiny_teacher")
    return make_tiny_teacher(d, [r["text_a"] for r in sst2_rows])


@pytest.fixture(scope="session")
def tiny_teacher(tiny_teacher_dir):
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    return Teacher(TeacherConfig(model=tiny_teacher_dir, max_length=64, device="cpu",
                                 num_threads=1, max_tokens_per_batch=512)).load()


def lm_texts(limit=400):
    """Real sentences of the shared SUBJ corpus (text column), for language-model tests."""
    with open(shared_data("text", "SUBJ", "train.txt"), encoding="utf-8") as fh:
        return [line.split("\t", 1)[1].strip() for _, line in zip(range(limit), fh)]


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory):
    """A random 2-layer BertForMaskedLM and its WordPiece tokenizer (trained on SUBJ)."""
    from ..tinymodels import tiny_bert_mlm

    return tiny_bert_mlm(tmp_path_factory.mktemp("tiny_mlm"), lm_texts(), vocab_size=300)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A random 2-layer GPT2LMHeadModel and its byte-level BPE tokenizer (trained on SUBJ)."""
    from ..tinymodels import tiny_gpt2_lm

    return tiny_gpt2_lm(tmp_path_factory.mktemp("tiny_gpt2"), lm_texts(), vocab_size=300,
                        positions=128, bpe=True)
