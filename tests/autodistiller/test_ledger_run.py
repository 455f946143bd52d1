"""The seven-task ledger: its plan, and the resumable runner end to end on a tiny plan (tiny
random BERT teacher and students, a few rows of SST-2 and SUBJ copied into a shared-data folder)."""
import json
import math
import os

import pytest

from distiller.autodistiller import ledger_run
from distiller.autodistiller.ledger_plan import CONFIGS, SECOND_SEED, TASKS, Plan, default_plan
from distiller.autodistiller.ledger_tasks import (expected_calibration_error, label_entropy,
                                                  mean_words)
from distiller.taskdata.paths import shared_data

DATA = os.path.dirname(shared_data("glue"))


def test_default_plan_is_the_same_configurations_on_seven_tasks():
    plan = default_plan()
    assert set(plan.tasks) == {"sst2", "rte", "stsb", "cola", "mrpc", "subj", "pc"}
    assert len(CONFIGS) >= 24 and len({c["name"] for c in CONFIGS}) == len(CONFIGS)
    assert len(SECOND_SEED) == 6 and set(SECOND_SEED) <= {c["name"] for c in CONFIGS}
    cells = plan.cells()
    assert len(cells) == 7 * (len(CONFIGS) + 6) and len({c.key for c in cells}) == len(cells)
    for task in plan.tasks:  # every task gets exactly the same (configuration, seed) pairs
        assert sorted((c.config, c.seed) for c in cells if c.task == task) == \
            sorted((c.config, c.seed) for c in cells if c.task == "sst2")
    # task after task: a task's cells are consecutive, in the plan's task order
    per_task = len(CONFIGS) + len(SECOND_SEED)
    assert [c.task for c in cells] == [t for t in plan.tasks for _ in range(per_task)]
    assert set(TASKS) == set(plan.tasks)
    # the factors the study varies all vary
    assert {c["inter_loss"] for c in CONFIGS} == {"none", "mse", "cosine", "pkd", "mi"}
    assert {c["mi_alpha"] for c in CONFIGS if c["inter_loss"] == "mi"} == {0.1, 0.5, 0.9}
    for factor in ("mapping", "temperature", "lr", "augmentation"):
        assert len({c[factor] for c in CONFIGS}) >= 2, factor
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_task_feature_helpers():
    assert label_entropy([0, 1, 0, 1], False) == pytest.approx(1.0)
    assert label_entropy([0, 0, 0, 1], False) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2))
    assert label_entropy([1, 1], False) == 0.0
    assert 0.0 < label_entropy([0.0, 1.0, 2.5, 5.0], True) <= 1.0
    # confident and right: calibrated; confident and always wrong: ECE near 1
    assert expected_calibration_error([[10.0, -10.0]] * 4, [0] * 4) < 1e-6
    assert expected_calibration_error([[10.0, -10.0]] * 4, [1] * 4) > 0.99
    assert mean_words([{"text_a": "a b c", "text_b": "d"}, {"text_a": "e", "text_b": None}]) == 2.5


@pytest.fixture()
def mini_data(tmp_path):
    """A shared-data folder with the first rows of SST-2 and SUBJ, laid out as the real one."""
    root = tmp_path / "data"
    for src, dst, rows, header in (("glue/SST-2/train.tsv", "glue/SST-2/train.tsv", 48, 1),
                                   ("glue/SST-2/dev.tsv", "glue/SST-2/dev.tsv", 16, 1),
                                   ("text/SUBJ/train.txt", "text/SUBJ/train.txt", 48, 0),
                                   ("text/SUBJ/test.txt", "text/SUBJ/test.txt", 16, 0)):
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        with open(os.path.join(DATA, src), encoding="utf-8") as fh:
            (root / dst).write_text("".join(next(fh) for _ in range(rows + header)))
    return str(root)


def tiny_plan(teacher_dir):
    names = ("pred-t2", "pred-t2-eda")
    return Plan(tasks=("sst2", "subj"), configs=tuple(c for c in CONFIGS if c["name"] in names),
                second_seed=("pred-t2",), steps=5, batch_size=8, train_size=32, dev_size=16,
                teacher_size=32, teacher_epochs=1, probe_steps=2, student=teacher_dir,
                student_layers=2)


