"""Budget-forcing engine benchmark on the embedded model (not a timed test).

Every figure is a ratio against a baseline measured in the same run:
  p1  tokens/s of budget-forced decoding (cap + 2 Waits, continuous batching, 64 requests at
      batch 16) / tokens/s of plain HF `generate` producing the same number of tokens at batch 16.
  p2  wall time of s1-style multi-round forcing / single pass, on identical greedy outputs
      (16 prompts, cap 256, 2 Waits, fp32); the outputs are compared token by token.
  p3  achieved weight-bytes/s at batch 1 (parameter bytes x tokens/s) / memory bandwidth
      (a large tensor copy, timed before and after each of 3 batch-1 runs); the best run over
      the highest bandwidth seen; fp32 weights (bf16 reported beside it). p3_paired: each run
      over the mean of the copies just before and after it, the best run (this VM's bandwidth
      drifts by up to 2x within a minute). `--p3-only`: only these (and, with --compile,
      p3_compiled and p3_compiled_paired), in a few minutes.
  p9  useful tokens / row-steps computed, on a skewed sweep (caps 16..512 mixed, 64 requests,
      batch 16); a static batch of the same requests is computed from the same lengths.
  p3_compiled, compiled_vs_eager (with --compile) p3 with the decode step torch.compile'd
      (HFEngine(compile=True)), and compiled / eager tokens/s on the P1 workload at --batch; the
      compile time is reported beside them, not inside the rates. Also compiled and eager
      tokens/s at 2 and 4 rows (fp32, distinct prompts): a server with a few clients.
  p12 tokens/s of an adaptive-thinking run (a probe every 64 thinking tokens: the forced answer
      text + 20 answer tokens, branched off the row and taken back) / the same requests without
      probes (64 requests, cap 256 reached by every row, batch 16): both produce the same tokens,
      so this is the cost of probing inside the single pass.

    python benchmarks/bench_budget_forcing.py [--json] [--quick] [--engine hf|vllm] [--compile] [--p3-only]

With `--engine vllm` (after `make install ENGINE=vllm`), the same questions on vLLM (P1's, P2's and P10's
runs take turns `--repeats` times, best time each; every timed run starts with an empty prefix
cache):
  p1  forced tokens/s (cap + 2 Waits in vLLM's loop, our logits processor) / plain vLLM
      tokens/s (same prompts, same number of tokens, EOS ignored);
  p1_matched_lengths  the same, with every plain prompt run to its own forced length (the
      forced run's ragged tail in the baseline too: what forcing itself costs);
  p2  multi-round (s1's loop of vLLM `generate` calls) / single pass, greedy fp32, outputs compared;
  hf_vs_vllm  tokens/s of the HF engine / vLLM on the P1 workload, both forced, same dtype;
  p10 thinkscale's cap (its logits processor, no Waits) / vLLM's native `thinking_token_budget`
      (vLLM 0.32's ReasoningConfig, start = the format's think delimiter, end = what thinkscale
      forces at a cut), tokens/s, same LLM, prompts and cap; and for both, how many capped samples
      have exactly the cap in thinking tokens (the ids before the end delimiter, and their text
      re-encoded with the tokenizer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager

import torch
from exp_hybrid_warmup import cpu_name  # benchmarks/ is on the path when a script runs

from thinkscale.formats import get_format
from thinkscale.infer.adaptive import AdaptiveRule
from thinkscale.infer.forcing import Budget, ForcingTokens
from thinkscale.infer.hf_engine import HFEngine, Request, left_pad
from thinkscale.infer.multiround import run_multiround
from thinkscale.models import load_model, resolve_dtype
from thinkscale.tasks import get_task


def prompts(tokenizer, fmt, count: int) -> list[list[int]]:
    task = get_task("gsm8k")
    examples = task.load(count)
    return [
        tokenizer.encode(fmt.render_prompt(tokenizer, task.prompt(e)), add_special_tokens=False)
        for e in examples
    ]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def timed_cold(llm, fn):
    """`timed` on vLLM with its prefix cache emptied first: every run prefills its own prompts
    (a baseline run after the same prompts would otherwise skip their prefill)."""
    llm.reset_prefix_cache()
    return timed(fn)


def plain_generate(
    model, tokenizer, prompt_ids: list[list[int]], new_tokens: int, batch: int
) -> tuple[int, float]:
    """HF generate at a fixed length (EOS ignored): the plain-decoding baseline."""
    total, seconds = 0, 0.0
    for start in range(0, len(prompt_ids), batch):
        chunk = prompt_ids[start : start + batch]
        ids, mask = left_pad(chunk, tokenizer.pad_token_id)
        with torch.inference_mode():
            _, dt = timed(lambda ids=ids, mask=mask: model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                do_sample=False, pad_token_id=tokenizer.pad_token_id))  # fmt: skip
        total += len(chunk) * new_tokens
        seconds += dt
    return total, seconds


def p2_into(results: dict, single, t_single: float, multi, t_multi: float) -> tuple[int, int]:
    """P2 and its detail from the two runs of the same requests; returns (identical, total)."""
    a = {f.request.key: f.state.generated for f in single}
    b = {f.request.key: f.state.generated for f in multi}
    identical = sum(a[k] == b[k] for k in a)
    results["p2"] = t_multi / t_single
    results["p2_detail"] = {
        "single_pass_s": t_single,
        "multi_round_s": t_multi,
        "identical_outputs": f"{identical}/{len(a)}",
    }
    return identical, len(a)


def p10_into(
    results: dict, llm, engine, tokenizer, fmt, ps: list[list[int]], cap: int, repeats: int
) -> None:
    """thinkscale's cap vs vLLM's native thinking budget: the same LLM, prompts, cap and answer
    allowance (16 tokens after the forced text), greedy; the two take turns `repeats` times,
    best time each (as P1's runs do)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    cut = tokenizer.encode(fmt.forced_answer(), add_special_tokens=False)
    end = tokenizer.encode(fmt.think_end, add_special_tokens=False)[0]

    def thinking(ids: list[int], forced: list[bool]) -> tuple[int, int]:
        """(ids before the end delimiter, tokens of their text re-encoded by the tokenizer); a
        newline the engine forced before the delimiter (the format's separator) is not thinking"""
        n = ids.index(end) if end in ids else len(ids)
        if n and forced[n - 1]:
            n -= 1
        return n, len(tokenizer.encode(tokenizer.decode(ids[:n]), add_special_tokens=False))

    def summary(outputs: list[tuple[list[int], list[bool]]], seconds: float) -> dict:
        counts = [thinking(ids, forced) for ids, forced in outputs]
        capped = [c for c in counts if c[0] >= cap]  # the rest ended thinking on their own
        tokens = sum(len(ids) for ids, _ in outputs)
        return {"tokens_per_s": tokens / seconds, "tokens": tokens,
                "capped": len(capped), "exact_cap_ids": sum(c[0] == cap for c in capped),
                "exact_cap_text": sum(c[1] == cap for c in capped), "max_thinking_ids": max(c[0] for c in counts)}  # fmt: skip

    reqs = [Request(i, p, Budget(cap, max_answer_tokens=16)) for i, p in enumerate(ps)]
    params = SamplingParams(temperature=0, thinking_token_budget=cap, max_tokens=cap + len(cut) + 16,
                            detokenize=False)  # fmt: skip
    prompts_ = [TokensPrompt(prompt_token_ids=p) for p in ps]
    list(engine.run(reqs[:2]))  # warm-ups
    llm.generate(prompts_[:2], params, use_tqdm=False)
    t_ours = t_native = float("inf")
    for _ in range(repeats):  # greedy: every turn gives the same outputs, so the last ones are kept
        ours, t = timed_cold(llm, lambda: list(engine.run(reqs)))
        t_ours = min(t_ours, t)
        native, t = timed_cold(llm, lambda: llm.generate(prompts_, params, use_tqdm=False))
        t_native = min(t_native, t)
    mine = summary([(f.state.generated, f.state.forced) for f in ours], t_ours)
    theirs = summary([(ids := list(o.outputs[0].token_ids), [False] * len(ids)) for o in native], t_native)
    results["p10"] = mine["tokens_per_s"] / theirs["tokens_per_s"]
    results["p10_detail"] = {"cap": cap, "prompts": len(ps), "repeats": repeats, "thinkscale": mine,
                             "vllm_native": theirs}  # fmt: skip


def memory_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes/s of a large copy (read + write), best of a few."""
    n = int(gib * (1 << 30)) // 4
    src, dst = torch.ones(n), torch.empty(n)
    best = float("inf")
    for _ in range(repeats):
        _, dt = timed(lambda: dst.copy_(src))
        best = min(best, dt)
    return 2 * n * 4 / best


@contextmanager
def stdout_to_stderr():
    """Everything written to file descriptor 1 goes to stderr meanwhile: vLLM's log handler holds
    the original stdout (and native code writes to fd 1), so only an fd-level swap keeps
    `--json` output pure."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="1/16 of the sizes: a smoke run (about a minute)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                    help="auto: bf16 where the CPU has bf16 units (AMX, AVX512-BF16), else fp32")
    ap.add_argument("--engine", choices=["hf", "vllm"], default="hf")
    ap.add_argument("--repeats", type=int, default=2,
                    help="--engine vllm: P1's, P2's and P10's runs take turns this many times, best time each")  # fmt: skip
    ap.add_argument("--compile", action="store_true", help="also measure the compiled HF engine (minutes of compiling)")
    ap.add_argument("--p3-only", action="store_true", help="--engine hf: only P3 (batch 1 against bandwidth)")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.p3_only and args.engine != "hf":
        ap.error("--p3-only measures the HF engine at batch 1; it does not apply to --engine vllm")
    args.dtype = resolve_dtype(args.dtype)
    if args.json:  # one JSON document on stdout, every log line on stderr
        with stdout_to_stderr():
            results = vllm_main(args) if args.engine == "vllm" else hf_main(args)
        print(json.dumps(results, indent=2))
    else:
        vllm_main(args) if args.engine == "vllm" else hf_main(args)


