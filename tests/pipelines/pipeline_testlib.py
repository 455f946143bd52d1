"""Helpers for the pipeline tests (imported by name: tests/pipelines is on sys.path)."""
import os

DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                                    "glue"))


def glue_path(task: str, split: str = "train") -> str:
    return os.path.join(DATA, task, f"{split}.tsv")


def head_tsv(src: str, dst: str, rows: int) -> str:
    """Copy the header and the first `rows` data rows of a GLUE TSV file, byte for byte."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        for i, line in enumerate(fh):
            if i > rows:
                break
            out.write(line)
    return dst


def sst2_sentences(n: int = 2000):
    """The first n real SST-2 training sentences (for training the test tokenizer)."""
    out = []
    with open(glue_path("SST-2"), encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            out.append(line.split("\t")[0])
            if len(out) >= n:
                break
    return out


def make_tiny_teacher(directory: str, *, num_labels: int = 2, seed: int = 0) -> str:
    """A random 2-layer BertForSequenceClassification + a WordPiece tokenizer trained here on real
    SST-2 and RTE text, saved with save_pretrained (what a real teacher directory looks like)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    text = sst2_sentences(3000)
    with open(glue_path("RTE"), encoding="utf-8") as fh:
        next(fh)
        for i, line in zip(range(500), fh):
            text.extend(line.split("\t")[:2])
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(text, trainers.WordPieceTrainer(vocab_size=1000,
                                                             special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "token_type_ids",
                                                      "attention_mask"])
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=num_labels)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory
