"""`thinkscale train sft`: completion-only SFT on think/answer traces with TRL's SFTTrainer.

Traces become TRL prompt-completion conversational rows: the prompt is the user turn, the
completion is the assistant turn laid out by the chosen format (s1: `<|im_start|>think\\n...
<|im_start|>answer\\nAnswer: ...`), so the loss covers the think delimiter through the end-of-turn
token and nothing of the prompt. Before training, the share of samples longer than `max_length`
is reported: s1's ablation found that truncating most samples lengthened test-time thinking and
cost accuracy, so a high share is refused unless `allow_truncation` is set.

`--format hybrid` (Thinkless' warm-up, Reasoning-SFT): the control tokens `<think>`, `</think>`,
`<short>` are added to the tokenizer as ordinary tokens and their embedding rows start as the
mean embedding (`models.init_new_embeddings`); the chat template is checked not to pre-fill a mode
nor strip thinking (else replaced, `formats.check_hybrid_template`); the control token is the
first completion token, so it is inside the loss; the two rows of a pair (`data hybrid`) stay
adjacent when the data is shuffled (`PairedSampler`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, check_between, flag_name
from thinkscale.data.traces import TraceFields, load_traces
from thinkscale.formats import check_hybrid_template, get_format
from thinkscale.models import DEFAULT_MODEL, add_format_tokens, init_new_embeddings
from thinkscale.run_dirs import check_run_dir, latest_checkpoint, save_final

RUN_FILE = "thinkscale_sft.json"


@dataclass
class SFTRunConfig:
    """Defaults follow s1 (lr 1e-5 cosine to 0, 5% warmup, AdamW 0.9/0.95, wd 1e-4, 5 epochs,
    effective batch 16), except `max_length`, sized for a CPU. CLI flags mirror these fields."""

    data: str = "arith"  # a traces file/dir or a built-in corpus: gsm8k-train, math-train, arith
    out: str = "runs/sft"
    format: str = "s1"
    model: str = DEFAULT_MODEL
    question_field: str = "question"
    thinking_field: str = "thinking"
    answer_field: str = "answer"
    id_field: str | None = "id"
    limit: int | None = None
    max_length: int = 1024
    allow_truncation: bool = False
    max_truncated_share: float = 0.05  # above this share, refuse unless allow_truncation
    learning_rate: float = 1e-5
    epochs: float = 5.0
    max_steps: int = -1  # > 0 overrides epochs (smoke runs)
    batch_size: int = 16  # effective batch over all processes (micro_batch_size x processes x accumulation)
    micro_batch_size: int = 4
    warmup: float = 0.05  # a ratio of the steps
    weight_decay: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    packing: bool = False
    save_steps: int = 100
    logging_steps: int = 10
    report_to: str = "none"  # none | tensorboard | wandb
    seed: int = 0
    bf16: bool | None = None  # None: bf16 on a CUDA device that supports it, fp32 elsewhere
    resume: bool = False  # continue the run in `out` from its latest checkpoint
    fsdp: bool = False  # FSDP2 (full shard per decoder layer) across the launched processes
    fsdp_state_dict: str = "SHARDED_STATE_DICT"  # checkpoints: one shard per rank (merge them), or FULL_STATE_DICT

    def validate(self, processes: int = 1, launched: bool = False) -> None:
        """`launched`: under torchrun / accelerate launch (a process group), which FSDP needs."""
        get_format(self.format)
        if self.fsdp and not launched:
            raise ThinkscaleError(
                "--fsdp shards across launched processes: run it under `torchrun --nproc_per_node N -m "
                "thinkscale.train sft ...` or `accelerate launch --config_file configs/accelerate/... "
                "-m thinkscale.train sft ...`"
            )
        check_at_least(self, 8, "max_length")
        check_at_least(self, 1, "batch_size", "micro_batch_size", "limit", "save_steps", "logging_steps")
        check_between(self, 0, 1, "max_truncated_share")
        check_at_least(self, 0, "weight_decay")
        for name in ("warmup", "adam_beta1", "adam_beta2"):  # warmup: TRL reads >= 1 as steps
            if not 0 <= getattr(self, name) < 1:
                raise ThinkscaleError(f"{flag_name(name)} must be in [0, 1), got {getattr(self, name)}")
        if self.batch_size % (self.micro_batch_size * processes):
            raise ThinkscaleError(
                f"--batch-size {self.batch_size} is not a multiple of --micro-batch-size {self.micro_batch_size}"
                + (f" x {processes} processes" if processes > 1 else "")
            )
        if self.learning_rate <= 0 or (self.max_steps <= 0 and self.epochs <= 0):
            raise ThinkscaleError("--learning-rate and --epochs (or --max-steps) must be positive")
        if self.fsdp_state_dict not in ("SHARDED_STATE_DICT", "FULL_STATE_DICT"):
            raise ThinkscaleError(
                f"--fsdp-state-dict must be SHARDED_STATE_DICT or FULL_STATE_DICT, got {self.fsdp_state_dict}"
            )
        if self.report_to not in ("none", "tensorboard", "wandb"):
            raise ThinkscaleError(
                f"--report-to must be none, tensorboard or wandb, got {self.report_to}"
            )


def to_conversations(traces: list[dict], fmt_name: str) -> list[dict]:
    """TRL prompt-completion conversational rows (a hybrid row's mode from its `mode` field)."""
    fmt = get_format(fmt_name)
    return [
        {
            "prompt": [{"role": "user", "content": t["question"]}],
            "completion": [{"role": "assistant",
                            "content": fmt.render_assistant(t["thinking"], t["answer"], t.get("mode"))}],
        }  # fmt: skip
        for t in traces
    ]


def pair_groups(traces: list[dict]) -> list[list[int]]:
    """Row indices grouped by `pair` (consecutive rows of one question); unpaired rows alone."""
    groups: list[list[int]] = []
    for i, t in enumerate(traces):
        pair = t.get("pair")
        if pair is not None and groups and traces[groups[-1][0]].get("pair") == pair:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class PairedSampler:
    """Shuffles groups, not rows: a hybrid pair's long and short rows stay adjacent (Thinkless'
    warm-up), so with an even micro-batch they are trained on together. Seeded per epoch, so a
    resumed run sees the order an uninterrupted one does."""

    def __init__(self, groups: list[list[int]], seed: int):
        self.groups, self.seed, self.epoch = groups, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(self.seed + self.epoch)
        for i in torch.randperm(len(self.groups), generator=g).tolist():
            yield from self.groups[i]

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)


