"""refine's experiment (issue: pass@N-aware fine-tuning), end to end and resumable.

The embedded SmolLM2-135M is fine-tuned on `arith-mul` (products of 1-2 digit numbers with
partial-product traces) three ways, at equal steps, batch, data stream and seed:
  ce       plain cross-entropy;
  pass16   refine's loss, N = 16, p = the reference's likelihood;
  filter   plain CE, but after the warm-up the filter samples each candidate --filter-samples
           times with the current weights and trains only on those with p-hat < 0.1.
Then `thinkscale coverage` samples --n completions (temperature 1) per held-out `arith-mul`
question from each model: pass@k for k = 1..n and chunk coverage, coverage.png.

Why `arith-mul`: a small model learns the trace format in minutes on a CPU, but each partial
product is a memorised fact it gets only sometimes right, so pass@1 stays well below 1 and
sampling more often helps: the regime where refine's claim (lower pass@1, higher pass@k at
large k for the confidence-limited model) can show or fail to show.

Prints one JSON: per objective pass_at_1, pass_at_64 (pass@n when n < 64), chunk coverage, and
training tokens/s of each objective / plain CE's (the filter's sampling time included: the number
a user pays). Everything resumes when rerun (finished models and written records are reused).

    python benchmarks/bench_refine.py --out runs/refine [--steps 60] [--n 64] [--questions 24] [--json]
    python benchmarks/bench_refine.py --quick --json      # a smoke run (minutes), not a measurement
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from exp_hybrid_warmup import cpu_name  # noqa: E402


def train(name: str, out: Path, steps: int, save_steps: int, keep: int, **refine) -> dict:
    """Train (or resume, or reuse) one model; returns its wall seconds and training tokens/s.
    `keep` checkpoints of every `save_steps` stay on disk (0: none, the smoke run's way)."""
    from thinkscale.train.sft import SFTRunConfig, train_sft

    run = out / name
    timing = run / "bench_timing.json"
    if (run / "config.json").exists() and timing.exists():
        return json.loads(timing.read_text())
    cfg = SFTRunConfig(data="arith-mul", out=str(run), max_steps=steps, batch_size=8, micro_batch_size=8,
                       learning_rate=3e-4, warmup=0.1, max_length=256, save_steps=save_steps, logging_steps=1,
                       save_total_limit=keep, resume=run.exists() and (run / "thinkscale_sft.json").exists(), **refine)  # fmt: skip
    t0 = time.perf_counter()
    train_sft(cfg)
    seconds = time.perf_counter() - t0
    state = json.loads((run / "trainer_state.json").read_text())
    tokens = max(e.get("num_tokens", 0) for e in state["log_history"])  # trained tokens (TRL's count)
    sampling = sum(e.get("refine/sampling_seconds", 0) for e in state["log_history"])  # logged every step
    result = {"seconds": round(seconds, 1), "tokens": int(tokens), "tokens_per_s": round(tokens / seconds, 1),
              "sampling_seconds": round(sampling, 1), "resumed": cfg.resume}  # fmt: skip
    kept = [e for e in state["log_history"] if "refine/kept" in e]
    if kept:
        result["filter"] = {k: round(sum(e[k] for e in kept) / len(kept), 3)
                            for k in ("refine/candidates", "refine/kept", "refine/mean_p_hat")}  # fmt: skip
    timing.write_text(json.dumps(result))
    return result


def throughput(out: Path, init: str, steps: int, plans: dict) -> dict:
    """Training tokens/s of each objective measured back to back with nothing else running, from
    the same partly trained CE model (so the filter meets a realistic p-hat mix): `steps`
    optimizer steps each, every step a sampling step for the filter, after a 1-step warm-up run.
    Wall time of the whole call (model loading and data preparation, a few seconds, included for
    every objective alike, which pulls the ratios toward 1)."""
    import shutil

    from thinkscale.train.sft import SFTRunConfig, train_sft

    result = {}
    if not all((out / "throughput" / name / "bench_timing.json").exists() for name in plans):
        warm = out / "throughput" / "warm-up"  # one-time costs (imports, first allocations) land here
        shutil.rmtree(warm, ignore_errors=True)
        train_sft(SFTRunConfig(data="arith-mul", out=str(warm), model=init, max_steps=1, batch_size=8,
                               micro_batch_size=8, max_length=256, save_total_limit=0))  # fmt: skip
        shutil.rmtree(warm)
    for name, kw in plans.items():
        run = out / "throughput" / name
        done = run / "bench_timing.json"
        if not done.exists():
            shutil.rmtree(run, ignore_errors=True)  # an interrupted measurement is measured again, whole
            kw = {**kw, "filter_warmup_steps": 0, "filter_every": 1} if kw.get("filter") else kw
            t0 = time.perf_counter()
            train_sft(SFTRunConfig(data="arith-mul", out=str(run), model=init, max_steps=steps, batch_size=8,
                                   micro_batch_size=8, learning_rate=3e-4, warmup=0.1, max_length=256,
                                   save_total_limit=0, logging_steps=1, **kw))  # fmt: skip
            seconds = time.perf_counter() - t0
            log = json.loads((run / "trainer_state.json").read_text())["log_history"]
            tokens = max(e.get("num_tokens", 0) for e in log)
            for weights in run.glob("*.safetensors"):  # only the timing is wanted (0.5 GB each)
                weights.unlink()
            done.write_text(json.dumps({"tokens": int(tokens), "seconds": round(seconds, 1),
                                        "tokens_per_s": round(tokens / seconds, 1),
                                        "sampling_seconds": round(sum(e.get("refine/sampling_seconds", 0) for e in log), 1)}))  # fmt: skip
        result[name] = json.loads(done.read_text())
    ce = result["ce"]["tokens_per_s"]
    for r in result.values():
        r["vs_ce"] = round(r["tokens_per_s"] / ce, 3)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/refine")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--filter-samples", type=int, default=16)
    ap.add_argument("--filter-every", type=int, default=2)
    ap.add_argument("--n", type=int, default=64, help="samples per question for coverage")
    ap.add_argument("--questions", type=int, default=24)
    ap.add_argument("--throughput-steps", type=int, default=4, help="steps of each objective in the clean "
                    "throughput measurement (0: skip it)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 3 steps, 2 questions, n = 4")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.n, args.questions, args.filter_samples, args.filter_every = 3, 4, 2, 2, 1
        args.throughput_steps = 1
        if args.out == "runs/refine":
            args.out = "runs/refine-quick"

    out = Path(args.out)
    warmup = args.steps // 2
    plans = {
        "ce": {},
        "pass16": {"objective": "pass-at-n", "pass_n": 16},
        "filter": {"filter": "sampled", "filter_samples": args.filter_samples, "filter_threshold": 0.1,
                   "filter_every": args.filter_every, "filter_warmup_steps": warmup, "filter_budget": 96,
                   "filter_max_answer_tokens": 16, "grader": "numeric"},
    }  # fmt: skip
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        from thinkscale.coverage_run import CoverageConfig, coverage

        keep = 0 if args.quick else 2  # CE's checkpoint at the filter's warm-up starts the throughput runs
        timings = {name: train(name, out, args.steps, max(1, warmup) if name == "ce" else 10, keep, **kw)
                   for name, kw in plans.items()}  # fmt: skip
        cov = CoverageConfig(task="arith-mul", limit=args.questions, n=args.n, budgets=[96], max_answer_tokens=16,
                             batch_size=64, dtype="float32", model=[str(out / name) for name in plans])  # fmt: skip
        t0 = time.perf_counter()
        metrics = coverage(cov, out / "coverage", progress=not args.json)
        coverage_seconds = time.perf_counter() - t0
        ckpt = out / "ce" / "checkpoints" / f"checkpoint-{warmup}"  # the filter's own starting point
        speed = throughput(out, str(ckpt if ckpt.exists() else out / "ce"), args.throughput_steps, plans) if args.throughput_steps else {}
    top = str(min(64, args.n))
    result = {
        "cpu": cpu_name(),
        "setting": {"data": "arith-mul", "steps": args.steps, "batch": 8, "lr": 3e-4, "filter_warmup": warmup,
                    "filter_samples": args.filter_samples, "filter_every": args.filter_every,
                    "questions": args.questions, "n": args.n, "thinking_cap": 96},  # fmt: skip
        "objectives": {
            name: {"pass_at_1": round(m["pass_at_1"], 4), "pass_at_64": round(m["pass@k"][top], 4),
                   "pass_at_k": {k: round(m["pass@k"][k], 4) for k in m["chunk_coverage"]},
                   "chunk_coverage": {k: {"mean": round(c["mean"], 4), "se": round(c["se"], 4)}
                                      for k, c in m["chunk_coverage"].items()},
                   "experiment_train": timings[name],
                   "train_tokens_per_s_vs_ce": speed[name]["vs_ce"] if speed else None,
                   "throughput": speed.get(name)}
            for name, m in metrics.items()
        },  # fmt: skip
        "coverage_seconds": round(coverage_seconds, 1),
        "note_timing": "experiment_train times ran beside other jobs on the same cores; train_tokens_per_s_vs_ce "
                       "comes from the back-to-back throughput runs (nothing else running)",
    }
    if args.n < 64:
        result["note"] = f"n = {args.n} < 64: pass_at_64 is pass@{args.n}"
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
