"""The trainer's fixtures (a tiny random BERT teacher on a WordPiece tokenizer trained on SST-2,
its float32 cache of a few SST-2 rows, one torch thread per test): the sweeps train and build
with the same models. And the recommender refitted once on the small synthetic seven-task-style
ledger (synthetic_ledger7.py), shared by the refit and recommend tests."""
import pytest

from tests.distill_train.conftest import (_one_torch_thread, cache_f32, sst2_small,  # noqa: F401
                                          teacher_dir, tokenizer_dir)


@pytest.fixture(scope="session")
def refitted7(tmp_path_factory):
    """{"ledger", "out", "model"}: `python -m distiller.autodistiller.refit` run on the synthetic
    ledger (four complete tasks, task e with 3 of 6 configurations), small settings, without
    the ledger's plots (`distiller sweep-report`, tested with the sweeps)."""
    from distiller.autodistiller.refit import main
    from tests.autodistiller.synthetic_ledger7 import write_ledger

    root = tmp_path_factory.mktemp("refit7")
    ledger = write_ledger(str(root / "ledger"), partial={"e": 3})
    out = str(root / "assets")
    assert main(["--ledger", ledger, "--out", out, "--trees", "30", "--draws", "2000",
                 "--curve-subsets", "2", "--note", "synthetic", "--no-sweep-report"]) == 0
    return {"ledger": ledger, "out": out, "model": f"{out}/autodistiller.json"}
