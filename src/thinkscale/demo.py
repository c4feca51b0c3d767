"""The main job, end to end: fine-tune the embedded model on arithmetic traces, then sweep the
thinking budget on held-out arithmetic and on GSM8K, and report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from thinkscale.configs import option
from thinkscale.eval.evaluate import summary_table
from thinkscale.eval.report import write_report
from thinkscale.infer.engines import ENGINES
from thinkscale.infer.generate import GenerateConfig, generate
from thinkscale.models import DEFAULT_MODEL


@dataclass
class DemoConfig:
    out: str = option("runs/demo")
    quick: bool = option(False, help="a ~3 minute version (for tests)")
    train: bool = option(True, help="fine-tune on arithmetic traces first (--no-train: sweep the embedded model as is)")
    limit: int | None = option(None, help="number of GSM8K questions (default 12; quick: 4)")
    engine: str = option("hf", choices=ENGINES, help="engine for the sweeps (vllm: make install ENGINE=vllm)")
    train_steps: int = option(60, cli=False)  # batch 8 x ~100 tokens: ~7 s a step on 2 cores
    quick_train_steps: int = option(6, cli=False)
    arith_questions: int = option(48, cli=False)
    quick_arith_questions: int = option(12, cli=False)
    arith_caps: list[int] = option(factory=lambda: [8, 16, 32, 64, 128], cli=False)
    quick_arith_caps: list[int] = option(factory=lambda: [8, 64], cli=False)
    # GSM8K (thinking cap, number of Waits): three caps, then extend at the largest cap
    runs: list[tuple[int, int]] = option(
        factory=lambda: [(32, 0), (128, 0), (512, 0), (512, 1), (512, 2)], cli=False
    )
    quick_runs: list[tuple[int, int]] = option(factory=lambda: [(16, 0), (64, 0), (64, 1)], cli=False)
    n: int = option(4, cli=False)
    quick_n: int = option(2, cli=False)


def train_step(cfg: DemoConfig, out: Path) -> str:
    """Fine-tune on the `arith` corpus into out/model; a finished model is reused, a killed run resumed."""
    from thinkscale.train.sft import RUN_FILE, SFTRunConfig, train_sft

    model_dir = out / "model"
    if (model_dir / "config.json").exists():
        print(f"reusing the fine-tuned model in {model_dir}")
        return str(model_dir)
    steps = cfg.quick_train_steps if cfg.quick else cfg.train_steps
    print(f"step 1: SFT of the embedded model on arithmetic traces, {steps} steps x batch 8")
    sft = SFTRunConfig(
        data="arith", out=str(model_dir), model=DEFAULT_MODEL, max_steps=steps, batch_size=8, micro_batch_size=8,
        learning_rate=3e-4, warmup=0.1, max_length=256, save_steps=20, logging_steps=10,
        resume=(model_dir / RUN_FILE).exists(),
    )  # fmt: skip
    train_sft(sft)
    return str(model_dir)


def run_demo(cfg: DemoConfig | None = None) -> dict:
    cfg = cfg or DemoConfig()
    start = time.time()
    out = Path(cfg.out)
    results = out / "results.jsonl"
    model = train_step(cfg, out) if cfg.train else DEFAULT_MODEL
    if cfg.train:
        caps = cfg.quick_arith_caps if cfg.quick else cfg.arith_caps
        arith = GenerateConfig(
            task="arith", model=model, limit=cfg.quick_arith_questions if cfg.quick else cfg.arith_questions,
            runs=[(c, 0) for c in caps], max_answer_tokens=16, batch_size=32, engine=cfg.engine,
        )  # fmt: skip
        print(f"step 2: greedy sweep of held-out arithmetic x{arith.limit}, thinking caps {caps}")
        generate(arith, results)
    gen = GenerateConfig(
        task="gsm8k",
        model=model,
        limit=cfg.limit or (4 if cfg.quick else 12),
        n=cfg.quick_n if cfg.quick else cfg.n,
        runs=cfg.quick_runs if cfg.quick else cfg.runs,
        temperature=0.7,  # fs1's parallel-sampling settings
        top_p=0.8,
        top_k=20,
        max_answer_tokens=32,  # the number follows "Final Answer:"; the rest is chatter
        batch_size=32,
        engine=cfg.engine,
    )
    print(f"step 3: GSM8K test x{gen.limit}, n={gen.n}, (cap, waits) = {gen.grid()}")
    generate(gen, results)
    metrics = write_report(out)
    print(summary_table(metrics))
    print(
        "\nA 135M model is weak at GSM8K (expect single-digit accuracy, even lower after an\n"
        "arithmetic-only fine-tune); on the task it was trained for, accuracy should rise with the cap."
    )
    print(f"wrote {out}/results.jsonl, metrics.json, scaling.png, parallel.png, report.html "
          f"in {time.time() - start:.0f} s")  # fmt: skip
    return metrics
