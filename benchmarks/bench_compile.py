"""Compile time of the HF engine's decode step: what `serve` pays before it listens (not a test).

`HFEngine.warm_up` compiles every decode graph (1..SMALL_BATCH rows, then the dynamic batch;
`--batch 16`: 5 graphs). Each figure is measured in a fresh process, since dynamo and Inductor
keep compiled graphs in memory:
  cold_s     warm_up seconds with an empty Inductor cache (a first start)
  restart_s  warm_up seconds again, from the on-disk cache the cold run left (a restart)
  restarts   times dynamo traced a graph twice ("Restarting analysis"), over the warm-up
for two settings:
  stock      dynamo's default: Python floats enter the graph as inputs, and dynamo restarts its
             analysis once it finds they must be constants (`SPECIALIZE_FLOATS = False`)
  thinkscale floats specialised from the start (`compile_decode`, the default)
and the ratios stock / thinkscale (`cold_ratio`, `restart_ratio`). The four processes run in
turns (stock cold, thinkscale cold, stock restart, thinkscale restart); `--repeats` runs the
turns again, each in fresh caches, and keeps the best time of each. `same_tokens`: both settings'
compiled engines gave the same greedy tokens (64 at batch 1; fp32 unless `--dtype`).

    python benchmarks/bench_compile.py [--json] [--quick] [--batch 16] [--dtype auto] [--repeats 1]

`--quick` compiles one graph of a tiny random-weight model: a smoke run of about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from exp_hybrid_warmup import cpu_name  # noqa: E402


def bench_model(dtype: str, quick: bool):
    """(model, tokenizer): the embedded model, or with `quick` a random one of its tokenizer and
    layer kind, two small layers (seconds to compile)."""
    import torch

    from thinkscale.models import load_model

    model, tok = load_model(dtype=dtype)
    if quick:
        from transformers import AutoModelForCausalLM

        config = model.config
        config.num_hidden_layers, config.hidden_size, config.intermediate_size = 2, 64, 128
        config.num_attention_heads, config.num_key_value_heads, config.head_dim = 4, 2, 16
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=model.dtype).eval()
    return model, tok


def child(args) -> dict:
    """One warm-up in this process: compile, time, then decode 64 greedy tokens at batch 1."""
    import time

    from thinkscale.formats import get_format
    from thinkscale.infer import hf_engine
    from thinkscale.infer.forcing import Budget, ForcingTokens
    from thinkscale.infer.hf_engine import HFEngine, Request, compile_restarts

    hf_engine.SPECIALIZE_FLOATS = args.child == "thinkscale"
    model, tok = bench_model(args.dtype, args.quick)
    tokens = ForcingTokens.from_tokenizer(tok, get_format("s1"))
    engine = HFEngine(model, tokens, args.batch, tok.pad_token_id, compile=True)
    prompt = tok.encode("What is 17 times 23?", add_special_tokens=False)
    before = compile_restarts()
    seconds = engine.warm_up(prompt)
    restarts = compile_restarts() - before
    steps = 16 if args.quick else 64
    start = time.perf_counter()
    done = list(engine.run([Request(0, prompt, Budget(steps, min_thinking_tokens=steps, max_answer_tokens=1))]))
    rate = len(done[0].state.generated) / (time.perf_counter() - start)
    return {"seconds": seconds, "graphs": engine.stats.compiles, "restarts": restarts,
            "tokens": done[0].state.generated, "batch1_tokens_per_s": rate}  # fmt: skip


def measure(args, setting: str, cache: Path, script: str = __file__) -> dict:
    """`script --child setting` in a fresh process with Inductor's cache in `cache`: its JSON."""
    cmd = [sys.executable, script, "--child", setting, "--batch", str(args.batch), "--dtype", args.dtype]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    proc = subprocess.run(cmd + (["--quick"] if args.quick else []), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{Path(script).name}: the {setting} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def header(args) -> dict:
    """What every result of these benchmarks starts with: where and on what it ran."""
    import torch

    return {"cpu": cpu_name(), "threads": torch.get_num_threads(),
            "model": "tiny random (2 layers)" if args.quick else "smollm2-135m",
            "batch": args.batch, "dtype": args.dtype, "repeats": args.repeats}  # fmt: skip


def run(args, log) -> dict:
    settings = ("stock", "thinkscale")
    best: dict[str, dict[str, dict]] = {s: {} for s in settings}
    for turn in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bench_compile_") as tmp:
            for phase in ("cold", "restart"):  # restart: the cache its cold run left
                for setting in settings:
                    got = measure(args, setting, Path(tmp) / setting)
                    log(f"turn {turn + 1} {setting} {phase}: {got['seconds']:.1f} s, {got['graphs']} graphs, "
                        f"{got['restarts']} restarts, batch 1 {got['batch1_tokens_per_s']:.1f} tokens/s")  # fmt: skip
                    kept = best[setting].get(phase)
                    if kept is None or got["seconds"] < kept["seconds"]:
                        best[setting][phase] = got
    stock, ours = best["stock"], best["thinkscale"]
    results = {
        **header(args),
        "cold_ratio": stock["cold"]["seconds"] / ours["cold"]["seconds"],
        "restart_ratio": stock["restart"]["seconds"] / ours["restart"]["seconds"],
        "same_tokens": all(stock[p]["tokens"] == ours[p]["tokens"] for p in ("cold", "restart")),
    }
    for setting, phases in best.items():
        results[setting] = {
            "cold_s": phases["cold"]["seconds"],
            "restart_s": phases["restart"]["seconds"],
            "graphs": phases["cold"]["graphs"],
            "restarts": phases["cold"]["restarts"] + phases["restart"]["restarts"],
            "batch1_tokens_per_s": max(phases["cold"]["batch1_tokens_per_s"], phases["restart"]["batch1_tokens_per_s"]),
        }
    log(f"cold: stock {stock['cold']['seconds']:.1f} s / thinkscale {ours['cold']['seconds']:.1f} s = "
        f"{results['cold_ratio']:.2f}; restart: {stock['restart']['seconds']:.1f} s / "
        f"{ours['restart']['seconds']:.1f} s = {results['restart_ratio']:.2f}; same tokens: {results['same_tokens']}")  # fmt: skip
    return results


def bench_main(doc: str, settings: tuple[str, ...], child, run, *, dtype: str, quick: str, quick_batch: int,
               repeats: str) -> None:
    """The command line of a benchmark whose settings each run in a fresh process (`--child`
    SETTING prints that run's JSON; without it, `run` starts the children and reports)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print only the results, as JSON")
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--batch", type=int, default=16, help="engine rows; 16 compiles 5 graphs, as `serve` does")
    ap.add_argument("--dtype", default=dtype, choices=["float32", "bfloat16", "auto"], help="auto: serve's default")
    ap.add_argument("--repeats", type=int, default=1, help=repeats)
    ap.add_argument("--child", choices=settings, help=argparse.SUPPRESS)
    args = ap.parse_args()
    for name in ("batch", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.quick:
        args.batch = quick_batch
    if args.child:
        print(json.dumps(child(args)))
        return
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, flush=True))
    results = run(args, log)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    bench_main(__doc__, ("stock", "thinkscale"), child, run, dtype="float32", quick_batch=1,
               quick="one graph of a tiny random model (about a minute)",
               repeats="turns of the four runs, best time each")  # fmt: skip
