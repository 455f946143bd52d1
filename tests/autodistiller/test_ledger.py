"""The run ledger: typed columns, strict rows, parallel-safe appends, single-file export."""
import json

import numpy as np
import pandas as pd
import pytest

from distiller.autodistiller.ledger import COLUMNS, Ledger, LedgerError


def row(**over):
    base = {
        "run_id": "s/0000", "study": "s", "trial": 0, "task": "rte", "student": "tiny",
        "teacher": "minilm", "teacher_fingerprint": "abc123", "teacher_metric": 0.65,
        "augmentation": "none", "corpus": "rte-train", "mixup": False, "mapping": "skip",
        "inter_loss": "mse", "mi_alpha": None, "pred_loss": "kl", "temperature": 2.0,
        "w_kd": 1.0, "w_inter": 1.0, "w_gold": 0.0, "lr": 5e-5,
        "n_examples": 2490, "n_labels": 2, "is_regression": False, "mean_length": 52.3,
        "difficulty_prior": 0.55, "embedding": [0.1, -0.2, 0.3],
        "metric_name": "accuracy", "dev_metric": 0.6, "ratio": 0.6 / 0.65, "best_epoch": 1,
        "epochs_run": 2, "wall_time_s": 12.5, "status": "complete",
        "config_json": json.dumps({"task": "rte"}), "created_at": 1.7e9,
    }
    base.update(over)
    return base


def test_rows_round_trip_with_types(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger"))
    assert len(ledger.read()) == 0 and list(ledger.read().columns) == list(COLUMNS)
    ledger.append([row(), row(run_id="s/0001", trial=np.int64(1), inter_loss="mi", mi_alpha=0.9,
                          status="pruned", dev_metric=float("nan"), ratio=None)])
    ledger.append([row(run_id="s/0002", trial=2, status="failed", dev_metric=None, ratio=None)])
    df = ledger.read()
    assert len(df) == 3 and list(df.columns) == list(COLUMNS)
    assert df["trial"].dtype == np.int64 and df["n_examples"].dtype == np.int64
    assert df["mixup"].dtype == bool and df["is_regression"].dtype == bool
    assert df["lr"].dtype == np.float64 and pd.api.types.is_string_dtype(df["task"])
    assert df.loc[0, "mi_alpha"] is None or np.isnan(df.loc[0, "mi_alpha"])
    assert df.loc[1, "mi_alpha"] == pytest.approx(0.9)
    assert list(df["status"]) == ["complete", "pruned", "failed"]
    assert np.isnan(df.loc[2, "dev_metric"])
    assert list(df.loc[0, "embedding"]) == pytest.approx([0.1, -0.2, 0.3])
    out = tmp_path / "shipped.parquet"
    assert ledger.export(str(out)) == 3
    shipped = Ledger(str(out))
    pd.testing.assert_frame_equal(shipped.read(), df)
    with pytest.raises(LedgerError, match="read-only"):
        shipped.append([row()])


@pytest.mark.parametrize("change, message", [
    ({"trial": "3"}, "'trial' expects an integer"),
    ({"mixup": 1}, "'mixup' expects true/false"),
    ({"lr": "5e-5"}, "'lr' expects a number"),
    ({"temperature": float("nan")}, "not NaN"),
    ({"status": "done"}, "'status' must be one of"),
    ({"student": None}, "'student' expects a string"),
    ({"embedding": 3.0}, "list of numbers"),
])
def test_bad_rows_are_refused(tmp_path, change, message):
    with pytest.raises(LedgerError, match=message.replace("(", r"\(")):
        Ledger(str(tmp_path / "l")).append([row(**change)])
    assert len(Ledger(str(tmp_path / "l")).read()) == 0


def test_missing_and_unknown_columns_are_named(tmp_path):
    bad = row(colour="red")
    del bad["lr"]
    with pytest.raises(LedgerError,
                       match=r"missing columns \['lr'\], unknown columns \['colour'\]"):
        Ledger(str(tmp_path / "l")).append([bad])


def test_a_file_without_the_later_columns_reads_them_as_empty(tmp_path):
    """A part file written before EXTRA_COLUMNS (the shipped ledger is one) still reads; the
    later columns are None, and rows may carry them or not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distiller.autodistiller.ledger import EXTRA_COLUMNS

    ledger = Ledger(str(tmp_path / "l"))
    ledger.append([row(config_name="pred-t2", seed=1, teacher_ece=0.05)])
    old = {k: v for k, v in row(run_id="s/old").items() if k not in EXTRA_COLUMNS}
    pq.write_table(pa.Table.from_pylist([old]), str(tmp_path / "l" / "part-0-old.parquet"))
    df = ledger.read().set_index("run_id")
    assert df.loc["s/0000", "config_name"] == "pred-t2" and df.loc["s/0000", "seed"] == 1
    assert df.loc["s/0000", "teacher_ece"] == pytest.approx(0.05)
    assert pd.isna(df.loc["s/old", "config_name"]) and pd.isna(df.loc["s/old", "teacher_ece"])
    with pytest.raises(LedgerError, match="'seed' expects an integer"):
        ledger.append([row(seed="1")])
