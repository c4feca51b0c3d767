"""`thinkscale dot train`: a masked (absorbing-state) diffusion LM over the chain and answer.

Training follows the simple masked-diffusion recipe (MDLM; LLaDA's SFT): draw a noise level
t ~ U(0, 1] per sequence (low-discrepancy across the batch), replace each target token by
`<mask>` with probability t, and train the bidirectional backbone to recover the masked tokens
(cross-entropy: by default the plain mean over masked tokens; `weighting="elbo"` weights it by
1/t, the bound). The noise is drawn in `compute_loss`, not the collator, so a resumed run
draws the same masks as an uninterrupted one. The question is never masked (`fix_src`). Targets are padded with EOS to a fixed length, and those
EOS count in the loss, so the model learns where the answer ends. With `prefix_prob`, some rows
also keep their first k thoughts clean: the state DoT-MP samples from, and, as measured on 4x4,
what teaches the model each thought given the earlier ones (the running sums need it).

`objective="ar"` trains the same backbone left to right on the same data (the baseline of
`benchmarks/bench_dot.py`). HF's Trainer runs the loop (optimizer, cosine schedule, progress bar,
checkpoints, resume); only the loss is ours.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, check_between
from thinkscale.dot.data import DotExample, check_task, load_task, trace_examples
from thinkscale.dot.model import (
    DotMeta,
    add_dot_tokens,
    build_tokenizer,
    denoise_logits,
    encode,
    new_backbone,
    save_meta,
    separator_id,
    source_text,
)
from thinkscale.run_dirs import check_run_dir, save_final

RUN_FILE = "thinkscale_dot.json"
CLOCK_FILE = "train_seconds.json"  # in each checkpoint: step time so far


@dataclass
class DotTrainConfig:
    """Defaults: a 6-layer, 256-wide model on procedural 4x4 multiplication, sized for 2 CPU
    cores. CLI flags mirror these fields."""

    task: str = "mul4x4"  # mul4x4 | mul5x5 | gsm8k
    data: str | None = None  # a traces file instead of --task: its thinking lines are the thoughts
    out: str = "runs/dot-mul4x4"
    objective: str = "diffusion"  # diffusion | ar (the autoregressive baseline)
    init: str | None = None  # a pretrained checkpoint (embedded name or dir) instead of scratch
    tokenizer: str = "auto"  # word | bpe | auto (word for multiplication, bpe for GSM8K)
    vocab_size: int = 2048  # for bpe
    hidden_size: int = 256
    layers: int = 6
    heads: int = 4
    intermediate_size: int = 768
    train_size: int = 100_000  # training problems (multiplication: distinct, none from test)
    max_steps: int = 2000
    train_seconds: float | None = None  # if set: as many steps as fit (measured) in this time
    batch_size: int = 32  # small batches, more updates: at equal compute better than 128 here
    learning_rate: float = 5e-4
    warmup: float = 0.03
    weight_decay: float = 0.01
    prefix_prob: float = 0.5  # rows whose first k thoughts stay clean: 4x4 at 45 min, 0.1 -> 0.6%, 0.5 -> 98.5%
    prefix_unit: str = "thought"  # thought: the clean prefix ends at a thought boundary; token: anywhere
    weighting: str = "uniform"  # uniform (mean CE over masked tokens) | elbo (1/t weights)
    max_length: int = 512  # question + target tokens; longer examples are dropped (counted)
    save_steps: int = 250
    logging_steps: int = 50
    seed: int = 0
    bf16: bool = True  # bf16 autocast (CPU: AMX matmuls, ~2x faster here); weights stay fp32
    resume: bool = False
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def validate(self) -> None:
        check_task(self.task)
        if self.data is not None and not Path(self.data).exists():
            raise ThinkscaleError(f"--data {self.data}: no such traces file")
        if self.objective not in ("diffusion", "ar"):
            raise ThinkscaleError(f"--objective must be diffusion or ar, got '{self.objective}'")
        if self.weighting not in ("uniform", "elbo"):
            raise ThinkscaleError(f"--weighting must be uniform or elbo, got '{self.weighting}'")
        if self.tokenizer not in ("auto", "word", "bpe"):
            raise ThinkscaleError(f"--tokenizer must be auto, word or bpe, got '{self.tokenizer}'")
        if self.max_steps <= 0 and not self.train_seconds:
            raise ThinkscaleError("--max-steps must be positive (or give --train-seconds)")
        if self.learning_rate <= 0:
            raise ThinkscaleError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.train_seconds is not None and self.train_seconds <= 0:
            raise ThinkscaleError(f"--train-seconds must be positive, got {self.train_seconds}")
        check_at_least(self, 1, "batch_size", "train_size", "hidden_size", "layers", "heads",
                       "intermediate_size", "max_length", "save_steps", "logging_steps", "threads")  # fmt: skip
        check_at_least(self, 16, "vocab_size")
        check_at_least(self, 0, "weight_decay")
        check_between(self, 0, 1, "warmup")
        if self.hidden_size % self.heads:
            raise ThinkscaleError(
                f"--hidden-size {self.hidden_size} is not a multiple of --heads {self.heads}"
            )
        if self.prefix_unit not in ("thought", "token"):
            raise ThinkscaleError(f"--prefix-unit must be thought or token, got '{self.prefix_unit}'")
        if not 0 <= self.prefix_prob <= 1:
            raise ThinkscaleError(f"--prefix-prob must be in [0, 1], got {self.prefix_prob}")


class DotDataset(torch.utils.data.Dataset):
    """Token ids of (source, target) pairs; the target ends with EOS."""

    def __init__(self, examples: list[DotExample], tokenizer, max_length: int):
        self.rows, self.dropped = [], 0
        sep = separator_id(tokenizer, examples[0].sep) if examples else -1
        for ex in examples:
            src = encode(tokenizer, source_text(ex.question))
            tgt = encode(tokenizer, ex.target()) + [tokenizer.eos_token_id]
            if len(src) + len(tgt) > max_length:
                self.dropped += 1
                continue
            # where a thought ends (index into tgt, exclusive): DoT-MP's pass boundaries
            cuts = [i + 1 for i, t in enumerate(tgt) if t == sep]
            self.rows.append({"src": src, "tgt": tgt, "cuts": cuts})
        if not self.rows:
            raise ThinkscaleError(f"every example is longer than --max-length {max_length}")
        self.gen_length = max(len(r["tgt"]) for r in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


class DiffusionCollator:
    """Pads a batch: left-pads sources, EOS-pads targets to `gen_length`. Deterministic: the
    noise is drawn later, in the loss (see `add_noise`), because on resume HF's Trainer collates
    the first batch before it restores the RNG state, and noise drawn here would differ."""

    def __init__(self, tokenizer, gen_length: int):
        self.pad, self.eos = tokenizer.pad_token_id, tokenizer.eos_token_id
        self.gen_length = gen_length

    def __call__(self, rows: list[dict]) -> dict:
        n, src_len = len(rows), max(len(r["src"]) for r in rows)
        length = src_len + self.gen_length
        ids = torch.full((n, length), self.pad, dtype=torch.long)
        key_mask = torch.zeros((n, length), dtype=torch.bool)
        # thought boundaries as absolute positions; -1 pads rows with fewer thoughts
        cuts = torch.full((n, max(1, max(len(r["cuts"]) for r in rows))), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            s = len(r["src"])
            ids[i, src_len - s : src_len] = torch.tensor(r["src"])
            tgt = r["tgt"] + [self.eos] * (self.gen_length - len(r["tgt"]))
            ids[i, src_len:] = torch.tensor(tgt)
            key_mask[i, src_len - s :] = True
            if r["cuts"]:
                cuts[i, : len(r["cuts"])] = src_len + torch.tensor(r["cuts"])
        ends = torch.tensor([src_len + len(r["tgt"]) for r in rows])  # where each real target ends
        return {"input_ids": ids, "key_mask": key_mask, "labels": ids.clone(), "cuts": cuts,
                "src_len": torch.full((n,), src_len), "tgt_end": ends}  # fmt: skip


def add_noise(batch: dict, mask_id: int, prefix_prob: float = 0.0, eps: float = 1e-3,
              prefix_unit: str = "thought") -> dict:  # fmt: skip
    """Masks target tokens with probability t, t spread evenly over (eps, 1] across the batch
    from one uniform offset (low-discrepancy). With `prefix_prob`, a row keeps its first k
    thoughts clean (k uniform over its thoughts), or with `prefix_unit="token"` its first k
    target tokens (k uniform over the target: the state semi-autoregressive, block-wise sampling
    denoises from, mid-thought included). The question is never masked (fix_src)."""
    ids, cuts = batch["labels"], batch["cuts"]
    n, length = ids.shape
    device = ids.device
    start = batch["src_len"].to(device).clone()
    if prefix_prob:
        if prefix_unit == "token":
            span = (batch["tgt_end"].to(device) - start).clamp(min=1)
            cut = start + (torch.rand(n, device=device) * span).long()
            use = torch.rand(n, device=device) < prefix_prob
        else:
            has = (cuts >= 0).sum(-1)
            pick = (torch.rand(n, device=device) * has.clamp(min=1)).long()
            cut = cuts.gather(1, pick[:, None]).squeeze(1)
            use = (torch.rand(n, device=device) < prefix_prob) & (has > 0)
        start = torch.where(use, cut, start)
    noisable = torch.arange(length, device=device)[None, :] >= start[:, None]
    t = (torch.rand((), device=device) + torch.arange(n, device=device) / n) % 1.0
    t = eps + (1 - eps) * t
    masked = (torch.rand(n, length, device=device) < t[:, None]) & noisable
    return {"input_ids": ids.masked_fill(masked, mask_id), "key_mask": batch["key_mask"], "labels": ids,
            "masked": masked, "t": t, "target_tokens": noisable.sum(-1)}  # fmt: skip


class CausalCollator:
    """The AR baseline's batches: source then target then EOS, right-padded; loss on the target."""

    def __init__(self, tokenizer):
        self.pad = tokenizer.pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        length = max(len(r["src"]) + len(r["tgt"]) for r in rows)
        ids = torch.full((len(rows), length), self.pad, dtype=torch.long)
        labels = torch.full_like(ids, -100)
        attn = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            seq = r["src"] + r["tgt"]
            ids[i, : len(seq)] = torch.tensor(seq)
            labels[i, len(r["src"]) : len(seq)] = torch.tensor(r["tgt"])
            attn[i, : len(seq)] = 1
        return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def diffusion_loss(model, batch: dict, weighting: str = "uniform") -> torch.Tensor:
    """Cross-entropy on the masked tokens. `elbo`: weighted by 1/t, per target token (the MDLM /
    LLaDA bound). `uniform`: the mean over masked tokens; on 4x4 multiplication it reaches a
    higher token accuracy at the same compute (0.57 vs 0.45 after 530 steps), because rows with
    t near 0 no longer carry weights near 1/eps (a high-variance gradient)."""
    logits = denoise_logits(model, batch["input_ids"], batch["key_mask"])
    masked = batch["masked"]
    if not masked.any():
        return logits.sum() * 0.0
    ce = torch.nn.functional.cross_entropy(logits[masked].float(), batch["labels"][masked], reduction="none")
    if weighting == "uniform":
        return ce.mean()
    weight = (1.0 / batch["t"])[:, None].expand_as(masked)[masked]
    return (ce * weight).sum() / batch["target_tokens"].sum().clamp(min=1)


