"""Tiny random models for tests: a WordPiece tokenizer trained here on real text and a small
BertForSequenceClassification, saved with save_pretrained (what a real teacher directory holds)."""
from __future__ import annotations

from typing import Iterable


def wordpiece_tokenizer(texts: Iterable[str], vocab_size: int):
    """A BERT-style fast tokenizer ([CLS] a [SEP] b [SEP], token types) trained on `texts`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                                   special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "token_type_ids",
                                                      "attention_mask"])


def tiny_bert_classifier(directory, texts: Iterable[str], *, vocab_size: int = 400,
                         num_labels: int = 2, seed: int = 0) -> str:
    """A random 2-layer, 32-wide BertForSequenceClassification plus a tokenizer trained on
    `texts`, both saved to `directory`; returns the directory as a string."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    fast = wordpiece_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=num_labels)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return str(directory)


def tiny_bert_encoder(directory, texts: Iterable[str], *, vocab_size: int = 400,
                      seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 2) -> str:
    """A random BertModel (default 2 layers, 32 wide) without any head (like a sentence encoder
    shipped without one) plus a tokenizer trained on `texts`, saved to `directory`."""
    import torch
    from transformers import BertConfig, BertModel

    fast = wordpiece_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden,
                        max_position_embeddings=128)
    BertModel(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return str(directory)


def tiny_bert_qa(directory, texts: Iterable[str], *, vocab_size: int = 500, seed: int = 0,
                 layers: int = 2, hidden: int = 32, max_positions: int = 128) -> str:
    """A random BertForQuestionAnswering (start/end head) plus a fast WordPiece tokenizer
    trained on `texts`, both saved to `directory`; returns the directory as a string."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    fast = wordpiece_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=max_positions)
    BertForQuestionAnswering(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return str(directory)


def squad_texts(path=None, limit: int = 400):
    """Questions and contexts of the shared SQuAD 2.0 sample (to train test tokenizers on)."""
    import json

    from distiller.taskdata.paths import shared_data

    with open(path or shared_data("squad", "squad2-sample.json"), encoding="utf-8") as fh:
        data = json.load(fh)
    out = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            out.append(para["context"])
            out.extend(qa["question"] for qa in para["qas"])
    return out[:limit]


def tiny_bert_mlm(directory, texts: Iterable[str], *, vocab_size: int = 400, seed: int = 0,
                  layers: int = 2, hidden: int = 32) -> str:
    """A random BertForMaskedLM (default 2 layers, 32 wide) plus a WordPiece tokenizer trained
    on `texts` (with [MASK]), both saved to `directory`; returns the directory as a string.
    Weights are drawn wider than BERT's (std 0.3) so its distributions are far from uniform."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    fast = wordpiece_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=128, initializer_range=0.3)
    BertForMaskedLM(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return str(directory)


def bpe_tokenizer(texts: Iterable[str], vocab_size: int, *, prefix_space: bool = False):
    """A GPT-2-style fast tokenizer (byte-level BPE, one <|endoftext|> token, no padding token and
    no special tokens added to a text) trained on `texts`; `prefix_space`: a text's first word
    is read as if a space preceded it (the same token as the word inside a text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                   model_input_names=["input_ids", "attention_mask"])


def tiny_gpt2_lm(directory, texts: Iterable[str], *, vocab_size: int = 400, seed: int = 0,
                 layers: int = 2, hidden: int = 32, positions: int = 64,
                 bpe: bool = False) -> str:
    """A random GPT2LMHeadModel (default 2 layers, 32 wide, 64 positions) plus a tokenizer
    trained on `texts`, both saved to `directory`; returns the directory. The tokenizer is a
    WordPiece one ([CLS] as bos, [SEP] as eos, a padding token), or with `bpe` GPT-2's kind
    (`bpe_tokenizer`: byte-level BPE, no padding token). Weights are drawn wider than GPT-2's
    (std 0.3) so its distributions are far from uniform."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if bpe:
        fast = bpe_tokenizer(texts, vocab_size)
        ids = dict(bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    else:
        fast = wordpiece_tokenizer(texts, vocab_size)
        ids = dict(bos_token_id=fast.cls_token_id, eos_token_id=fast.sep_token_id,
                   pad_token_id=fast.pad_token_id)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(fast), n_embd=hidden, n_layer=layers, n_head=2,
                        n_positions=positions, initializer_range=0.3, **ids)
    GPT2LMHeadModel(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return str(directory)
