"""The hybrid warm-up experiment (issue: Thinkless / Reasoning-SFT), end to end and resumable.

1. `data hybrid --data arith-mixed --short-from answer`: 300 questions (70 one-digit sums, 230
   sums of 3-4 digit numbers) -> 300 <think>/<short> pairs;
2. `train sft --format hybrid` of the embedded SmolLM2-135M on them (CPU; --steps);
3. greedy sweeps on held-out easy (arith-easy, 30) and hard (arith-hard, --hard-limit) questions
   in modes auto / think / short at one thinking cap, and auto mode sampled (--samples at
   temperature 0.6, Thinkless' RL sampling temperature);
4. accuracy, think share and tokens per (difficulty, mode), and the warm-up model's probability
   of `<think>` / `<short>` as the first token of its turn -> OUT/summary.json (and stdout).

Every step resumes when rerun (the pairs are deterministic, training resumes from its last
checkpoint, the sweeps skip every record already written).

    python benchmarks/exp_hybrid_warmup.py --out runs/hybrid [--steps 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def first_token_probs(model_dir: str, task: str, limit: int | None) -> dict:
    """P(<think>) and P(<short>) as the first token of the turn (the mode choice), per question."""
    import torch

    from thinkscale.formats import get_format
    from thinkscale.models import load_model
    from thinkscale.tasks import get_task

    model, tok = load_model(model_dir, dtype="float32")
    fmt = get_format("hybrid")
    ids = {m: tok.convert_tokens_to_ids(f"<{m}>") for m in ("think", "short")}
    probs = {m: [] for m in ids}
    with torch.no_grad():
        for ex in get_task(task).load(limit):
            prompt = torch.tensor([tok.encode(fmt.render_prompt(tok, ex.question), add_special_tokens=False)])
            p = model(prompt).logits[0, -1].float().softmax(-1)
            for m, i in ids.items():
                probs[m].append(float(p[i]))
    return {f"p_{m}": {"mean": sum(v) / len(v), "min": min(v), "max": max(v)} for m, v in probs.items()}


def hybrid_sweeps(model_dir: str, task: str, limit: int | None, out: Path, budget: int = 128, samples: int = 4) -> dict:
    """A hybrid model on one held-out set: greedy in modes auto / think / short (OUT/TASK), auto
    sampled at temperature 0.6 (OUT/TASK-sampled), and P(<think>) / P(<short>) as the first token.
    Resumes: records already written are kept."""
    from thinkscale.eval.report import write_report
    from thinkscale.infer.generate import GenerateConfig, generate

    keep = ("questions", "n", "accuracy", "think_share", "avg_thinking_tokens", "avg_answer_tokens",
            "avg_total_tokens", "by_mode")  # fmt: skip
    common = dict(task=task, limit=limit, model=model_dir, format="hybrid", budgets=[budget], max_answer_tokens=16,
                  batch_size=32)  # fmt: skip
    generate(GenerateConfig(modes=["auto", "think", "short"], **common), out / task / "results.jsonl")
    result = {r["requested_mode"]: {k: r.get(k) for k in keep} for r in write_report(out / task)["runs"]}
    sampled = GenerateConfig(modes=["auto"], n=samples, temperature=0.6, **common)
    generate(sampled, out / f"{task}-sampled" / "results.jsonl")
    (run,) = write_report(out / f"{task}-sampled")["runs"]
    result["auto, T=0.6"] = {k: run.get(k) for k in keep}
    result["first_token"] = first_token_probs(model_dir, task, limit)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/hybrid")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps of the warm-up (batch 8)")
    ap.add_argument("--budget", type=int, default=128, help="thinking cap of the sweeps")
    ap.add_argument("--hard-limit", type=int, default=60, help="held-out hard questions")
    ap.add_argument("--samples", type=int, default=4, help="samples per question of the sampled auto run")
    ap.add_argument("--json", action="store_true", help="only the summary JSON on stdout")
    args = ap.parse_args()
    log = sys.stderr if args.json else sys.stdout

    from thinkscale.data.hybrid import HybridPairsConfig, build_pairs
    from thinkscale.train.sft import RUN_FILE, SFTRunConfig, train_sft

    out = Path(args.out)
    funnel = build_pairs(HybridPairsConfig(data="arith-mixed", out=str(out / "pairs")))
    print(f"pairs: {funnel}", file=log)
    model_dir = out / "warmup"
    train_seconds = None
    if not (model_dir / "config.json").exists():
        start = time.time()
        train_sft(SFTRunConfig(
            data=str(out / "pairs" / "data.jsonl"), format="hybrid", out=str(model_dir), model=args.model,
            max_steps=args.steps, batch_size=8, micro_batch_size=8, learning_rate=3e-4, warmup=0.1,
            max_length=256, save_steps=20, logging_steps=10, resume=(model_dir / RUN_FILE).exists(),
        ))  # fmt: skip
        train_seconds = time.time() - start
        (out / "train_seconds.json").write_text(json.dumps({"seconds": train_seconds, "steps": args.steps}))
    elif (out / "train_seconds.json").exists():
        train_seconds = json.loads((out / "train_seconds.json").read_text())["seconds"]
    summary = {"cpu": cpu_name(), "steps": args.steps, "batch_size": 8, "train_seconds": train_seconds,
               "budget": args.budget, "pairs": funnel["pairs_out"], "tasks": {}}  # fmt: skip
    for task, limit in (("arith-easy", None), ("arith-hard", args.hard_limit)):
        summary["tasks"][task] = hybrid_sweeps(str(model_dir), task, limit, out, args.budget, args.samples)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