def _trainer_class(mask_id: int, prefix_prob: float, weighting: str, prefix_unit: str = "thought"):
    from transformers import Trainer

    class DiffusionTrainer(Trainer):
        """HF's Trainer with the masked-diffusion loss; everything else is the Trainer's."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = diffusion_loss(model, add_noise(inputs, mask_id, prefix_prob, prefix_unit=prefix_unit), weighting)
            return (loss, None) if return_outputs else loss

    return DiffusionTrainer


def tokenizer_kind(cfg: DotTrainConfig) -> str:
    if cfg.tokenizer != "auto":
        return cfg.tokenizer
    return "bpe" if cfg.task == "gsm8k" or cfg.data else "word"


def build(cfg: DotTrainConfig, examples: list[DotExample]):
    """(model, tokenizer): from scratch with a tokenizer fitted to the data, or from `init`."""
    if cfg.init:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from thinkscale.models import resolve_model_path

        path = resolve_model_path(cfg.init)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        add_dot_tokens(tokenizer)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
        model.resize_token_embeddings(len(tokenizer))
        return model, tokenizer
    texts = [t for ex in examples for t in (source_text(ex.question), ex.target())]
    tokenizer = build_tokenizer(tokenizer_kind(cfg), texts, cfg.vocab_size)
    torch.manual_seed(cfg.seed)
    model = new_backbone(len(tokenizer), cfg.hidden_size, cfg.layers, cfg.heads,
                         cfg.intermediate_size, cfg.max_length, tokenizer)  # fmt: skip
    return model, tokenizer


def _check_out_dir(out: Path, cfg: DotTrainConfig) -> str | None:
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("resume", "threads")}
    return check_run_dir(out, RUN_FILE, settings, cfg.resume, "DoT")


def measure_step_seconds(model, collate, dataset, batch_size: int, loss_fn, steps: int = 3) -> float:
    """Seconds per optimizer step on this machine (forward, backward, AdamW), after a warm-up."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)
    model.train()
    times = []
    for i in range(steps + 1):
        batch = collate([dataset[j % len(dataset)] for j in range(i * batch_size, (i + 1) * batch_size)])
        start = time.perf_counter()
        loss_fn(model, batch).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    model.load_state_dict(state)
    return sum(times[1:]) / steps


