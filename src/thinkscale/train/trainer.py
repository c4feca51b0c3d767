"""What every trainer of thinkscale shares (`train sft`, `train grpo`): the training settings
(run directory, model, optimizer and schedule, checkpoints, FSDP) as one config dataclass whose
fields become the flags of each command, the TrainingArguments they turn into, and one Trainer
subclass with thinkscale's fixes, applied to TRL's SFTTrainer and GRPOTrainer alike."""

from __future__ import annotations

import os
from dataclasses import dataclass

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, flag_name
from thinkscale.models import DEFAULT_MODEL


@dataclass
class TrainingConfig:
    """Defaults follow s1 (lr 1e-5 cosine to 0, 5% warmup, AdamW 0.9/0.95, wd 1e-4, 5 epochs,
    effective batch 16). CLI flags mirror these fields."""

    out: str = "runs/train"
    model: str = DEFAULT_MODEL
    learning_rate: float = 1e-5
    epochs: float = 5.0
    max_steps: int = -1  # > 0 overrides epochs (smoke runs)
    batch_size: int = 16  # effective batch over all processes (micro_batch_size x processes x accumulation)
    micro_batch_size: int = 4
    warmup: float = 0.05  # a ratio of the steps
    weight_decay: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    save_steps: int = 100
    save_total_limit: int = 2  # checkpoints kept, the newest (a 135M one is ~1.6 GB with Adam's state); 0: none, no resume
    logging_steps: int = 10
    report_to: str = "none"  # none | tensorboard | wandb
    seed: int = 0
    bf16: bool | None = None  # None: bf16 on a CUDA device that supports it, fp32 elsewhere
    resume: bool = False  # continue the run in `out` from its latest checkpoint
    fsdp: bool = False  # FSDP2 (full shard per decoder layer) across the launched processes
    fsdp_state_dict: str = "SHARDED_STATE_DICT"  # checkpoints: one shard per rank (merge them), or FULL_STATE_DICT

    def check_training(self, processes: int = 1, launched: bool = False, command: str = "sft") -> None:
        """`launched`: under torchrun / accelerate launch (a process group), which FSDP needs."""
        if self.fsdp and not launched:
            raise ThinkscaleError(
                f"--fsdp shards across launched processes: run it under `torchrun --nproc_per_node N -m "
                f"thinkscale.train {command} ...` or `accelerate launch --config_file configs/accelerate/... "
                f"-m thinkscale.train {command} ...`"
            )
        check_at_least(self, 1, "batch_size", "micro_batch_size", "save_steps", "logging_steps")
        check_at_least(self, 0, "weight_decay", "save_total_limit")
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

    def training_args(self, processes: int = 1) -> dict:
        """The TrainingArguments these settings mean (TRL's SFTConfig and GRPOConfig take them)."""
        import torch

        bf16 = self.bf16 if self.bf16 is not None else bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return dict(
            output_dir=os.path.join(self.out, "checkpoints"),
            learning_rate=self.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=self.warmup,  # TRL 1.x: a float below 1 is a ratio
            weight_decay=self.weight_decay,
            adam_beta1=self.adam_beta1,
            adam_beta2=self.adam_beta2,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.micro_batch_size,
            gradient_accumulation_steps=self.batch_size // (self.micro_batch_size * processes),
            gradient_checkpointing=False,  # TRL defaults it on; on CPU it only costs time
            bf16=bf16,
            save_strategy="steps" if self.save_total_limit else "no",
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit or None,
            logging_steps=self.logging_steps,
            report_to=[] if self.report_to == "none" else [self.report_to],
            seed=self.seed,
            use_cpu=not torch.cuda.is_available(),
            **_fsdp_args(self),
        )


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


def launch_info() -> tuple[int, bool, bool]:
    """(processes, launched, main process): set by torchrun / accelerate launch."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    return processes, "WORLD_SIZE" in os.environ, int(os.environ.get("RANK", "0")) == 0


def _fsdp_args(cfg: TrainingConfig) -> dict:
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


def trainer_class(base):
    """`base` (TRL's SFTTrainer or GRPOTrainer) with thinkscale's fixes. accelerate 1.15 turns on
    FSDP only for accelerator device types (MULTI_GPU, MULTI_XPU, ...) and silently drops the FSDP
    plugin for MULTI_CPU (gloo), wrapping the model in DDP instead. torch's FSDP2 runs on CPU, so the
    state is promoted to FSDP there: the same code path a GPU run takes, testable on a laptop. And
    hybrid pairs (`pair_groups`) are shuffled as units."""

    class Trainer(base):
        pair_groups: list[list[int]] | None = None  # hybrid pairs: shuffled as units

        def _get_train_sampler(self, train_dataset=None):
            if self.pair_groups is None or train_dataset not in (None, self.train_dataset):
                return super()._get_train_sampler(train_dataset)
            return PairedSampler(self.pair_groups, self.args.seed)

        def create_accelerator_and_postprocess(self) -> None:
            super().create_accelerator_and_postprocess()
            self._promote_fsdp()

        def _prepare_for_training(self, *args, **kwargs):
            # again right before the model is wrapped: TRL's GRPOTrainer touches the shared
            # distributed state after __init__, which sets MULTI_CPU back (the model came out DDP)
            self._promote_fsdp()
            return super()._prepare_for_training(*args, **kwargs)

        def _promote_fsdp(self) -> None:
            from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

            wants_fsdp = self.args.fsdp_plugin_args is not None or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
            state = self.accelerator.state
            if wants_fsdp and state.distributed_type == DistributedType.MULTI_CPU:
                if getattr(state, "fsdp_plugin", None) is None:
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