def length_report(rows: list[dict], tokenizer, max_length: int) -> dict:
    """Token lengths of prompt and prompt+completion, and how many exceed max_length."""
    prompts, totals = [], []
    for r in rows:
        p = tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True)
        prompts.append(len(_ids(p)))
        totals.append(len(_ids(full)))
    over = [i for i, n in enumerate(totals) if n > max_length]
    return {
        "samples": len(rows),
        "over_max_length": len(over),
        "share_over": len(over) / len(rows),
        "prompts_over": sum(n >= max_length for n in prompts),
        "max_tokens": max(totals),
        "mean_tokens": sum(totals) / len(totals),
        "over_indices": over,
    }


def _ids(encoded) -> list[int]:
    return (
        encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    )


def _check_out_dir(out: Path, cfg: SFTRunConfig) -> str | None:
    settings = {k: v for k, v in asdict(cfg).items() if k != "resume"}
    return check_run_dir(out, RUN_FILE, settings, cfg.resume, "thinkscale SFT")


def prepare(cfg: SFTRunConfig, tokenizer) -> tuple[list[dict], dict]:
    """Load, render, measure; drop (fs1) or keep (--allow-truncation) samples over max_length.
    Each row keeps its trace's `pair` (hybrid pairs) under the key `_pair`."""
    fields = TraceFields(cfg.question_field, cfg.thinking_field, cfg.answer_field, cfg.id_field)
    traces = load_traces(cfg.data, fields, cfg.limit)
    rows = [{**row, "_pair": t.get("pair")} for row, t in zip(to_conversations(traces, cfg.format), traces)]
    try:
        report = length_report(rows, tokenizer, cfg.max_length)
    except Exception as e:  # a template that cannot render this format
        raise ThinkscaleError(
            f"the tokenizer's chat template cannot render format '{cfg.format}': {e}"
        ) from None
    if report["prompts_over"] == len(rows):
        raise ThinkscaleError(f"--max-length {cfg.max_length} is shorter than every prompt")
    msg = (f"{report['over_max_length']}/{report['samples']} samples ({100 * report['share_over']:.1f}%) are longer "
           f"than --max-length {cfg.max_length} (longest {report['max_tokens']} tokens)")  # fmt: skip
    print(msg)
    if cfg.allow_truncation:
        if report["over_max_length"]:
            print(
                "  --allow-truncation: they are kept and truncated (s1: truncation lengthens test-time thinking)"
            )
    else:
        if report["share_over"] > cfg.max_truncated_share:
            raise ThinkscaleError(
                msg
                + f"; above {100 * cfg.max_truncated_share:.0f}% truncation hurts (s1's ablation). Raise "
                "--max-length, or pass --allow-truncation"
            )
        over = set(report["over_indices"])
        rows = [r for i, r in enumerate(rows) if i not in over]
        if over:
            print(f"  dropped them (as fs1 does): {len(rows)} samples left")
    report.pop("over_indices")
    return rows, report


