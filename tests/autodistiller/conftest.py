"""The trainer's fixtures (a tiny random BERT teacher on a WordPiece tokenizer trained on SST-2,
its float32 cache of a few SST-2 rows, one torch thread per test): the sweeps train and build
with the same models."""
from tests.distill_train.conftest import (_one_torch_thread, cache_f32, sst2_small,  # noqa: F401
                                          teacher_dir, tokenizer_dir)
