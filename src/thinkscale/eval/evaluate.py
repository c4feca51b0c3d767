"""`thinkscale eval`: records (from this tool or anywhere) -> metrics.json."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.eval.frontier import frontier
from thinkscale.eval.metrics import hybrid_metrics, run_metrics, scaling_metrics
from thinkscale.records import MODE_KEY, load_records, record_name, write_json_atomic
from thinkscale.tasks.extract import extract_for
from thinkscale.tasks.grading import GradingPool, qa_f1


def results_path(path: str | Path) -> Path:
    """A results file, or a run directory holding results.jsonl."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.jsonl"
    if not path.is_file():
        raise ThinkscaleError(f"{path}: file not found")
    return path


def _fill_missing(records: list[dict], pool: GradingPool) -> None:
    """Records produced elsewhere may lack `pred` or `correct`: extract and grade them here."""
    todo = []
    for r in records:
        kind = r.get("grader") or ("numeric" if r.get("task") == "gsm8k" else "math")
        r["grader"] = kind
        if "pred" not in r:
            r["pred"] = extract_for(kind, r.get("answer") or "", r.get("choices"))
        if kind == "qa" and "f1" not in r and r.get("gold") is not None:
            r["f1"] = round(qa_f1(r["pred"], r["gold"]), 4)
        if r.get("correct") is None:
            if r.get("gold") is None:
                raise ThinkscaleError(
                    f"record {r.get('id')!r} has neither 'correct' nor a gold answer: nothing to grade"
                )
            todo.append(r)
    gold = lambda g: g if isinstance(g, list) else str(g)  # noqa: E731 (a list: accepted answers)
    verdicts = pool.grade([(r["grader"], r["pred"], gold(r["gold"])) for r in todo],
                         [record_name(r) for r in todo])
    for r, ok in zip(todo, verdicts):
        r["correct"] = ok


def evaluate(records: list[dict], pool: GradingPool | None = None) -> dict:
    if not records:
        raise ThinkscaleError("no records to evaluate (empty results file)")
    own = pool is None
    pool = pool or GradingPool(workers=1)
    try:
        _fill_missing(records, pool)
        # a run: (task, budget, num_ignore, a hybrid model's requested mode, an adaptive rule, and
        # the temperature: records of several files, e.g. a greedy sweep and sampled runs)
        runs_records: dict[tuple, list[dict]] = defaultdict(list)
        for r in records:
            key = (r.get("task"), r.get("budget"), int(r.get("num_ignore") or 0), r.get(MODE_KEY), r.get("adaptive"),
                   r.get("temperature"))  # fmt: skip
            runs_records[key].append(r)

        def equal_for(kind: str):
            # group answers with the same grader that judges them (numeric runs in-process)
            return lambda a, b: pool.equivalent(kind, a, b)

        runs = []
        for (task, budget, ni, mode, rule, temp), rs in sorted(runs_records.items(), key=lambda kv: _sort_key(kv[0])):
            m = run_metrics(rs, equal_for(rs[0].get("grader", "math")))
            runs.append({"task": task, "budget": budget, "num_ignore": ni, **({MODE_KEY: mode} if mode else {}),
                         **({"adaptive": rule} if rule else {}), **({"temperature": temp} if temp is not None else {}),
                         **m})  # fmt: skip
        tasks = {}
        for task in sorted({r["task"] for r in runs}, key=str):
            task_runs = [r for r in runs if r["task"] == task]
            task_recs = {k: v for k, v in runs_records.items() if k[0] == task}
            # s1's scaling metrics over the budget sweep: of a hybrid model, its forced-think runs
            # (where budget forcing acts), else its auto runs
            scaled = scaled_runs(task_runs)
            keys = {(r["task"], r["budget"], r["num_ignore"], r.get(MODE_KEY), None, r.get("temperature")) for r in scaled}
            tasks[task] = scaling_metrics(scaled, {k: v for k, v in task_recs.items() if k in keys})
            if any("think_share" in r for r in task_runs):  # a hybrid model: how often it chose to think
                chose = [r for k, rs in task_recs.items() if k[3] in (None, "auto") for r in rs]
                tasks[task]["think_share"] = hybrid_metrics(chose).get("think_share")
        return {"runs": runs, "tasks": tasks, "frontier": frontier(runs)}
    finally:
        if own:
            pool.close()


MODE_ORDER = {None: 0, "auto": 0, "think": 1, "short": 2}


