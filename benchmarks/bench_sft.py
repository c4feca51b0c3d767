"""SFT throughput: TRL packing (bfd, padding-free) vs TRL's padded batching (not a timed test).

Same model (the embedded SmolLM2-135M), same traces (gsm8k-train, whose lengths vary, which is
where padding costs), about the same real tokens per optimizer step (padded: 8 traces; packed:
4 rows of 512 tokens); each mode runs in its own process so its peak memory (max RSS) is its own.
Two packed layouts: `packed` puts the 4 rows in one micro-batch (TRL flattens them into one
2k-token row), `packed-accum` feeds one 512-token row per micro-batch and accumulates 4. CPU sdpa
has no variable-length kernel, so a flattened row carries a dense block-diagonal mask whose cost
grows with the square of its length. Prints P4 = real (non-padding) tokens/s packed / padded.

    python benchmarks/bench_sft.py [--json] [--steps N] [--batch B]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile

MODES = ("padded", "packed", "packed-accum")


def one_mode(mode: str, steps: int, batch: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from thinkscale.data.traces import load_traces
    from thinkscale.models import embedded_checkpoint
    from thinkscale.train.sft import to_conversations

    path = embedded_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    rows = to_conversations(load_traces("gsm8k-train", limit=steps * batch * 2), "s1")
    # Packed rows are max_length long and padding-free flattens a batch into one row; without
    # flash-attention's varlen kernels (CPU sdpa) that row gets a dense mask, so keep it ~2k tokens:
    # 8 x 1024 packed (one 8k row) was killed for memory here. Padded: 8 traces of ~250 tokens.
    packing = mode != "padded"
    rows_per_step = max(1, batch // 2) if packing else batch
    max_length = 512 if packing else 1024
    accumulation = rows_per_step if mode == "packed-accum" else 1
    micro = rows_per_step // accumulation
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, max_steps=steps, per_device_train_batch_size=micro, packing=packing,
                         gradient_accumulation_steps=accumulation,
                         max_length=max_length, bf16=False, gradient_checkpointing=False, report_to=[], use_cpu=True,
                         logging_steps=1, save_strategy="no", learning_rate=1e-5, seed=0)  # fmt: skip
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
        padded_tokens = 0
        for i, b in enumerate(trainer.get_train_dataloader()):
            if i >= steps * accumulation:
                break
            padded_tokens += b["input_ids"].numel()
        out = trainer.train()
    real_tokens = (
        float(trainer.state.log_history[-2].get("num_tokens", 0))
        if len(trainer.state.log_history) > 1
        else 0.0
    )
    seconds = out.metrics["train_runtime"]
    return {
        "mode": mode,
        "micro_batch": micro,
        "accumulation": accumulation,
        "steps": steps,
        "seconds": seconds,
        "real_tokens": real_tokens,
        "tokens_per_s": real_tokens / seconds,
        "computed_tokens": padded_tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 step of batch 4 per layout")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.batch = 1, 4
    if args.mode:
        print(json.dumps(one_mode(args.mode, args.steps, args.batch)))
        return
    res = {}
    for mode in MODES:
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--steps", str(args.steps), "--batch",
                               str(args.batch)], capture_output=True, text=True, check=True)  # fmt: skip
        res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = res["padded"]["tokens_per_s"]
    result = {"p4": max(res[m]["tokens_per_s"] for m in MODES[1:]) / base,
              **{f"p4_{m.replace('-', '_')}": res[m]["tokens_per_s"] / base for m in MODES[1:]}, **res}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for mode in MODES:
            r = res[mode]
            print(f"{mode:>12} ({r['micro_batch']} x {r['accumulation']}): {r['tokens_per_s']:.1f} real tokens/s ({r['real_tokens']:.0f} tokens, {r['computed_tokens']} "
                  f"computed, {r['seconds']:.1f} s), peak RSS {r['peak_rss_mb']:.0f} MB")  # fmt: skip
        for mode in MODES[1:]:
            print(f"{mode} / padded tokens/s = {res[mode]['tokens_per_s'] / base:.2f}")
        print(f"P4 (best packed layout / padded) = {result['p4']:.2f}")


if __name__ == "__main__":
    main()
