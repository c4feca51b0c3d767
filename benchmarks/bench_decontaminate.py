"""8-gram decontamination at s1's scale (not a timed test): 60k training questions against the
built-in evaluation test splits (GSM8K test + MATH-500 + MATH test = 6,819 questions).

The 60k are the real MATH and GSM8K training questions (15k), each repeated 4 times under new
ids, so every n-gram is hashed and looked up 4 times as it would be in a 60k corpus. Timed: the
`decontaminate` stage as `thinkscale data decontaminate` runs it (index + datatrove filter,
local executor, 2 tasks). Baseline in the same run: one process, a Python set of n-gram
strings, no datatrove. Prints P6 = stage seconds (target <= 10).

    python benchmarks/bench_decontaminate.py [--json] [--quick] [--copies 4] [--tasks 2]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path


def baseline(questions: list[str], eval_questions: list[str], n: int) -> tuple[int, float]:
    def grams(text: str) -> set[str]:
        words = re.sub(r"\s+", " ", text.lower()).split()
        return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}

    t0 = time.perf_counter()
    index: set[str] = set()
    for q in eval_questions:
        index |= grams(q)
    dropped = sum(1 for q in questions if not grams(q).isdisjoint(index))
    return dropped, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2,000 questions x MATH-500 (seconds)")
    args = ap.parse_args()

    import thinkscale as ts
    from thinkscale.data.decontaminate import DecontaminateConfig
    from thinkscale.data.executors import ExecutorConfig
    from thinkscale.data.traces import load_traces
    from thinkscale.records import write_jsonl_atomic
    from thinkscale.tasks import get_task

    base = load_traces("math-train") + load_traces("gsm8k-train")
    if args.quick:
        base = base[:2000]
    rows = [{**r, "id": f"{r['id']}#{c}"} for c in range(args.copies) for r in base]
    eval_tasks = ["math500"] if args.quick else DecontaminateConfig().eval_tasks
    eval_questions = [ex.question for t in eval_tasks for ex in get_task(t).load()]
    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp) / "traces.jsonl"
        write_jsonl_atomic(traces, rows)
        report = ts.curate(data=[str(traces)], out=str(Path(tmp) / "run"), stages=["decontaminate"],
                           executor=ExecutorConfig(tasks=args.tasks),
                           decontaminate=DecontaminateConfig(eval_tasks=eval_tasks), progress=False)  # fmt: skip
        summary = next(s for s in report["stages"] if s["name"] == "decontaminate")
        seconds = summary["seconds"]
    base_dropped, base_seconds = baseline([r["question"] for r in rows], eval_questions, 8)
    result = {
        "train_questions": len(rows),
        "eval_questions": len(eval_questions),
        "dropped": sum(summary["dropped"].values()),
        "dropped_by_task": summary["dropped"],
        "p6_seconds": round(seconds, 2),
        "baseline_seconds": round(base_seconds, 2),
        "baseline_dropped": base_dropped,
        "speedup_vs_baseline": round(base_seconds / seconds, 2),
        "tasks": args.tasks,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{len(rows):,} training x {len(eval_questions):,} evaluation questions, {args.tasks} tasks"
        )
        print(f"  decontaminate stage (datatrove): {seconds:6.2f} s, dropped {result['dropped']:,}")
        print(f"  baseline (one process, set)    : {base_seconds:6.2f} s, dropped {base_dropped:,}")
        print(f"P6 = {seconds:.2f} s (target <= 10)")


if __name__ == "__main__":
    main()
