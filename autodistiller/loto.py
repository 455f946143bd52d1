"""Leave-one-task-out regret of configuration picks over a ledger where every task ran the same
configurations (the seven-task ledger, distiller.autodistiller.ledger_plan).

For each held-out task: a configuration's regret is the best configuration's dev metric minus its
own, in the task's own metric, divided by the teacher's metric on that task (so tasks with
different metrics average). Compared per task:

  recommender top-1 / top-3  the pick(s) of a ranker fitted on the other tasks only (top-3:
                             the best of the three picks, as a user trying all three would get)
  random top-1 / top-3       the expected regret of one / the best of three configurations drawn
                             uniformly without replacement (exact, over all draws)
  won elsewhere top-1/top-3  the configuration(s) with the best mean ratio on the other tasks:
                             what a user without a model would pick

and over tasks the mean regret of each with a bootstrap 95% interval (tasks resampled), plus the
intervals of the recommender's top-1 minus random's and minus won-elsewhere's. `loto_curve`
repeats the evaluation on growing subsets of the tasks: how the regret moves as tasks join the
ledger.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any, Callable, Dict, List, Optional, Sequence

from distiller.autodistiller.ledger import CONFIG_COLUMNS
from distiller.autodistiller.recommend import AutoDistiller, training_rows
from distiller.common.errors import UsageError

__all__ = ["task_table", "per_task_regret", "loto_regret", "loto_curve", "bootstrap_mean",
           "autodistiller_ranker", "REGRETS"]

# ranker(train_rows, held_rows) -> the held task's configuration keys, best first
Ranker = Callable[[Any, Any], Sequence[str]]
REGRETS = ("recommended_top1", "recommended_top3", "random_top1", "random_top3",
           "elsewhere_top1", "elsewhere_top3")


def _config_key(ledger) -> Any:
    """The configuration of each row: its plan name when every row has one, else its config
    columns."""
    if "config_name" in ledger.columns and ledger["config_name"].notna().all():
        return ledger["config_name"].astype(str)
    keys = ["|".join(map(str, row))
            for row in ledger[list(CONFIG_COLUMNS)].itertuples(index=False)]
    return type(ledger["task"])(keys, index=ledger.index)


def task_table(ledger):
    """One row per (task, configuration): the mean dev metric over seeds, the task's teacher
    metric, and the ratio; only completed runs."""
    done = ledger[ledger["status"] == "complete"].copy()
    done["config"] = _config_key(done)
    table = (done.groupby(["task", "config"], sort=True)
             .agg(dev_metric=("dev_metric", "mean"), teacher_metric=("teacher_metric", "first"),
                  seeds=("dev_metric", "size"))
             .reset_index())
    table["ratio"] = table["dev_metric"] / table["teacher_metric"]
    return table


def _expected_best_of(regrets: Sequence[float], k: int) -> float:
    """Expected minimum regret of k configurations drawn without replacement (exact)."""
    values = sorted(regrets)
    n = len(values)
    k = min(k, n)
    if n > 20:  # the closed form: P(min is the i-th smallest) = C(n-i-1, k-1) / C(n, k)
        from math import comb

        return sum(values[i] * comb(n - i - 1, k - 1) for i in range(n)) / comb(n, k)
    picks = list(combinations(values, k))
    return sum(min(p) for p in picks) / len(picks)


def bootstrap_mean(values: Sequence[float], *, draws: int = 10000, seed: int = 0,
                   level: float = 0.95) -> Dict[str, float]:
    """Mean and percentile bootstrap interval of the mean (values resampled with replacement)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(draws, len(x)))].mean(axis=1)
    tail = (1 - level) / 2
    return {"mean": float(x.mean()), "low": float(np.quantile(means, tail)),
            "high": float(np.quantile(means, 1 - tail))}


def autodistiller_ranker(train_rows, held_rows, **model_args: Any) -> List[str]:
    """The AutoDistiller fitted on the other tasks' runs, ranking the held task's
    configurations (one row each: the first seed's row carries the features)."""
    model = AutoDistiller(**model_args).fit(training_rows(train_rows))
    held = held_rows.drop_duplicates("config").reset_index(drop=True)
    pred = model.predict(held)
    return [held["config"].iloc[i] for i in sorted(range(len(held)), key=lambda i: -pred[i])]


