"""Fixtures for the pipeline tests: small corpora with bad rows."""
import pytest


@pytest.fixture
def bad_tsv(tmp_path):
    """An SST-2 style TSV file: 4 good rows (one duplicate text) and 6 bad ones, one per reason."""
    path = tmp_path / "bad.tsv"
    lines = [
        b"sentence\tlabel\n",
        b"a good movie\t1\n",               # 0 ok
        b"too many\tfields\there\n",        # 1 malformed: 3 fields
        b"\t1\n",                           # 2 empty text
        b"caf\xe9 au lait\t0\n",            # 3 undecodable bytes (latin-1)
        b"no label here\t\n",               # 4 missing label
        b"strange label\t7\n",              # 5 unknown label
        b"a bad movie\t0\n",                # 6 ok
        b"\n",                              # 7 blank line
        b"a good movie\t1\n",               # 8 ok (duplicate text of row 0)
        b'says "hi\t1\n',                   # 9 ok, a lone double quote (no quoting in GLUE TSV)
    ]
    path.write_bytes(b"".join(lines))
    return str(path)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    from .pipeline_testlib import make_tiny_teacher

    return make_tiny_teacher(str(tmp_path_factory.mktemp("teacher")))


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory):
    """A random 2-layer BertForMaskedLM + a WordPiece tokenizer trained on real SST-2 text."""
    from tests.tinymodels import tiny_bert_mlm

    from .pipeline_testlib import sst2_sentences

    return tiny_bert_mlm(str(tmp_path_factory.mktemp("mlm")), sst2_sentences(2000),
                         vocab_size=600)


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    """A random 2-layer GPT2LMHeadModel + a byte-level BPE tokenizer trained on real SST-2
    text."""
    from tests.tinymodels import tiny_gpt2_lm

    from .pipeline_testlib import sst2_sentences

    return tiny_gpt2_lm(str(tmp_path_factory.mktemp("gpt2")), sst2_sentences(2000),
                        vocab_size=600, positions=128, bpe=True)
