"""The RL experiments (issue: GRPO / Thinkless' DeGRPO), resumable: rerun the same command after
an interruption and every finished part is reused, a training resumes from its last checkpoint.

degrpo: from the hybrid warm-up (`benchmarks/exp_hybrid_warmup.py`, OUT_HYBRID/warmup), DeGRPO on
        the arith-mixed training questions; then on held-out arith-easy / arith-hard the warm-up's
        measurements (greedy in modes auto / think / short, auto sampled at 0.6, P(<think>) first),
        beside the warm-up's own (OUT_HYBRID/summary.json, copied into the summary).
grpo:   from an s1 arithmetic model (trained here as the demo trains it, unless --s1-model), plain
        GRPO (reward 1/0) on the `arith` training questions; held-out `arith` accuracy before/after.

    python benchmarks/exp_grpo.py degrpo --out runs/degrpo [--steps 80] [--alpha 0.1] [--reward-think 0.8]
        [--short-max-tokens 16]
    python benchmarks/exp_grpo.py grpo --out runs/grpo-s1 [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from exp_hybrid_warmup import cpu_name, hybrid_sweeps  # noqa: E402


def write_questions(rows: list[dict], path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": r["id"], "question": r["question"], "answer": r["answer"]}) + "\n"
                            for r in rows))  # fmt: skip
    return str(path)


def timed_training(cfg, out: Path, train) -> float | None:
    """Train unless finished; the wall time of all sessions together, kept in OUT/train_seconds.json."""
    log = out / "train_seconds.json"
    spent = json.loads(log.read_text())["seconds"] if log.exists() else 0.0
    if (Path(cfg.out) / "config.json").exists():
        return spent or None
    cfg.resume = (Path(cfg.out) / "thinkscale_grpo.json").exists() or (Path(cfg.out) / "thinkscale_sft.json").exists()
    start = time.time()
    train(cfg)
    spent += time.time() - start
    log.write_text(json.dumps({"seconds": spent}))
    return spent


def sweep(model: str, task: str, limit, out: Path, fmt: str, budget: int = 128) -> dict:
    from thinkscale.eval.report import write_report
    from thinkscale.infer.generate import GenerateConfig, generate

    cfg = GenerateConfig(task=task, limit=limit, model=model, format=fmt, budgets=[budget], max_answer_tokens=16,
                         batch_size=32)  # fmt: skip
    generate(cfg, out / "results.jsonl")
    keep = ("questions", "accuracy", "think_share", "avg_thinking_tokens", "avg_total_tokens", "by_mode")
    return {r.get("requested_mode", fmt): {k: r.get(k) for k in keep} for r in write_report(out)["runs"]}


def degrpo(args) -> dict:
    from thinkscale.data.arith import mixed_arith
    from thinkscale.train.grpo import GRPORunConfig, train_grpo

    out = Path(args.out)
    warmup = Path(args.hybrid) / "warmup"
    if not (warmup / "config.json").exists():
        raise SystemExit(f"{warmup}: no warm-up model; run benchmarks/exp_hybrid_warmup.py --out {args.hybrid}")
    data = write_questions(mixed_arith("train"), out / "questions.jsonl")
    cfg = GRPORunConfig(data=data, grader="numeric", model=str(warmup), out=str(out / "model"), format="hybrid",
                        objective="degrpo", max_steps=args.steps, batch_size=16, micro_batch_size=8,
                        num_generations=8, max_completion_length=128, temperature=0.6, learning_rate=args.lr,
                        control_alpha=args.alpha, reward_think=args.reward_think,
                        short_max_tokens=args.short_max_tokens, save_steps=5, logging_steps=1,
                        warmup=0.0, seed=0)  # fmt: skip
    seconds = timed_training(cfg, out, train_grpo)
    result = {"cpu": cpu_name(), "steps": args.steps, "train_seconds": seconds, "alpha": args.alpha,
              "learning_rate": args.lr, "reward_think": args.reward_think,
              "short_max_tokens": args.short_max_tokens, "tasks": {}}  # fmt: skip
    for task, limit in (("arith-easy", None), ("arith-hard", 60)):
        result["tasks"][task] = hybrid_sweeps(str(out / "model"), task, limit, out)
    warmup_summary = Path(args.hybrid) / "summary.json"
    if warmup_summary.exists():
        result["warmup"] = json.loads(warmup_summary.read_text())
    result["log"] = training_log(out / "model")
    return result


def grpo(args) -> dict:
    from thinkscale.data.arith import ArithConfig, arith_traces
    from thinkscale.train.grpo import GRPORunConfig, train_grpo
    from thinkscale.train.sft import SFTRunConfig, train_sft

    out = Path(args.out)
    base = args.s1_model or str(out / "sft")
    if args.s1_model is None:  # the demo's fine-tune
        sft = SFTRunConfig(data="arith", out=base, max_steps=60, batch_size=8, micro_batch_size=8, learning_rate=3e-4,
                           warmup=0.1, max_length=256, save_steps=20, logging_steps=10)  # fmt: skip
        (out / "sft-time").mkdir(parents=True, exist_ok=True)
        timed_training(sft, out / "sft-time", train_sft)
    data = write_questions(arith_traces(ArithConfig(count=400, seed=0)), out / "questions.jsonl")
    cfg = GRPORunConfig(data=data, grader="numeric", model=base, out=str(out / "model"), format="s1",
                        objective="grpo", max_steps=args.steps, batch_size=16, micro_batch_size=8, num_generations=8,
                        max_completion_length=128, temperature=0.6, learning_rate=args.lr, reward_correct=1.0,
                        reward_wrong=0.0, save_steps=5, logging_steps=1, warmup=0.0, seed=0)  # fmt: skip
    seconds = timed_training(cfg, out, train_grpo)
    before = sweep(base, "arith", 48, out / "before", "s1")
    after = sweep(str(out / "model"), "arith", 48, out / "after", "s1")
    return {"cpu": cpu_name(), "steps": args.steps, "train_seconds": seconds, "learning_rate": args.lr,
            "before": before, "after": after, "log": training_log(out / "model")}  # fmt: skip


def training_log(model_dir: Path) -> list[dict]:
    """Per logged step: reward, accuracy, think share, ... from the finished model's trainer state
    (or, mid-run, the last checkpoint's)."""
    states = sorted(model_dir.glob("checkpoints/checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if (model_dir / "trainer_state.json").exists():
        states.append(model_dir / "trainer_state.json")
    if not states:
        return []
    keep = ("step", "reward", "accuracy", "malformed", "think_share", "accuracy_think", "accuracy_short",
            "completions/mean_length", "control_loss", "response_loss", "live_share", "short_overlong")  # fmt: skip
    return [{k: h[k] for k in keep if k in h} for h in json.loads(states[-1].read_text())["log_history"] if "reward" in h]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=("degrpo", "grpo"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--hybrid", default="runs/hybrid", help="degrpo: the warm-up experiment's output")
    ap.add_argument("--s1-model", help="grpo: an s1 arithmetic model (default: train one as the demo does)")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--alpha", type=float, default=0.1, help="degrpo: control-token weight")
    ap.add_argument("--reward-think", type=float, default=0.5, help="degrpo: Thinkless' remedy for a collapse "
                    "to short: 0.7-0.8")  # fmt: skip
    ap.add_argument("--short-max-tokens", type=int, help="degrpo: a longer short-mode response is malformed")
    args = ap.parse_args()
    result = (degrpo if args.which == "degrpo" else grpo)(args)
    Path(args.out, "summary.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
