"""Helpers for the pipeline tests (imported by name: tests/pipelines is on sys.path)."""
import os

from distiller.taskdata.paths import shared_data

DATA = shared_data("glue")


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
    from tests.tinymodels import tiny_bert_classifier

    text = sst2_sentences(3000)
    with open(glue_path("RTE"), encoding="utf-8") as fh:
        next(fh)
        for i, line in zip(range(500), fh):
            text.extend(line.split("\t")[:2])
    return tiny_bert_classifier(directory, text, vocab_size=1000, num_labels=num_labels,
                                seed=seed)
