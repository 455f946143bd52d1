"""Token-level teacher rows for tests, made from a tiny LM teacher's real logits: the inputs
(token_inputs.text_inputs), the rows a token-level cache would hold (through
builders.cache.sparse_tokens' topk_tokens / sample_tokens and, for the "cached" rows, an Arrow
column in the spec's storage (token_columns) written to Parquet and decoded back, as the cache
reader would return them), and the sources the trainer takes."""
from __future__ import annotations

import io
from typing import Dict, List, Mapping, Sequence, Tuple

from distiller.builders.cache.sparse_tokens import SAMPLE_COLUMN, TOPK_COLUMN, parse_token_spec
from distiller.builders.cache.token_columns import decode_column, encode_column
from distiller.builders.cache.vocab import tokenizer_tokens
from distiller.distill_train.lm_student import lm_auto_class
from distiller.distill_train.token_data import InMemoryTokens
from distiller.distill_train.token_inputs import text_inputs
from distiller.distill_train.token_online import OnlineSparseTeacher

MAX_LENGTH = 32
MASK_PROB = 0.3


def inputs_of(teacher_dir: str, problem: str, records: Sequence[Mapping]) -> Dict[str, Dict]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    return text_inputs(records, tok, problem, max_length=MAX_LENGTH, mask_prob=MASK_PROB, seed=0)


def online_teacher(teacher_dir: str, problem: str, spec: str, inputs: Mapping[str, Dict],
                   micro_batch: int = 1) -> OnlineSparseTeacher:
    from transformers import AutoTokenizer

    model = lm_auto_class(problem).from_pretrained(teacher_dir)
    return OnlineSparseTeacher(model, inputs, problem_type=problem, spec=spec,
                               micro_batch=micro_batch,
                               vocab=tokenizer_tokens(AutoTokenizer.from_pretrained(teacher_dir)),
                               vocab_source=f"{teacher_dir} (online)")


def through_parquet(rows: List[Dict], spec: str, vocab_size: int) -> List[Dict]:
    """The rows with their distributions encoded to an Arrow column, written to Parquet, read
    and decoded (what a shard round trip does to them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = parse_token_spec(spec)
    column = TOPK_COLUMN if spec.kind == "topk" else SAMPLE_COLUMN
    table = pa.table({column: encode_column([r[column] for r in rows], spec, vocab_size)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    back = decode_column(pq.read_table(io.BytesIO(buf.getvalue())).column(column), spec, vocab_size)
    return [dict(r, **{column: d}) for r, d in zip(rows, back)]


def cached_source(teacher_dir: str, problem: str, spec: str, records: Sequence[Mapping]
                  ) -> Tuple[InMemoryTokens, OnlineSparseTeacher, List[Dict]]:
    """(the rows as a token-level cache would return them, the same teacher online, the
    corpus rows {id, key}) over `records`."""
    inputs = inputs_of(teacher_dir, problem, records)
    online = online_teacher(teacher_dir, problem, spec, inputs)
    keys = list(inputs)
    rows = through_parquet(online.get_many(keys), spec, online.vocab_size)
    cached = InMemoryTokens(dict(zip(keys, rows)), problem_type=problem, tokens=spec,
                            vocab_size=online.vocab_size, vocab=online.vocab,
                            vocab_source=online.vocab_source)
    return cached, online, [{"id": k, "key": k} for k in keys]
