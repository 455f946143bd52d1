"""Shared fixtures: a WordPiece tokenizer trained on real SST-2 sentences, a tiny random BERT
teacher saved as a HF directory, a few SST-2 records and the teacher's outputs on them."""
from __future__ import annotations

import os

import pytest
from distiller.taskdata.paths import shared_data

SST2 = shared_data("glue", "SST-2")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP spin contention
    (measured 100x slower steps with 2 threads under load). Restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sst2_records(split: str, n: int):
    from distiller.taskdata import builtin_task, read_records

    path = os.path.join(SST2, f"{split}.tsv")
    return [r for r in read_records(path, builtin_task("sst2"), limit=n)
            if isinstance(r, dict)]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    texts = [r["text_a"] for r in sst2_records("train", 3000)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=600, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    path = str(tmp_path_factory.mktemp("tok"))
    tok.save(os.path.join(path, "tokenizer.json"))
    fast = BertTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"))
    fast.save_pretrained(path)
    return path


def make_bert(path: str, tokenizer_dir: str, *, layers=4, hidden=32, heads=4, num_labels=2,
              seed=0):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=2 * hidden,
                     max_position_embeddings=128, num_labels=num_labels,
                     attn_implementation="eager")
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory, tokenizer_dir):
    return make_bert(str(tmp_path_factory.mktemp("teacher")), tokenizer_dir)


@pytest.fixture(scope="session")
def sst2_small():
    return sst2_records("train", 48), sst2_records("dev", 24)


@pytest.fixture(scope="session")
def teacher_outputs(teacher_dir, sst2_small):
    """(provider over all layers + attentions, train rows, dev rows) from the tiny teacher."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distiller.distill_train.data import InMemoryProvider, OnlineTeacherProvider

    train, dev = sst2_small
    texts = {r["id"]: (r["text_a"], r["text_b"]) for r in train + dev}
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir,
                                                               attn_implementation="eager")
    online = OnlineTeacherProvider(model, AutoTokenizer.from_pretrained(teacher_dir), texts,
                                   max_length=64, attentions=True)
    keys = list(texts)
    outputs = {}
    for i in range(0, len(keys), 16):
        outputs.update(zip(keys[i:i + 16], online.get_many(keys[i:i + 16])))

    def rows(recs):
        return [{"id": r["id"], "key": r["id"], "label": r["label"]} for r in recs]

    return InMemoryProvider(outputs), rows(train), rows(dev)


def build_cache(path, teacher_dir, train, dev, *, dtype="float32", attentions=True, task="sst2"):
    """Score records with builders' Teacher into a real cache with corpora f"{task}-train/dev"."""
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    teacher = Teacher(TeacherConfig(model=teacher_dir, max_length=64, device="cpu",
                                    attentions=attentions, num_threads=1,
                                    max_tokens_per_batch=512)).load()
    cache = TeacherCache.create(str(path), teacher.spec(dtype))
    cache.add(teacher.score(train + dev))
    for split, recs in (("train", train), ("dev", dev)):
        cache.write_corpus(f"{task}-{split}", [
            {"id": r["id"], "key": teacher.cache_key(r["text_a"], r["text_b"]),
             "label": r["label"]} for r in recs])
    return str(path)


@pytest.fixture(scope="session")
def cache_f32(tmp_path_factory, teacher_dir, sst2_small):
    train, dev = sst2_small
    return build_cache(tmp_path_factory.mktemp("cache") / "c32", teacher_dir, train, dev)


# --- token-level (masked / causal LM) teachers --------------------------------------------------

@pytest.fixture(scope="session")
def lm_records():
    """(train, dev) SST-2 records whose texts the LM teachers score."""
    return sst2_records("train", 40), sst2_records("dev", 12)


@pytest.fixture(scope="session")
def mlm_teacher_dir(tmp_path_factory, lm_records):
    from tests.tinymodels import tiny_bert_mlm

    train, dev = lm_records
    return tiny_bert_mlm(tmp_path_factory.mktemp("mlm"), [r["text_a"] for r in train + dev],
                         vocab_size=300, layers=4)


@pytest.fixture(scope="session")
def clm_teacher_dir(tmp_path_factory, lm_records):
    from tests.tinymodels import tiny_gpt2_lm

    train, dev = lm_records
    return tiny_gpt2_lm(tmp_path_factory.mktemp("clm"), [r["text_a"] for r in train + dev],
                        vocab_size=300, layers=4)