def per_task_regret(ledger, ranker: Optional[Ranker] = None):
    """One row per task of the ledger: its regrets (REGRETS, module docstring), the number of
    configurations and the recommender's and won-elsewhere's picks. `ranker` defaults to
    `autodistiller_ranker`; it sees the other tasks' rows only."""
    import pandas as pd

    ranker = ranker or autodistiller_ranker
    table = task_table(ledger)
    rows = ledger[ledger["status"] == "complete"].copy()
    rows["config"] = _config_key(rows)
    tasks = sorted(table["task"].unique().tolist())
    if len(tasks) < 2:
        raise UsageError(f"leave-one-task-out needs at least 2 tasks, the ledger has {tasks}")
    out = []
    for task in tasks:
        mine = table[table["task"] == task].set_index("config")
        others = table[table["task"] != task]
        teacher = abs(float(mine["teacher_metric"].iloc[0])) or 1.0
        regret = ((mine["dev_metric"].max() - mine["dev_metric"]) / teacher).to_dict()
        picks = [c for c in ranker(rows[rows["task"] != task], rows[rows["task"] == task])
                 if c in regret]
        elsewhere = (others[others["config"].isin(list(regret))].groupby("config")["ratio"]
                     .mean().sort_values(ascending=False, kind="mergesort").index.tolist())
        values = list(regret.values())
        out.append({
            "task": task, "configs": len(regret),
            "recommended_top1": regret[picks[0]],
            "recommended_top3": min(regret[c] for c in picks[:3]),
            "random_top1": _expected_best_of(values, 1),
            "random_top3": _expected_best_of(values, 3),
            "elsewhere_top1": regret[elsewhere[0]] if elsewhere else float("nan"),
            "elsewhere_top3": min(regret[c] for c in elsewhere[:3]) if elsewhere else float("nan"),
            "recommended_pick": picks[0], "elsewhere_pick": elsewhere[0] if elsewhere else ""})
    return pd.DataFrame(out)


def loto_regret(ledger, ranker: Optional[Ranker] = None, *, seed: int = 0,
                draws: int = 10000):
    """(per-task DataFrame, summary dict) of the regrets described in the module docstring:
    `per_task_regret`, and over tasks each mean with its bootstrap interval."""
    per_task = per_task_regret(ledger, ranker)
    tasks = per_task["task"].tolist()
    summary: Dict[str, Any] = {col: bootstrap_mean(per_task[col].tolist(), draws=draws,
                                                   seed=seed) for col in REGRETS}
    summary["recommended_minus_random_top1"] = bootstrap_mean(
        (per_task["recommended_top1"] - per_task["random_top1"]).tolist(), draws=draws,
        seed=seed)
    summary["recommended_minus_elsewhere_top1"] = bootstrap_mean(
        (per_task["recommended_top1"] - per_task["elsewhere_top1"]).tolist(), draws=draws,
        seed=seed)
    summary["tasks"] = len(tasks)
    return per_task, summary


def loto_curve(ledger, ranker: Optional[Ranker] = None, *, min_tasks: int = 2,
               max_subsets: int = 10, seed: int = 0, full=None):
    """Leave-one-task-out on growing subsets of the ledger's tasks: for each size from
    `min_tasks` to all of them, every subset of that many tasks (at most `max_subsets`, drawn
    without repeats, seeded), each scored by `per_task_regret`. One row per size: the number of
    subsets and, per regret, the mean over subsets of the mean over their held-out tasks; and
    the share of subsets where the recommender's top-1 regret is below random's. `full`: the
    `per_task_regret` of all the tasks when already computed (the last size reuses it)."""
    import numpy as np
    import pandas as pd

    tasks = sorted(ledger.loc[ledger["status"] == "complete", "task"].unique().tolist())
    rng = np.random.default_rng(seed)
    out = []
    for size in range(max(2, min_tasks), len(tasks) + 1):
        subsets = list(combinations(tasks, size))
        if len(subsets) > max_subsets:
            subsets = [subsets[i] for i in sorted(rng.choice(len(subsets), max_subsets,
                                                             replace=False))]
        means = [(full if full is not None and size == len(tasks)
                  else per_task_regret(ledger[ledger["task"].isin(s)], ranker))[list(REGRETS)]
                 .mean() for s in subsets]
        frame = pd.DataFrame(means)
        row = {"tasks": size, "subsets": len(subsets),
               **{col: float(frame[col].mean()) for col in REGRETS},
               "beats_random_share": float((frame["recommended_top1"]
                                            < frame["random_top1"]).mean())}
        out.append(row)
    return pd.DataFrame(out)