def _ar_loss(model, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def train_dot(cfg: DotTrainConfig, examples: list[DotExample] | None = None, callbacks: list | None = None) -> Path:
    """Train and write a checkpoint (safetensors, tokenizer, dot.json) to cfg.out. `examples`
    replaces the task's training data; `callbacks` are extra TrainerCallbacks."""
    from transformers import TrainerCallback, TrainingArguments

    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    resume_from = _check_out_dir(out, cfg)
    if examples is None and cfg.data:
        examples = trace_examples(cfg.data)
    elif examples is None:
        examples = load_task(cfg.task, "train", cfg.train_size, seed=cfg.seed)
    model, tokenizer = build(cfg, examples)
    dataset = DotDataset(examples, tokenizer, cfg.max_length)
    if dataset.dropped:
        print(f"{dataset.dropped}/{len(examples)} examples are longer than --max-length {cfg.max_length}: dropped")
    if cfg.objective == "diffusion":
        collate = DiffusionCollator(tokenizer, dataset.gen_length)
        trainer_cls = _trainer_class(tokenizer.mask_token_id, cfg.prefix_prob, cfg.weighting, cfg.prefix_unit)

        def loss_fn(model, batch):
            noisy = add_noise(batch, tokenizer.mask_token_id, cfg.prefix_prob, prefix_unit=cfg.prefix_unit)
            return diffusion_loss(model, noisy, cfg.weighting)
    else:
        from transformers import Trainer

        collate, trainer_cls, loss_fn = CausalCollator(tokenizer), Trainer, _ar_loss
    params = sum(p.numel() for p in model.parameters())
    max_steps = cfg.max_steps
    if cfg.resume:
        max_steps = json.loads((out / RUN_FILE).read_text())["max_steps"]
    elif cfg.train_seconds:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16 and not torch.cuda.is_available()):
            step = measure_step_seconds(model, collate, dataset, cfg.batch_size, loss_fn)
        max_steps = max(1, int(cfg.train_seconds / step))
        print(f"{step:.2f} s per step measured: {max_steps} steps fit in {cfg.train_seconds:.0f} s")
    print(f"{cfg.objective} model: {params / 1e6:.2f}M parameters, vocab {len(tokenizer)}, "
          f"{len(dataset)} examples, target length {dataset.gen_length}, {max_steps} steps × {cfg.batch_size}")  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        run = {"config": {k: v for k, v in asdict(cfg).items() if k not in ("resume", "threads")},
               "max_steps": max_steps}  # fmt: skip
        (out / RUN_FILE).write_text(json.dumps(run, indent=2))

    class Clock(TrainerCallback):
        """Seconds spent in training steps, carried in each checkpoint so a resumed run reports
        the whole run's time, not just the part after the crash."""

        seconds = _clock_at(resume_from)

        def on_step_begin(self, args, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            Clock.seconds += time.perf_counter() - self._t

        def on_save(self, args, state, control, **kw):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            (ckpt / CLOCK_FILE).write_text(json.dumps({"seconds": Clock.seconds}))

    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        max_steps=max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=math.ceil(cfg.warmup * max_steps),
        weight_decay=cfg.weight_decay,
        adam_beta2=0.98,
        max_grad_norm=1.0,
        save_steps=cfg.save_steps,
        save_total_limit=2,  # resume needs the newest; the one before it covers a crash while writing
        logging_steps=cfg.logging_steps,
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        bf16=cfg.bf16,
        disable_tqdm=False,
    )
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, data_collator=collate,
                          processing_class=tokenizer, callbacks=[Clock(), *(callbacks or [])])  # fmt: skip
    if resume_from:
        print(f"resuming from {resume_from} (optimizer, scheduler, RNG and data order restored)")
    trainer.train(resume_from_checkpoint=resume_from)
    meta = DotMeta(cfg.objective, "traces" if cfg.data else cfg.task, dataset.gen_length, examples[0].sep,
                   round(Clock.seconds, 1), max_steps)  # fmt: skip
    save_final(trainer, tokenizer, out, extra=lambda tmp: save_meta(tmp, meta))
    return out


def _clock_at(checkpoint: str | None) -> float:
    if checkpoint is None:
        return 0.0
    path = Path(checkpoint) / CLOCK_FILE
    if not path.exists():
        print(f"{checkpoint}: no {CLOCK_FILE} (older checkpoint); train_seconds counts from the resume")
        return 0.0
    return json.loads(path.read_text())["seconds"]
