"""Grouped KV heads vs transformers' SDPA in the HF engine, on the embedded model (not a timed test).

`models.load_model` attends with `models.grouped_sdpa`: no `repeat_kv` copy of the KV cache per
query head, and a decode step's query heads laid out as rows per KV head. The baseline is the
same checkpoint with transformers' own `sdpa`. Both engines decode the same budget-forced
requests (cap + 2 Waits, GSM8K prompts, greedy), taking turns `--repeats` times, best time each:

  speedup_batch{B}_{dtype}  grouped tokens/s / sdpa tokens/s at batch B (16, and 1), in fp32
                            and in the run's dtype (`--dtype auto`: bf16 where the CPU has bf16
                            units); with each, how many outputs were token-for-token identical.

    python benchmarks/bench_attention.py [--json] [--quick] [--dtype auto|bfloat16|float32]
"""

from __future__ import annotations

import argparse
import json

import torch
from bench_budget_forcing import prompts, stdout_to_stderr, timed
from exp_hybrid_warmup import cpu_name  # benchmarks/ is on the path when a script runs

from thinkscale.formats import get_format
from thinkscale.infer.forcing import Budget, ForcingTokens
from thinkscale.infer.hf_engine import HFEngine, Request
from thinkscale.models import GROUPED_SDPA, load_model, resolve_dtype


def load_pair(dtype: str):
    """The embedded model as `load_model` gives it, and the same checkpoint on transformers' SDPA."""
    grouped, tokenizer = load_model(dtype=dtype)
    stock, _ = load_model(dtype=dtype)
    stock.set_attn_implementation("sdpa")
    assert grouped.config._attn_implementation == GROUPED_SDPA
    return grouped, stock, tokenizer


def compare(grouped, stock, tokenizer, batch: int, n_prompts: int, cap: int, repeats: int) -> dict:
    fmt = get_format("s1")
    tokens = ForcingTokens.from_tokenizer(tokenizer, fmt)
    ps = prompts(tokenizer, fmt, n_prompts)
    requests = [Request(i, p, Budget(cap, num_ignore=2, max_answer_tokens=16)) for i, p in enumerate(ps)]
    engines = {name: HFEngine(m, tokens, batch, tokenizer.pad_token_id) for name, m in
               (("grouped", grouped), ("sdpa", stock))}  # fmt: skip
    best, outputs = dict.fromkeys(engines, 0.0), {}
    list(engines["grouped"].run(requests[:1]))  # warm-up (first-call allocations)
    for turn in range(repeats):
        order = list(engines) if turn % 2 == 0 else list(reversed(engines))  # neither always goes first
        for name in order:
            done, seconds = timed(lambda e=engines[name]: list(e.run(requests)))
            best[name] = max(best[name], sum(len(f.state.generated) for f in done) / seconds)
            outputs[name] = {f.request.key: f.state.generated for f in done}
    same = sum(outputs["grouped"][k] == outputs["sdpa"][k] for k in outputs["sdpa"])
    result = {"speedup": best["grouped"] / best["sdpa"], "grouped_tokens_per_s": best["grouped"],
              "sdpa_tokens_per_s": best["sdpa"], "identical_outputs": f"{same}/{len(ps)}"}  # fmt: skip
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="a smoke run (under a minute)")
    ap.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                    help="the second dtype measured beside fp32 (auto: bf16 where the CPU has bf16 units)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3, help="turns each engine takes, best time each")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    dtypes = sorted({"float32", resolve_dtype(args.dtype)})
    log = (lambda *a: None) if args.json else print

    def run() -> dict:
        results: dict = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "dtypes": dtypes}
        scale = 8 if args.quick else 1
        for dtype in dtypes:
            pair = load_pair(dtype)
            for batch, n_prompts, cap in ((16, 32 // scale, 128 // scale), (1, 2, 96 // scale)):
                key = f"speedup_batch{batch}_{'fp32' if dtype == 'float32' else 'bf16'}"
                detail = compare(*pair, batch, n_prompts, cap, 1 if args.quick else args.repeats)
                log(f"batch {batch} {dtype}: {detail}")
                results[key], results[key + "_detail"] = detail.pop("speedup"), detail
        return results

    if args.json:
        with stdout_to_stderr():
            results = run()
        print(json.dumps(results, indent=2))
    else:
        run()


if __name__ == "__main__":
    main()
