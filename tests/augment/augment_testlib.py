"""Helpers for the augment tests: real GLUE paths and tiny random models built locally."""
from __future__ import annotations

import os
from distiller.taskdata.paths import shared_data

GLUE = shared_data("glue")
SST2_TRAIN = os.path.join(GLUE, "SST-2", "train.tsv")
SST2_DEV = os.path.join(GLUE, "SST-2", "dev.tsv")
RTE_DEV = os.path.join(GLUE, "RTE", "dev.tsv")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def sst2_sentences(path: str = SST2_DEV, n: int = 200):
    with open(path, encoding="utf-8") as fh:
        next(fh)
        return [line.rstrip("\n").split("\t")[0] for _, line in zip(range(n), fh)]


def build_tiny_mlm(out_dir: str, *, hidden: int = 32, layers: int = 2, heads: int = 2,
                   intermediate: int = 64, vocab_size: int = 2000, seed: int = 0) -> str:
    """A random BertForMaskedLM + a WordPiece tokenizer trained on SST-2 sentences, saved."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(sst2_sentences(SST2_TRAIN, 5000), vocab_size=vocab_size,
                           min_frequency=2, show_progress=False)
    os.makedirs(out_dir, exist_ok=True)
    wp.save_model(out_dir)
    tok = BertTokenizerFast(os.path.join(out_dir, "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(out_dir)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate,
                        max_position_embeddings=512)
    BertForMaskedLM(config).eval().save_pretrained(out_dir)
    return out_dir


def build_tiny_marian(out_dir: str, *, vocab_size: int = 600, seed: int = 0) -> str:
    """A random MarianMTModel + a BPE tokenizer (PreTrainedTokenizerFast) trained here, saved."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                  show_progress=False)
    bpe.train_from_iterator(sst2_sentences(SST2_TRAIN, 3000), trainer)
    from tokenizers.processors import TemplateProcessing
    bpe.post_processor = TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                            special_tokens=[("</s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="</s>",
                                  unk_token="<unk>", model_max_length=64)
    os.makedirs(out_dir, exist_ok=True)
    tok.save_pretrained(out_dir)
    torch.manual_seed(seed)
    config = MarianConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2,
                          encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                          pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                          forced_eos_token_id=1, scale_embedding=True)
    model = MarianMTModel(config).eval()
    model.generation_config.max_length = 64
    model.save_pretrained(out_dir)
    return out_dir
