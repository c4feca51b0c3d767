"""The adaptive-thinking experiment (issue: adaptive thinking + frontier), end to end and resumable.

1. the demo's arithmetic model (SFT of the embedded SmolLM2-135M on `arith`, 60 steps; reused
   from OUT/model when there);
2. per task (held-out `arith`, and `gsm8k`): a greedy sweep of thinking caps, n samples at two
   caps (temperature 0.7) for the parallel points, and adaptive runs at the largest cap
   (consistency with a few probe intervals / agreement counts, confidence);
3. `thinkscale frontier` over each task's records: accuracy vs average generated tokens per
   question (thinking + answer + probes), Pareto set, and for each adaptive run the cheapest cap
   at least as accurate and the token ratio -> OUT/summary.json (and stdout), OUT/<task>/frontier.png.

Every step resumes when rerun (records already written are skipped).

    python benchmarks/exp_adaptive.py --out runs/adaptive [--arith-limit 60] [--gsm8k-limit 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from exp_hybrid_warmup import cpu_name  # noqa: E402

# (task, caps, (parallel caps, n), adaptive runs at the largest cap: (kind, every, tokens, agree, confidence))
PLANS = {
    "arith": ([8, 16, 32, 48, 64, 96], ([48], 4),
              [("consistency", 8, 10, 2, 0.95), ("consistency", 8, 10, 3, 0.95), ("consistency", 16, 10, 2, 0.95),
               ("confidence", 8, 10, 3, 0.95)]),
    "gsm8k": ([32, 128, 512], ([128], 4), [("consistency", 64, 20, 3, 0.95), ("confidence", 64, 20, 3, 0.95)]),
}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/adaptive")
    ap.add_argument("--arith-limit", type=int, default=60)
    ap.add_argument("--gsm8k-limit", type=int, default=30)
    ap.add_argument("--tasks", nargs="+", default=list(PLANS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from thinkscale.demo import DemoConfig, train_step
    from thinkscale.eval.report import write_frontier
    from thinkscale.infer.generate import GenerateConfig, generate

    out = Path(args.out)
    model = train_step(DemoConfig(out=str(out)), out)
    summary = {"cpu": cpu_name(), "model": model, "tasks": {}}
    for task in args.tasks:
        caps, (par_caps, n), rules = PLANS[task]
        limit = args.arith_limit if task == "arith" else args.gsm8k_limit
        answer = 16 if task == "arith" else 64
        run = out / task
        # fp32: on a CPU without AMX (AMD EPYC here) a bf16 decode step is ~3x slower than fp32
        base = dict(task=task, model=model, limit=limit, max_answer_tokens=answer, batch_size=32, dtype="float32")
        t0 = time.time()
        generate(GenerateConfig(**base, budgets=caps), run / "caps.jsonl")
        generate(GenerateConfig(**base, budgets=par_caps, n=n, temperature=0.7, top_p=0.95), run / "parallel.jsonl")
        timings = {"caps_and_parallel_s": round(time.time() - t0, 1)}
        for kind, every, tokens, agree, conf in rules:
            name = f"adaptive-{kind}-{every}-{agree if kind == 'consistency' else conf}"
            t0 = time.time()
            generate(GenerateConfig(**base, budgets=[max(caps)], adaptive=kind, probe_every=every, probe_tokens=tokens,
                                    agree=agree, confidence=conf), run / f"{name}.jsonl")  # fmt: skip
            timings[name + "_s"] = round(time.time() - t0, 1)
        metrics, _ = write_frontier([run])
        points = metrics["frontier"][task]
        summary["tasks"][task] = {
            "questions": limit,
            "caps": {p["budget"]: {"accuracy": p["accuracy"], "tokens": p["tokens"]}
                     for p in points if p["kind"] == "sequential" and not p["temperature"]},
            "adaptive": [{k: p[k] for k in ("label", "accuracy", "tokens", "matched", "pareto")}
                         for p in points if p["kind"] == "adaptive"],
            "pareto": [p["label"] for p in points if p["pareto"]],
            "runs": [{k: r.get(k) for k in ("budget", "adaptive", "n", "accuracy", "avg_thinking_tokens",
                                             "avg_probe_tokens", "avg_total_tokens", "avg_probes", "stopped_by")}
                     for r in metrics["runs"]],
            "seconds": timings,
        }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for task, s in summary["tasks"].items():
            print(f"== {task} ({s['questions']} questions)")
            for a in s["adaptive"]:
                m = a["matched"]
                match = f"= {m['label']} at {100 * m['token_ratio']:.0f}% of its tokens" if m else "no cap as accurate"
                print(f"  {a['label']}: {100 * a['accuracy']:.1f}% at {a['tokens']:.1f} tokens ({match})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
