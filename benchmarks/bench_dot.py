"""DoT vs an autoregressive CoT model of the same size, same data, same training wall time.

Trains both (`thinkscale dot train`, objective diffusion and ar) for about `--train-minutes`
each, then measures problems/s and exact-match accuracy of DoT at T = 1, 2, 4, ..., 64 denoising
steps and of greedy AR decoding, on the same held-out problems, in the same run. With
`--parallel` (the default on a machine with 2+ cores) the two trainings run at the same time,
one core each, so they share the machine fairly. Not a timed test.

    python benchmarks/bench_dot.py [--task mul4x4] [--train-minutes 55] [--json]

`--json` prints: accuracy_4x4 (best T; accuracy_best for other tasks), train_seconds (dot, ar),
train_steps, params, and per T: accuracy and problems_per_s for DoT, beside the AR baseline's;
dot_blocks: DoT at the largest T sampled in left-to-right blocks (`--block-length`). The same JSON
is written to OUT/bench.json. Rerun the same command after an interruption: a finished training
is reused, an interrupted one resumes from its last checkpoint (`resumed` in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from thinkscale.dot.evaluate import DotEvalConfig, eval_dot
from thinkscale.dot.model import load_dot
from thinkscale.dot.train import RUN_FILE
from thinkscale.eval.evaluate import evaluate
from thinkscale.eval.report import write_report
from thinkscale.records import load_records, write_json_atomic

KEYS = {"diffusion": "dot", "ar": "ar"}  # objective -> its name in the JSON


def train(out: Path, task: str, objective: str, seconds: float, threads: int,
          extra: list[str]) -> tuple[subprocess.Popen | None, bool]:  # fmt: skip
    """Start (or resume) one training; returns the process (None: trained already) and whether it
    resumes an interrupted one."""
    if (out / "config.json").exists():
        print(f"{out}: trained already, reused", file=sys.stderr)
        return None, False
    cmd = [sys.executable, "-m", "thinkscale.cli", "dot", "train", "--task", task, "--objective", objective,
           "--out", str(out), "--train-seconds", str(seconds), "--threads", str(threads), *extra]  # fmt: skip
    resume = (out / RUN_FILE).exists()  # an interrupted bench: go on from its last checkpoint
    if resume:
        print(f"{out}: interrupted training, resumed (its step clock carries over)", file=sys.stderr)
        cmd.append("--resume")
    else:
        shutil.rmtree(out, ignore_errors=True)
    log = open(out.parent / f"train-{objective}.log", "a" if resume else "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), resume


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="mul4x4")
    p.add_argument("--train-minutes", type=float, default=55.0)
    p.add_argument("--limit", type=int, default=500, help="held-out problems")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--block-length", type=int, default=8,
                   help="also sample DoT at the largest T in left-to-right blocks of this many tokens "
                   "(LLaDA's semi-autoregressive order; 0: skip)")
    p.add_argument("--out", default="runs/bench-dot")
    p.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2)
    p.add_argument("--quick", action="store_true", help="a smoke run: 20 s of training each, 16 problems, T in 1 4 16")
    p.add_argument("--json", action="store_true")
    p.add_argument("train_args", nargs="*", help="extra `dot train` flags after --, e.g. -- --layers 4")
    args = p.parse_args()
    if args.quick:
        args.train_minutes, args.limit, args.steps = 1 / 3, 16, [1, 4, 16]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = args.train_minutes * 60
    threads = 1 if args.parallel else (os.cpu_count() or 1)
    start = time.perf_counter()
    procs, resumed = [], []
    for objective in KEYS:
        proc, resumes = train(out / objective, args.task, objective, seconds, threads, args.train_args)
        if resumes:
            resumed.append(KEYS[objective])
        if proc and not args.parallel:
            proc.wait()
        procs.append(proc)
    for objective, proc in zip(KEYS, procs):
        if proc and proc.wait() != 0:
            log = out / f"train-{objective}.log"
            last = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            raise SystemExit(f"{objective} training failed: {last[0]} (log: {log})")
    wall = time.perf_counter() - start

    result = {"task": args.task, "train_minutes": args.train_minutes, "parallel": args.parallel,
              "problems": args.limit, "training_wall_seconds": round(wall, 1)}  # fmt: skip
    if resumed:  # the wall time above is this run's share only; train_seconds is the whole training
        result["resumed"] = resumed
    for objective, key in KEYS.items():
        model, _, meta = load_dot(out / objective)
        result.setdefault("train_seconds", {})[key] = meta.train_seconds
        result.setdefault("train_steps", {})[key] = meta.train_steps
        result.setdefault("params", {})[key] = sum(p.numel() for p in model.parameters())
    per_t = {}
    for objective in KEYS:
        run = out / f"eval-{objective}"
        shutil.rmtree(run, ignore_errors=True)
        eval_dot(DotEvalConfig(model=str(out / objective), out=str(run), limit=args.limit, steps=args.steps,
                               batch_size=64))  # fmt: skip
        timing = json.loads((run / "timing.json").read_text())
        metrics = evaluate(load_records(run / "results.jsonl"))
        write_report(run, metrics)
        for r in metrics["runs"]:
            speed = timing[str(r["budget"])]["problems_per_s"]
            if objective == "ar":
                result["ar"] = {"accuracy": r["accuracy"], "problems_per_s": round(speed, 2)}
            else:
                per_t[str(r["budget"])] = {"accuracy": r["accuracy"], "problems_per_s": round(speed, 2)}
    result["dot"] = per_t
    candidates = [v["accuracy"] for v in per_t.values()]
    if args.block_length:
        # the carries of a running sum are written least-significant first: denoising blocks left
        # to right lets each block see the digits it depends on (same T, same model)
        run, t = out / "eval-diffusion-blocks", max(args.steps)
        shutil.rmtree(run, ignore_errors=True)
        eval_dot(DotEvalConfig(model=str(out / "diffusion"), out=str(run), limit=args.limit, steps=[t],
                               block_length=args.block_length, batch_size=64))  # fmt: skip
        timing = json.loads((run / "timing.json").read_text())
        r = evaluate(load_records(run / "results.jsonl"))["runs"][0]
        result["dot_blocks"] = {"block_length": args.block_length, "steps": t, "accuracy": r["accuracy"],
                                "problems_per_s": round(timing[str(t)]["problems_per_s"], 2)}  # fmt: skip
        candidates.append(r["accuracy"])
    best = max(candidates)
    result["accuracy_4x4" if args.task == "mul4x4" else "accuracy_best"] = best
    for v in [*per_t.values(), *([result["dot_blocks"]] if "dot_blocks" in result else [])]:
        v["speed_vs_ar"] = round(v["problems_per_s"] / result["ar"]["problems_per_s"], 2)
    write_json_atomic(out / "bench.json", result)  # kept beside the runs: the table's source

    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.task}: trained {result['train_seconds']} s, steps {result['train_steps']}, "
          f"params {result['params']}")  # fmt: skip
    print(f"{'model':<10} {'acc':>7} {'problems/s':>11} {'vs AR':>6}")
    for t, v in per_t.items():
        print(f"{'DoT T=' + t:<10} {100 * v['accuracy']:>6.1f}% {v['problems_per_s']:>11.1f} {v['speed_vs_ar']:>6.2f}")
    if "dot_blocks" in result:
        b = result["dot_blocks"]
        name = f"DoT T={b['steps']} blocks of {b['block_length']}"
        print(f"{name:<10} {100 * b['accuracy']:>6.1f}% {b['problems_per_s']:>11.1f} {b['speed_vs_ar']:>6.2f}")
    print(f"{'AR greedy':<10} {100 * result['ar']['accuracy']:>6.1f}% {result['ar']['problems_per_s']:>11.1f} {1:>6.2f}")


if __name__ == "__main__":
    main()