def hf_main(args) -> dict:
    scale = 16 if args.quick else 1  # quick: a smoke run of about a minute
    model, tokenizer = load_model(dtype=args.dtype)
    fmt = get_format("s1")
    tokens = ForcingTokens.from_tokenizer(tokenizer, fmt)
    results: dict = {
        "cpu": cpu_name(),
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "dtype": args.dtype,
    }
    log = (lambda *a: None) if args.json else print

    n_req = 64 // scale
    ps = prompts(tokenizer, fmt, n_req)
    cap = 128 // scale
    # fp32 for P2 and batch 1 (see there)
    model32 = load_model(dtype="float32")[0] if args.dtype != "float32" else model
    if not args.p3_only:
        # P1: forced vs plain tokens/s, same batch, same number of tokens
        engine = HFEngine(model, tokens, args.batch, tokenizer.pad_token_id)
        done, t_forced = timed(
            lambda: list(
                engine.run(
                    [
                        Request(i, p, Budget(cap, num_ignore=2, max_answer_tokens=16))
                        for i, p in enumerate(ps)
                    ]
                )
            )
        )
        forced_tokens = sum(len(f.state.generated) for f in done)
        per_row = max(1, round(forced_tokens / len(ps)))
        plain_tokens, t_plain = plain_generate(model, tokenizer, ps, per_row, args.batch)
        results["p1"] = (forced_tokens / t_forced) / (plain_tokens / t_plain)
        results["p1_detail"] = {"forced_tokens_per_s": forced_tokens / t_forced, "plain_tokens_per_s": plain_tokens / t_plain,
                                "forced_tokens": forced_tokens, "plain_tokens": plain_tokens,
                                "waits": sum(f.state.waits for f in done), "capped": sum(f.state.capped for f in done)}  # fmt: skip
        log(f"P1 forced/plain tokens/s: {results['p1']:.3f}  {results['p1_detail']}")

        # P2: s1 multi-round vs single pass on identical greedy outputs. fp32: in bf16, rounding that
        # differs between batch layouts flips a few near-tied greedy choices (both methods are exact
        # in float64, see tests/infer/test_engine.py).
        ps2 = ps[:16]

        def reqs() -> list[Request]:
            return [
                Request(i, p, Budget(256 // scale, num_ignore=2, max_answer_tokens=16))
                for i, p in enumerate(ps2)
            ]

        single, t_single = timed(
            lambda: list(HFEngine(model32, tokens, args.batch, tokenizer.pad_token_id).run(reqs()))
        )
        multi, t_multi = timed(
            lambda: run_multiround(
                model32, tokens, reqs(), batch_size=args.batch, pad_token_id=tokenizer.pad_token_id
            )
        )
        identical, total = p2_into(results, single, t_single, multi, t_multi)
        log(f"P2 multi-round/single-pass wall time: {results['p2']:.2f}  {results['p2_detail']}")
        if identical != total:
            log(
                "  note: outputs differ for some prompts (float rounding differs between batch layouts)"
            )

    # P3: batch-1 decoding vs memory bandwidth, in fp32: at batch 1 this CPU decodes fp32 faster
    # than bf16 (bf16 matrix-vector products do not use AMX well), so fp32 is the batch-1 setting;
    # the bf16 figure is reported beside it. This VM's bandwidth drifts within seconds (31-55
    # GB/s in one minute), so a copy is timed before every batch-1 run, each rate is the best of
    # its runs, and the ratio divides by the highest bandwidth seen in the whole section. `_paired`
    # divides each run's rate by the copies timed just before and just after it (their mean)
    # instead, and keeps the best run: the same ratio, without a fast moment's copy set against a
    # slow moment's run.
    bandwidths: list[float] = []

    def batch1(net, compile: bool = False, runs: int = 3) -> tuple[float, float, float, float]:
        weight_bytes = sum(p.numel() * p.element_size() for p in net.parameters())
        one = HFEngine(net, tokens, 1, tokenizer.pad_token_id, compile=compile)
        steps = 96 // scale
        run1 = [Request(0, ps[0], Budget(steps, min_thinking_tokens=steps, max_answer_tokens=1))]
        list(one.run(run1 if compile else [Request(0, ps[0], Budget(8, max_answer_tokens=1))]))  # warm-up
        rates, around = [], [memory_bandwidth()]
        for _ in range(runs):
            done1, t1 = timed(lambda: list(one.run(run1)))
            rates.append(len(done1[0].state.generated) / t1)
            around.append(memory_bandwidth())
        bandwidths.extend(around)
        paired = max(weight_bytes * r / ((a + b) / 2) for r, a, b in zip(rates, around, around[1:]))
        if compile:
            return weight_bytes, max(rates), one.stats.compile_seconds, paired
        _, t_plain = min((plain_generate(net, tokenizer, ps[:1], steps, 1) for _ in range(runs)),
                         key=lambda r: r[1])  # fmt: skip
        return weight_bytes, max(rates), steps / t_plain, paired

    w32, tps32, plain32, paired32 = batch1(model32)
    w16, tps16, plain16, _ = batch1(model) if model is not model32 else (w32, tps32, plain32, paired32)
    if args.compile:  # the compiled decode step at batch 1, fp32 and the run's dtype
        _, tps_c, compile1, paired_c = batch1(model32, compile=True)
        tps_c16 = batch1(model, compile=True)[1] if model is not model32 else tps_c
    bandwidth = max(bandwidths)
    results["p3"] = w32 * tps32 / bandwidth
    results["p3_paired"] = paired32
    if args.compile:
        results["p3_compiled"] = w32 * tps_c / bandwidth
        results["p3_compiled_paired"] = paired_c
    results["p3_detail"] = {
        "bandwidth_gb_s": bandwidth / 1e9, "bandwidth_samples_gb_s": [round(b / 1e9, 1) for b in bandwidths],
        "fp32": {"weight_mb": w32 / 1e6, "tokens_per_s": tps32, "ratio": w32 * tps32 / bandwidth,
                 "plain_generate_tokens_per_s": plain32, "plain_generate_ratio": w32 * plain32 / bandwidth},
        "bf16": {"weight_mb": w16 / 1e6, "tokens_per_s": tps16, "ratio": w16 * tps16 / bandwidth,
                 "plain_generate_tokens_per_s": plain16, "plain_generate_ratio": w16 * plain16 / bandwidth},
    }  # fmt: skip
    if args.compile:
        results["p3_detail"]["compiled"] = {"fp32_tokens_per_s": tps_c, "bf16_tokens_per_s": tps_c16,
                                            "fp32_compile_seconds": compile1}  # fmt: skip
    log(f"P3 batch-1 weight-bytes/s / bandwidth: {results['p3']:.3f}  {results['p3_detail']}")

    if args.p3_only:
        return results

    if args.compile:  # the compiled decode step: the P1 workload at --batch, and 2 and 4 rows
        p1_reqs = [Request(i, p, Budget(cap, num_ignore=2, max_answer_tokens=16)) for i, p in enumerate(ps)]
        eager_b = HFEngine(model, tokens, args.batch, tokenizer.pad_token_id)
        warm_b = HFEngine(model, tokens, args.batch, tokenizer.pad_token_id, compile=True)
        list(warm_b.run(p1_reqs))  # compiles the batch graphs
        eager_done, t_eager = timed(lambda: list(eager_b.run(p1_reqs)))
        comp_done, t_comp = timed(lambda: list(warm_b.run(p1_reqs)))
        tps_e = sum(len(f.state.generated) for f in eager_done) / t_eager
        tps_b = sum(len(f.state.generated) for f in comp_done) / t_comp
        results["compiled_vs_eager"] = tps_b / tps_e
        small = {}  # a server with a few clients: rows of distinct prompts, fp32, decoded together
        for rows in (2, 4):
            reqs = [Request(i, p, Budget(96 // scale, min_thinking_tokens=96 // scale, max_answer_tokens=1))
                    for i, p in enumerate(ps[:rows])]  # fmt: skip
            eager_s = HFEngine(model32, tokens, rows, tokenizer.pad_token_id)
            comp_s = HFEngine(model32, tokens, rows, tokenizer.pad_token_id, compile=True)
            list(comp_s.run(reqs))  # compiles this size's graph
            e_done, t_e = timed(lambda e=eager_s, r=reqs: list(e.run(r)))
            c_done, t_c = timed(lambda e=comp_s, r=reqs: list(e.run(r)))
            n = sum(len(f.state.generated) for f in e_done)
            small[str(rows)] = {"eager_tokens_per_s": n / t_e, "compiled_tokens_per_s": n / t_c,
                                "identical": sorted((f.request.key, f.state.generated) for f in e_done)
                                == sorted((f.request.key, f.state.generated) for f in c_done)}  # fmt: skip
        same = sum(a.state.generated == b.state.generated for a, b in zip(
            sorted(eager_done, key=lambda f: f.request.key), sorted(comp_done, key=lambda f: f.request.key)))  # fmt: skip
        results["compiled_detail"] = {
            "batch1_tokens_per_s": tps_c, "batch1_eager_tokens_per_s": tps32, "batch1_compile_seconds": compile1,
            "batch1_bf16_tokens_per_s": tps_c16, "batch1_bf16_eager_tokens_per_s": tps16,
            "batch_tokens_per_s": tps_b, "batch_eager_tokens_per_s": tps_e,
            "batch_compile_seconds": warm_b.stats.compile_seconds, "identical_outputs": f"{same}/{len(ps)}",
            "small_batch_fp32": small,
        }  # fmt: skip
        log(f"P3 compiled: {results['p3_compiled']:.3f}; compiled/eager tokens/s at batch {args.batch}: "
            f"{results['compiled_vs_eager']:.3f}  {results['compiled_detail']}")  # fmt: skip

    # P9: useful tokens / row-steps on a skewed sweep
    caps = [16, 32, 64, 128, 256, 512]
    sweep = [
        Request(i, ps[i % len(ps)], Budget(caps[i % len(caps)] // scale, max_answer_tokens=16))
        for i in range(64 // scale)
    ]
    eng9 = HFEngine(model, tokens, args.batch, tokenizer.pad_token_id)
    done9, t9 = timed(lambda: list(eng9.run(sweep)))
    lengths = {f.request.key: len(f.state.generated) for f in done9}
    ordered = [lengths[r.key] for r in sweep]
    static_steps = sum(
        args.batch * max(ordered[i : i + args.batch]) for i in range(0, len(ordered), args.batch)
    )
    results["p9"] = eng9.stats.utilization
    results["p9_detail"] = {"useful_tokens": eng9.stats.useful_tokens, "row_steps": eng9.stats.row_steps, "seconds": t9,
                            "static_batch_utilization": sum(ordered) / static_steps}  # fmt: skip
    log(f"P9 useful tokens / row-steps: {results['p9']:.3f}  {results['p9_detail']}")

    # P12: adaptive probes (never settling: no reader) vs the same run without them
    cap12, every = 256 // scale, 64 // scale
    never = AdaptiveRule("consistency", every=every, tokens=20, agree=10**6)

    def reqs12(rule) -> list[Request]:
        return [Request(i, p, Budget(cap12, min_thinking_tokens=cap12, max_answer_tokens=16, adaptive=rule))
                for i, p in enumerate(ps)]  # fmt: skip

    eng_plain, eng_probe = (HFEngine(model, tokens, args.batch, tokenizer.pad_token_id) for _ in range(2))
    plain12, t_plain12 = timed(lambda: list(eng_plain.run(reqs12(None))))
    probed12, t_probe12 = timed(lambda: list(eng_probe.run(reqs12(never))))
    generated = sum(len(f.state.generated) for f in probed12)
    results["p12"] = (generated / t_probe12) / (sum(len(f.state.generated) for f in plain12) / t_plain12)
    results["p12_detail"] = {
        "adaptive_tokens_per_s": generated / t_probe12, "plain_tokens_per_s": generated / t_plain12,
        "generated_tokens": generated, "probes": sum(len(f.state.probes) for f in probed12),
        "probe_tokens": sum(f.state.probe_tokens for f in probed12),
        "same_outputs": sorted((f.request.key, f.state.generated) for f in plain12)
        == sorted((f.request.key, f.state.generated) for f in probed12),
    }  # fmt: skip
    log(f"P12 adaptive (probes every {every}) / plain tokens/s: {results['p12']:.3f}  {results['p12_detail']}")
    return results


def vllm_main(args) -> dict:
    from vllm import SamplingParams
    from vllm.config import ReasoningConfig
    from vllm.inputs import TokensPrompt

    from thinkscale.infer.vllm_engine import VLLMEngine, load_llm
    from thinkscale.models import resolve_model_path

    scale = 4 if args.quick else 1
    path = str(resolve_model_path("smollm2-135m"))
    log = (lambda *a: None) if args.json else print
    results: dict = {"cpu": cpu_name(), "engine": "vllm", "batch": args.batch, "dtype": args.dtype}
    fmt = get_format("s1")
    # vLLM's native budget (p10) forces what thinkscale forces when the cap is reached
    native = ReasoningConfig(reasoning_start_str=fmt.think_start, reasoning_end_str=fmt.forced_answer())
    llm = load_llm(path, args.dtype, args.batch, max_model_len=2048, reasoning_config=native)
    model, tokenizer = load_model(dtype=args.dtype)
    tokens = ForcingTokens.from_tokenizer(tokenizer, fmt)
    ps = prompts(tokenizer, fmt, 64 // scale)
    cap = 128 // scale
    engine = VLLMEngine(llm, tokens)

    def p1_requests() -> list[Request]:
        return [
            Request(i, p, Budget(cap, num_ignore=2, max_answer_tokens=16)) for i, p in enumerate(ps)
        ]

    list(engine.run(p1_requests()[:2]))  # warm-up
    # the forced run and its baselines take turns, `--repeats` times, best time each: on this
    # VM one run of the same work varies by ~5% (the forced run and the matched baseline do the
    # same model steps); the first forced run also gives the baselines their lengths
    done, t_forced = timed_cold(llm, lambda: list(engine.run(p1_requests())))
    forced_tokens = sum(len(f.state.generated) for f in done)
    per_row = max(1, round(forced_tokens / len(ps)))
    plain = SamplingParams(
        temperature=0, max_tokens=per_row, min_tokens=per_row, ignore_eos=True, detokenize=False
    )
    plain_tokens = per_row * len(ps)
    # the same baseline with each prompt's own forced length: forced rows end at different
    # lengths, so the last steps of a run run part-empty; this baseline has the same tail
    lengths = {f.request.key: len(f.state.generated) for f in done}
    matched = [SamplingParams(temperature=0, max_tokens=lengths[i], min_tokens=lengths[i], ignore_eos=True,
                              detokenize=False) for i in range(len(ps))]  # fmt: skip
    token_prompts = [TokensPrompt(prompt_token_ids=p) for p in ps]
    t_plain = t_matched = float("inf")
    for turn in range(args.repeats):
        if turn:  # the first turn's forced run is the one above
            t_forced = min(t_forced, timed_cold(llm, lambda: list(engine.run(p1_requests())))[1])
        t_plain = min(t_plain, timed_cold(llm, lambda: llm.generate(token_prompts, plain, use_tqdm=False))[1])
        t_matched = min(t_matched, timed_cold(llm, lambda: llm.generate(token_prompts, matched, use_tqdm=False))[1])
    results["p1"] = (forced_tokens / t_forced) / (plain_tokens / t_plain)
    results["p1_matched_lengths"] = t_matched / t_forced
    results["p1_detail"] = {"forced_tokens_per_s": forced_tokens / t_forced, "plain_tokens_per_s": plain_tokens / t_plain,
                            "plain_matched_lengths_tokens_per_s": forced_tokens / t_matched, "repeats": args.repeats,
                            "forced_tokens": forced_tokens, "waits": sum(f.state.waits for f in done),
                            "capped": sum(f.state.capped for f in done)}  # fmt: skip
    log(f"P1 (vLLM) forced/plain tokens/s: {results['p1']:.3f}  {results['p1_detail']}")

    hf_done, t_hf = timed(
        lambda: list(HFEngine(model, tokens, args.batch, tokenizer.pad_token_id).run(p1_requests()))
    )
    hf_tokens = sum(len(f.state.generated) for f in hf_done)
    results["hf_vs_vllm"] = (hf_tokens / t_hf) / (forced_tokens / t_forced)
    results["hf_vs_vllm_detail"] = {
        "hf_tokens_per_s": hf_tokens / t_hf,
        "vllm_tokens_per_s": forced_tokens / t_forced,
    }
    log(f"HF/vLLM forced tokens/s: {results['hf_vs_vllm']:.3f}  {results['hf_vs_vllm_detail']}")

    p10_into(results, llm, engine, tokenizer, fmt, ps, cap, args.repeats)
    log(f"P10 thinkscale cap / vLLM native thinking_token_budget tokens/s: {results['p10']:.3f}  {results['p10_detail']}")

    llm32 = (
        load_llm(path, "float32", args.batch, max_model_len=2048)
        if args.dtype != "float32"
        else llm
    )
    eng32 = VLLMEngine(llm32, tokens)

    def reqs() -> list[Request]:
        return [
            Request(i, p, Budget(256 // scale, num_ignore=2, max_answer_tokens=16))
            for i, p in enumerate(ps[:16])
        ]

    t_single = t_multi = float("inf")
    for _ in range(args.repeats):  # taking turns, best time each (see P1)
        single, t = timed_cold(llm32, lambda: list(eng32.run(reqs())))
        t_single = min(t_single, t)
        multi, t = timed_cold(llm32, lambda: run_multiround(None, tokens, reqs(), batch_size=args.batch,
                                                            generate_fn=eng32.generate_fn))  # fmt: skip
        t_multi = min(t_multi, t)
    p2_into(results, single, t_single, multi, t_multi)
    log(f"P2 (vLLM) multi-round/single-pass wall time: {results['p2']:.2f}  {results['p2_detail']}")
    return results


if __name__ == "__main__":
    main()