def train_sft(cfg: SFTRunConfig) -> Path:
    """Fine-tune and write a normal HF checkpoint (safetensors, tokenizer, chat template) to cfg.out."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from thinkscale.models import load_tokenizer, resolve_model_path

    processes = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun / accelerate launch
    cfg.validate(processes, launched="WORLD_SIZE" in os.environ)
    out = Path(cfg.out)
    main_process = (
        int(os.environ.get("RANK", "0")) == 0
    )  # under `accelerate launch`, one process decides
    resume_from = (
        _check_out_dir(out, cfg) if main_process else latest_checkpoint(out) if cfg.resume else None
    )
    path = resolve_model_path(cfg.model)
    tokenizer = load_tokenizer(path)
    fmt = get_format(cfg.format)
    added = add_format_tokens(tokenizer, fmt.added_tokens) if fmt.added_tokens else []
    if fmt.hybrid:
        note = check_hybrid_template(tokenizer, fmt)
        if note:
            print(note)
    rows, report = prepare(cfg, tokenizer)
    groups = pair_groups([{"pair": r.pop("_pair")} for r in rows])
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    if added:
        init_new_embeddings(model, tokenizer, added)
        print(f"added tokens {', '.join(added)} (embedding rows start as the mean embedding)")

    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume and main_process:
        run = {"config": {k: v for k, v in asdict(cfg).items() if k != "resume"}, "lengths": report}
        (out / RUN_FILE).write_text(json.dumps(run, indent=2))
    bf16 = (
        cfg.bf16
        if cfg.bf16 is not None
        else bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    )
    args = SFTConfig(
        output_dir=str(out / "checkpoints"),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup,  # TRL 1.x: a float below 1 is a ratio
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.batch_size // (cfg.micro_batch_size * processes),
        max_length=cfg.max_length,
        completion_only_loss=True,
        packing=cfg.packing,
        gradient_checkpointing=False,  # TRL defaults it on; on CPU it only costs time
        bf16=bf16,
        save_steps=cfg.save_steps,
        logging_steps=cfg.logging_steps,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
        **_fsdp_args(cfg),
    )
    trainer = _trainer_class(SFTTrainer)(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    if any(len(g) > 1 for g in groups) and not cfg.packing:
        trainer.pair_groups = groups
    if resume_from:
        print(f"resuming from {resume_from} (optimizer, scheduler, RNG and data order restored)")
    elif cfg.resume:
        print("no checkpoint yet: starting from the beginning")
    trainer.train(resume_from_checkpoint=resume_from)
    save_final(trainer, tokenizer, out, main_process)
    return out


def _fsdp_args(cfg: SFTRunConfig) -> dict:
    # no layer classes named: accelerate wraps the model's own `_no_split_modules` (its decoder
    # layers), as it does for a run launched with a config from configs/accelerate/
    if not cfg.fsdp:
        return {}
    return {
        "fsdp": "full_shard auto_wrap",
        "fsdp_config": {
            "version": 2,
            "state_dict_type": cfg.fsdp_state_dict,
            "reshard_after_forward": True,
        },
    }


def _trainer_class(base):
    """The Trainer with one fix: accelerate 1.15 turns on FSDP only for accelerator device types
    (MULTI_GPU, MULTI_XPU, ...) and silently drops the FSDP plugin for MULTI_CPU (gloo), wrapping the
    model in DDP instead. torch's FSDP2 runs on CPU, so the state is promoted to FSDP there: the same
    code path a GPU run takes, testable on a laptop."""

    class Trainer(base):
        pair_groups: list[list[int]] | None = None  # hybrid pairs: shuffled as units

        def _get_train_sampler(self, train_dataset=None):
            if self.pair_groups is None or train_dataset not in (None, self.train_dataset):
                return super()._get_train_sampler(train_dataset)
            return PairedSampler(self.pair_groups, self.args.seed)

        def create_accelerator_and_postprocess(self) -> None:
            from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

            wants_fsdp = self.args.fsdp_plugin_args is not None or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
            super().create_accelerator_and_postprocess()
            state = self.accelerator.state
            if wants_fsdp and state.distributed_type == DistributedType.MULTI_CPU:
                args = self.args.fsdp_plugin_args
                state.fsdp_plugin = FullyShardedDataParallelPlugin(**args) if args else FullyShardedDataParallelPlugin()
                state.distributed_type = DistributedType.FSDP
                self.is_fsdp_enabled = True

        def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
            # Sharded checkpoints stay sharded (fast, resumable); the final model, and every
            # checkpoint under FULL_STATE_DICT, is one normal HF checkpoint gathered from the shards.
            if not self.is_fsdp_enabled:
                return super().save_model(output_dir, _internal_call)
            full = "FULL" in str(self.accelerator.state.fsdp_plugin.state_dict_type)
            if _internal_call and not full:
                return super().save_model(output_dir, _internal_call)
            from torch.distributed.tensor import DTensor

            # every rank takes part in each gather (accelerate's get_state_dict hands back DTensors
            # under gloo, which save_pretrained cannot flatten)
            state_dict = {
                k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().cpu()
                for k, v in self.accelerator.get_state_dict(self.model).items()
            }
            if self.args.should_save:
                self._save(output_dir, state_dict=state_dict)

    return Trainer
