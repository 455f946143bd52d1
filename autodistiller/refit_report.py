"""The recommender's evaluation in words and numbers: the report a refit writes (markdown and
JSON, distiller.autodistiller.refit) and the short block `distiller recommend` prints with every
ranking, from the summary the model file keeps (info.evaluation).

Regret, per held-out task: (the best configuration's dev metric - the pick's) / the teacher's
dev metric, in the task's own metric (distiller.autodistiller.loto); 0 means the pick was the
best configuration of that task, lower is better.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional

from distiller.common.files import atomic_write
from distiller.common.runfiles import json_safe

__all__ = ["evaluation_summary", "evaluation_lines", "verdict", "report_markdown",
           "write_report"]

_CIS = ("recommended_top1", "recommended_top3", "random_top1", "random_top3", "elsewhere_top1",
        "elsewhere_top3", "recommended_minus_random_top1", "recommended_minus_elsewhere_top1")


_BEATS = ("the recommender's top pick beats a random pick (the 95% interval of the difference "
          "is below zero) and the configuration that won elsewhere")


def evaluation_summary(summary: Mapping[str, Any], *, runs: int,
                       task_names: List[str]) -> Dict[str, Any]:
    """What the model file keeps of a leave-one-task-out summary (loto.loto_regret): the
    tasks and runs it covered, and every mean with its interval."""
    out: Dict[str, Any] = {"tasks": int(summary["tasks"]), "runs": int(runs),
                           "task_names": list(task_names)}
    out.update({k: {b: float(summary[k][b]) for b in ("mean", "low", "high")} for k in _CIS})
    return out


def verdict(evaluation: Mapping[str, Any]) -> Optional[str]:
    """None when the recommender's top-1 beats random's with a 95% interval of the difference
    below zero and is below won-elsewhere's; else the warning line saying what it does not do."""
    diff = evaluation["recommended_minus_random_top1"]
    rec, rnd = evaluation["recommended_top1"]["mean"], evaluation["random_top1"]["mean"]
    elsewhere = evaluation["elsewhere_top1"]["mean"]
    if rec >= rnd:
        return ("warning: in leave-one-task-out this recommender's top pick does NOT beat a "
                "random pick: treat its ranking as no better than chance")
    if diff["high"] >= 0:
        return ("warning: this recommender's top pick beats a random pick on average, but the "
                "95% interval of the difference includes zero: not shown better than chance")
    if not rec < elsewhere:
        return ("warning: this recommender's top pick beats a random pick but not the "
                "configuration that won on the other tasks: that one is as good a choice")
    return None


def _ci(value: Mapping[str, float], scale: float = 100.0) -> str:
    return (f"{value['mean'] * scale:.2f} [{value['low'] * scale:.2f}, "
            f"{value['high'] * scale:.2f}]")


def evaluation_lines(evaluation: Optional[Mapping[str, Any]], *, n_rows: int,
                     tasks: List[str]) -> List[str]:
    """The block `distiller recommend` prints: what the model was fitted on, its
    leave-one-task-out mean regret against random and won-elsewhere picks, and a warning line
    when it does not beat random (or when no evaluation is stored)."""
    lines = [f"recommender fitted on {n_rows} runs of {len(tasks)} tasks ({', '.join(tasks)})"]
    if not evaluation:
        lines.append("warning: this model file stores no leave-one-task-out evaluation: its "
                     "ranking is unvalidated (refit with `make recommender`)")
        return lines
    lines.append(f"leave-one-task-out over {evaluation['tasks']} tasks, mean regret of the top "
                 "pick (% of the teacher's metric, 95% CI; lower is better):")
    lines.append(f"  recommender {_ci(evaluation['recommended_top1'])}   random "
                 f"{_ci(evaluation['random_top1'])}   won elsewhere "
                 f"{_ci(evaluation['elsewhere_top1'])}")
    lines.append(f"  recommender - random {_ci(evaluation['recommended_minus_random_top1'])};"
                 f" recommender - won elsewhere "
                 f"{_ci(evaluation['recommended_minus_elsewhere_top1'])}")
    warning = verdict(evaluation)
    if warning:
        lines.append(warning)
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value * 100:.2f}"
    return str(value)


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def report_markdown(data: Mapping[str, Any]) -> str:
    """The markdown report of a refit (`data`: what write_report also writes as JSON)."""
    ev, per_task = data["evaluation"], data["per_task"]
    lines = ["# The recommender's leave-one-task-out evaluation", "",
             f"Ledger `{data['ledger']}`: {data['runs']} finished runs of {len(data['tasks'])} "
             f"complete tasks ({', '.join(data['tasks'])}), {data['configs']} configurations "
             "each."]
    if data["incomplete"]:
        parts = [f"{t} ({n} of {data['configs']} configurations)"
                 for t, n in sorted(data["incomplete"].items())]
        lines.append(f"Left out, not complete yet: {', '.join(parts)}.")
    lines += ["", f"Model: gradient-boosted trees on the configuration factors and the task "
              f"features {', '.join(data['features']) or '(none)'}; the shipped model is fitted "
              "on every complete task, each held-out model on the others only.", "",
              "Regret of a pick on a held-out task = (best configuration's dev metric - the "
              "pick's) / the teacher's dev metric, in the task's own metric, shown in % (0: the "
              "pick was the best; lower is better). Top-3: the best of three picks. Random: the "
              "exact expectation over picks. Won elsewhere: the configuration(s) with the best "
              "mean student/teacher ratio on the other tasks, what a user without a model would "
              "choose.", ""]
    rows = [[r["task"], r["configs"], r["recommended_top1"], r["recommended_top3"],
             r["random_top1"], r["random_top3"], r["elsewhere_top1"], r["elsewhere_top3"],
             r["recommended_pick"], r["elsewhere_pick"]] for r in per_task]
    rows.append(["**mean** [95% CI]", "",
                 *[_ci(ev[k]) for k in ("recommended_top1", "recommended_top3", "random_top1",
                                        "random_top3", "elsewhere_top1", "elsewhere_top3")],
                 "", ""])
    lines += _table(["held-out task", "configs", "recommender top-1", "recommender top-3",
                     "random top-1", "random top-3", "won elsewhere top-1",
                     "won elsewhere top-3", "recommender's pick", "won elsewhere"], rows)
    lines += ["", f"Recommender - random, top-1: {_ci(ev['recommended_minus_random_top1'])}; "
              f"recommender - won elsewhere, top-1: "
              f"{_ci(ev['recommended_minus_elsewhere_top1'])} (bootstrap over tasks, "
              f"{data['draws']} draws).", "",
              f"**Verdict:** {verdict(ev) or _BEATS}",
              "", "## Regret as tasks join the ledger", "",
              "Leave-one-task-out on subsets of the complete tasks (every subset of each size, "
              f"at most {data['curve_subsets']} drawn per size), mean top-1 regret in %:", ""]
    lines += _table(["tasks", "subsets", "recommender top-1", "random top-1",
                     "won elsewhere top-1", "subsets where the recommender beats random"],
                    [[c["tasks"], c["subsets"], c["recommended_top1"], c["random_top1"],
                      c["elsewhere_top1"], f"{c['beats_random_share'] * 100:.0f}%"]
                     for c in data["curve"]])
    return "\n".join(lines) + "\n"


def write_report(path_md: str, path_json: str, data: Mapping[str, Any]) -> None:
    """Both forms of the report, each written atomically."""
    text = json.dumps(json_safe(data), indent=1, sort_keys=True, allow_nan=False)
    atomic_write(path_json, text + "\n")
    atomic_write(path_md, report_markdown(data))
