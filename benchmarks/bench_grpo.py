"""GRPO step throughput (not a timed test): completions/s and tokens/s of a `train grpo` step on
the embedded SmolLM2-135M (s1 format, held-out-style arithmetic questions), and the share of the
step spent sampling (TRL's own generation path: the model's `generate`, in process). The first
step is a warm-up and is left out when there are more.

    python benchmarks/bench_grpo.py [--json] [--quick] [--steps N] [--generations G] [--length L]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from exp_hybrid_warmup import cpu_name  # noqa: E402


def measure(steps: int, generations: int, length: int, prompts: int, model: str) -> dict:
    from thinkscale.train.grpo import GRPORunConfig, train_grpo

    with tempfile.TemporaryDirectory() as tmp:
        cfg = GRPORunConfig(task="arith", limit=64, model=model, out=f"{tmp}/g", format="s1", max_steps=steps,
                            num_generations=generations, batch_size=generations * prompts,
                            micro_batch_size=generations * prompts, max_completion_length=length,
                            learning_rate=1e-6, save_total_limit=0, logging_steps=1, warmup=0.0)  # fmt: skip
        train_grpo(cfg)
        state = Path(tmp, "g", "trainer_state.json")
        logs = [h for h in json.loads(state.read_text())["log_history"] if "step_time" in h]
    timed = logs[1:] if len(logs) > 1 else logs
    completions = generations * prompts
    step = sum(h["step_time"] for h in timed) / len(timed)
    gen = sum(h["generate_seconds"] for h in timed) / len(timed)
    tokens = sum(h["completions/mean_length"] * completions for h in timed) / len(timed)
    return {"cpu": cpu_name(), "model": model, "steps_timed": len(timed), "completions_per_step": completions,
            "step_seconds": step, "completions_per_s": completions / step, "tokens_per_s": tokens / step,
            "mean_completion_tokens": tokens / completions, "generate_seconds": gen,
            "generate_share": gen / step}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="only the JSON result on stdout")
    ap.add_argument("--quick", action="store_true", help="2 steps, 4 completions of <= 16 tokens (a smoke run)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per step")
    ap.add_argument("--length", type=int, default=128, help="max completion tokens")
    ap.add_argument("--model", default="smollm2-135m", help="e.g. an s1 arithmetic model (the demo's runs/demo/model)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.generations, args.prompts, args.length = 2, 4, 1, 16
    with contextlib.redirect_stdout(sys.stderr):  # the trainer's own prints stay off stdout
        result = measure(args.steps, args.generations, args.length, args.prompts, args.model)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