def scaled_runs(task_runs: list[dict]) -> list[dict]:
    """The runs of one task that form its budget sweep: all of them but adaptive ones, or of a
    hybrid model its forced-think runs (where budget forcing acts), else its auto runs."""
    task_runs = [r for r in task_runs if "adaptive" not in r] or task_runs
    return ([r for r in task_runs if r.get(MODE_KEY) in (None, "think")]
            or [r for r in task_runs if r.get(MODE_KEY) == "auto"] or task_runs)  # fmt: skip


def _sort_key(key: tuple) -> tuple:
    task, budget, ni, mode, rule, temp = key
    return (str(task), rule is not None, str(rule), temp or 0, MODE_ORDER[mode], budget is None, budget or 0, ni)


def evaluate_path(path: str | Path, out: str | Path | None = None) -> tuple[dict, Path]:
    src = results_path(path)
    records = load_records(src)
    if not records:
        raise ThinkscaleError(f"{src}: no records to evaluate (empty results file)")
    metrics = evaluate(records)
    out = Path(out) if out else src.with_name("metrics.json")
    write_json_atomic(out, metrics)
    return metrics, out


def summary_table(metrics: dict) -> str:
    """A plain-text table of the runs, then the s1 metrics per task."""
    hybrid = any(MODE_KEY in r for r in metrics["runs"])  # a column for the requested mode
    mode = lambda r: f" {str(r.get(MODE_KEY, '-')):>5}" if hybrid else ""  # noqa: E731
    head = (f"{'task':<10}{' mode' if hybrid else ''} {'budget':>7} {'ignore':>6} {'n':>3} {'acc':>6} {'think':>7} "
            f"{'answer':>6} {'capped':>6} {'pass@n':>7} {'maj@n':>6}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in metrics["runs"]:
        n = str(r["n"])
        lines.append(
            f"{str(r['task']):<10}{mode(r)} {str(r['budget'] if r['budget'] is not None else '-'):>7} {r['num_ignore']:>6} "
            f"{r['n']:>3} {100 * r['accuracy']:>5.1f}% {r['avg_thinking_tokens']:>7.1f} {r['avg_answer_tokens']:>6.1f} "
            f"{r['capped']:>6} {100 * r['pass@k'][n]:>6.1f}% {100 * r['maj@k'][n]:>5.1f}%"
        )
    for r in metrics["runs"]:
        extra = [f"EM {100 * r['em']:.1f}% F1 {100 * r['f1']:.1f}%" if "em" in r else "",
                 f"chance {100 * r['chance']:.1f}%" if "chance" in r else "",
                 f"judge {100 * r['judge_accuracy']:.1f}% (agrees {100 * r['judge_agreement']:.1f}%, "
                 f"{r['judged']} judged)" if "judged" in r else ""]  # fmt: skip
        if any(extra):
            lines.append(f"{r['task']} budget {r['budget']}: " + ", ".join(e for e in extra if e))
    for r in metrics["runs"]:
        if "think_share" in r:  # a hybrid model: which mode it took, and how each went
            modes = "; ".join(f"{mode} {m['samples']} at {100 * m['accuracy']:.1f}%, {m['avg_total_tokens']:.1f} tokens"
                              for mode, m in r["by_mode"].items())  # fmt: skip
            lines.append(f"{r['task']} budget {r['budget']} --mode {r.get(MODE_KEY)}: think share "
                         f"{100 * r['think_share']:.0f}%, accuracy {100 * r['accuracy']:.1f}%, "
                         f"{r['avg_total_tokens']:.1f} tokens ({modes})")  # fmt: skip
    for r in metrics["runs"]:
        if "adaptive" in r:  # early exit: how often, at what probe cost
            early = r["stopped_by"]["adaptive"]
            lines.append(f"{r['task']} budget {r['budget']} adaptive {r['adaptive']}: accuracy {100 * r['accuracy']:.1f}%, "
                         f"{r['avg_thinking_tokens']:.1f} thinking + {r['avg_probe_tokens']:.1f} probe tokens "
                         f"({r['avg_probes']:.1f} probes), stopped early {early}/{r['samples']}")  # fmt: skip
    for task, t in metrics["tasks"].items():
        ctrl = "-" if t["control"] is None else f"{100 * t['control']:.0f}%"
        scal = "-" if t["scaling"] is None else f"{t['scaling']:.2f}"
        lines.append(f"{task}: control {ctrl}, scaling {scal} (acc points / 1k thinking tokens), "
                     f"performance {100 * t['performance']:.1f}%")  # fmt: skip
    return "\n".join(lines)
