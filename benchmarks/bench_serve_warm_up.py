"""What `serve`'s clients get while its decode step compiles in the background (not a test).

`serve` compiles in a thread (`HFEngine.warm_up_in_background`) and answers meanwhile. Each
setting runs in a fresh process with an empty Inductor cache: it starts the warm-up, then sends
lone requests (40 thinking tokens, 8 answer tokens, greedy) one after another from the serving
thread until the warm-up has ended, then 3 more:
  eager   the eager step until every graph is ready (`SERVE_READY_GRAPHS = False`; thinkscale
          before 2026-12-07)
  ready   each graph as soon as the warm-up has finished it (thinkscale's default)
Per setting: `tokens_per_s` over the requests started during the warm-up (their tokens over
their time), `requests` answered then, `median_request_tokens_per_s`, `warm_up_s` (the
warm-up's own length, `HFEngine.warm_up_seconds`), `after_tokens_per_s` (best of the 3 after
it) and `same_tokens` (how many outputs equal the eager engine's). `ratio`: ready / eager
`tokens_per_s`. The settings take turns `--repeats` times; each keeps its run with the most
tokens/s.

    python benchmarks/bench_serve_warm_up.py [--json] [--quick] [--batch 16] [--dtype auto] [--repeats 1]

`--quick`: a tiny random model at 2 rows (2 graphs), a smoke run of about two minutes.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_compile import bench_main, bench_model, header, measure  # noqa: E402

SETTINGS = ("eager", "ready")


def child(args) -> dict:
    """One warm-up in the background of this process, with lone requests beside it."""
    from thinkscale.formats import get_format
    from thinkscale.infer import hf_engine
    from thinkscale.infer.forcing import Budget, ForcingTokens
    from thinkscale.infer.hf_engine import HFEngine, Request

    hf_engine.SERVE_READY_GRAPHS = args.child == "ready"
    model, tok = bench_model(args.dtype, args.quick)
    tokens = ForcingTokens.from_tokenizer(tok, get_format("s1"))
    prompt = tok.encode("What is 17 times 23? Think step by step.", add_special_tokens=False)

    def request() -> list[Request]:
        return [Request("lone", prompt, Budget(40, min_thinking_tokens=40, max_answer_tokens=8))]

    reference = list(HFEngine(model, tokens, args.batch, tok.pad_token_id).run(request()))[0].state.generated
    engine = HFEngine(model, tokens, args.batch, tok.pad_token_id, compile=True)
    engine.warm_up_in_background(tok.encode("Hello", add_special_tokens=False))
    during, after, same = [], [], 0
    while len(after) < 3:
        t0, warming = time.perf_counter(), engine.warming_up
        generated = list(engine.run(request()))[0].state.generated
        (during if warming else after).append((len(generated), time.perf_counter() - t0))
        same += generated == reference
    engine.compiling.join()
    if engine.compile_error is not None:
        raise engine.compile_error
    return {
        "tokens_per_s": sum(n for n, _ in during) / sum(t for _, t in during),
        "requests": len(during),
        "median_request_tokens_per_s": statistics.median(n / t for n, t in during),
        "warm_up_s": engine.warm_up_seconds,
        "after_tokens_per_s": max(n / t for n, t in after),
        "same_tokens": f"{same}/{len(during) + len(after)}",
    }


def run(args, log) -> dict:
    best: dict[str, dict] = {}
    for turn in range(args.repeats):
        for setting in SETTINGS:
            with tempfile.TemporaryDirectory(prefix="bench_serve_warm_up_") as cache:
                got = measure(args, setting, Path(cache), __file__)
            log(f"turn {turn + 1} {setting}: {got['tokens_per_s']:.2f} tokens/s over a {got['warm_up_s']:.0f} s "
                f"warm-up ({got['requests']} requests, median {got['median_request_tokens_per_s']:.1f}), "
                f"{got['after_tokens_per_s']:.1f} after; same tokens {got['same_tokens']}")  # fmt: skip
            if setting not in best or got["tokens_per_s"] > best[setting]["tokens_per_s"]:
                best[setting] = got
    results = {
        **header(args),
        "ratio": best["ready"]["tokens_per_s"] / best["eager"]["tokens_per_s"],
        **best,
    }
    log(f"tokens/s during the warm-up: ready {best['ready']['tokens_per_s']:.2f} / eager "
        f"{best['eager']['tokens_per_s']:.2f} = {results['ratio']:.2f}")  # fmt: skip
    return results


if __name__ == "__main__":
    bench_main(__doc__, SETTINGS, child, run, dtype="auto", quick_batch=2,
               quick="a tiny random model at 2 rows (about two minutes)",
               repeats="turns of the two settings, best run each")  # fmt: skip