@pytest.mark.slow
def test_runner_runs_every_cell_once_two_at_a_time_alike_and_reruns_a_killed_one(
        tmp_path, mini_data, teacher_dir):
    from distiller.autodistiller.features import HashingEncoder

    out = str(tmp_path / "ledger")
    plan = tiny_plan(teacher_dir)
    counts = ledger_run.run_ledger(out, plan, data_root=mini_data, encoder=HashingEncoder(),
                                   workers=1)
    assert counts == {"complete": 6, "failed": 0, "skipped": 0}
    rows = ledger_run.read_rows(out)
    assert [r["cell"] for r in rows] == [c.key for c in plan.cells()]
    for row in rows:
        assert row["status"] == "complete" and row["steps"] == 5 and row["dev_metric"] is not None
        assert row["machine"]["cores"] >= 1 and row["machine"]["cpu"]
        assert row["started_at"] <= row["ended_at"] and row["git_commit"]
        assert row["seed"] == int(row["cell"][-1])
        assert set(row["task_features"]) >= {"teacher_metric", "teacher_ece", "teacher_nokd_gap",
                                             "mean_words", "label_entropy"}
        config = json.loads(row["config_json"])
        assert config["max_steps"] == 5 and config["seed"] == row["seed"]
        history = json.load(open(os.path.join(config["run_dir"], "result.json")))["history"]
        assert history[-1]["global_step"] == 5  # the budget, whatever the corpus size
    eda = [r for r in rows if r["config_name"] == "pred-t2-eda"]
    plain = [r for r in rows if r["config_name"] == "pred-t2" and r["seed"] == 0]
    assert all(r["corpus"] != p["corpus"] for r, p in zip(eda, plain))
    task = json.load(open(os.path.join(out, "subj", "task.json")))
    assert 0.0 <= task["task_features"]["label_entropy"] <= 1.0
    assert "6/6 cells done" in ledger_run.status_text(out)

    # nothing left: a restart runs nothing
    assert ledger_run.run_ledger(out, None, data_root=mini_data,
                                 encoder=HashingEncoder())["complete"] == 0
    # two cells at a time (worker processes, one thread each) give the rows of one at a time:
    # the SST-2 cells of pred-t2 (two seeds) dropped and run again side by side
    path = os.path.join(out, "ledger.jsonl")
    first = {r["cell"]: r for r in rows}
    again = [c.key for c in plan.cells() if c.task == "sst2" and c.config == "pred-t2"]
    lines = open(path, encoding="utf-8").read().splitlines(keepends=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(line for line in lines if json.loads(line)["cell"] not in again)
    assert ledger_run.run_ledger(out, None, data_root=mini_data, encoder=HashingEncoder(),
                                 parallel=2) == {"complete": 2, "failed": 0, "skipped": 0}
    rerun = {r["cell"]: r for r in ledger_run.read_rows(out)[-2:]}
    assert sorted(rerun) == sorted(again)
    for key, row in rerun.items():
        assert row["machine"]["threads"] >= 1
        assert row["dev_metric"] == pytest.approx(first[key]["dev_metric"], abs=1e-6), key

    # a cell killed mid-way left no row (or half a line): the restart runs exactly that cell
    lines = open(path, encoding="utf-8").read().splitlines(keepends=True)
    cut = json.loads(lines[-1])["cell"]
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines[:-1])
        fh.write(lines[-1][:40])
    assert "5/6 cells done" in ledger_run.status_text(out)
    assert ledger_run.run_ledger(out, None, data_root=mini_data,
                                 encoder=HashingEncoder())["complete"] == 1
    assert ledger_run.read_rows(out)[-1]["cell"] == cut


def test_a_ledger_refuses_another_plan(tmp_path, teacher_dir):
    out = str(tmp_path / "ledger")
    plan = tiny_plan(teacher_dir)
    assert ledger_run.load_plan(out, plan) == plan
    with pytest.raises(SystemExit, match="another plan"):
        ledger_run.load_plan(out, default_plan())
    assert ledger_run.load_plan(out, None) == plan


def test_status_without_a_ledger(tmp_path, capsys):
    assert ledger_run.main(["status", "--out", str(tmp_path / "none")]) == 0
    assert "no ledger" in capsys.readouterr().out


def test_machine_time_per_cell_divides_by_the_cells_run_beside_it(tmp_path):
    """Two cells side by side count half their wall time each; one alone, all of it: the ETA of
    `make ledger-status` follows the runner's parallelism."""
    import subprocess
    import sys

    from distiller.autodistiller import ledger_control

    def row(cell, start, end):
        return {"cell": cell, "status": "complete", "wall_time_s": end - start,
                "started_at": f"2026-12-07T10:{start // 60:02d}:{start % 60:02d}+00:00",
                "ended_at": f"2026-12-07T10:{end // 60:02d}:{end % 60:02d}+00:00"}

    rows = [row("a", 0, 100), row("b", 0, 120), row("c", 200, 260),
            {"cell": "d", "status": "complete", "wall_time_s": 50.0}]   # no times: counted whole
    assert ledger_control.cell_seconds(rows) == [50.0, 60.0, 60.0, 50.0]
    out = tmp_path / "ledger"
    plan = default_plan(("sst2",))
    ledger_control.load_plan(str(out), plan)
    (out / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    status = subprocess.run([sys.executable, "-c", "import sys; from distiller.autodistiller "
                             "import ledger_control as c; print(c.status_text(sys.argv[1])); "
                             "print('torch' in sys.modules)", str(out)],
                            capture_output=True, text=True, check=True).stdout
    assert "57 s of the machine per cell" in status and "0/30 cells done" in status
    assert status.strip().endswith("False")      # the status loads no trainer
