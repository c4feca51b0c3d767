"""`thinkscale train grpo`: reinforcement learning with verifiable rewards on TRL's GRPOTrainer,
and Thinkless' decoupled GRPO (`--objective degrpo`) that teaches a hybrid model when to think.

The loop is TRL's: it samples `num_generations` completions per prompt (in process with the
model's own `generate` on CPU, or vLLM with `--use-vllm` where it runs; on vLLM's CPU backend
its weight sync goes through vLLM's reload, see `sync_by_reload`), scores them with the
reward below, and optimizes. thinkscale adds:
- prompts rendered by the format (s1: the prompt ends with the think delimiter; hybrid: at the
  assistant header, so the model writes its control token);
- one reward: the completion (decoded from its token ids, special tokens kept) is split by the
  format, the answer extracted and graded by the task's own grader (math-verify, numeric, ...).
  Correct: `reward_correct` (hybrid: `reward_short` or `reward_think` by the mode it chose), wrong:
  `reward_wrong`, malformed (thinking never ended, or a hybrid turn without a control token):
  `reward_malformed`; with `short_max_tokens`, a short-mode response over that length is
  malformed too (closes a reward hack: the column trace written after `<short>`). Logged each
  step: accuracy, malformed share, think share, overlong short share and accuracy per mode;
- `--objective degrpo` (`losses.degrpo_loss`): a subclass that changes one method, the loss;
  advantages are reward - group mean (TRL's `scale_rewards="none"`), groups with equal rewards
  dropped;
- the run-directory rules of `train sft` (resume only the same run) and a normal HF checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, option
from thinkscale.formats import FORMATS, get_format
from thinkscale.infer.generate import TaskSource, load_examples
from thinkscale.run_dirs import check_run_dir, latest_checkpoint, save_final
from thinkscale.train.trainer import TrainingConfig, launch_info, trainer_class

RUN_FILE = "thinkscale_grpo.json"
OBJECTIVES = ("grpo", "degrpo")


@dataclass
class GRPORunConfig(TaskSource, TrainingConfig):
    """The questions (`TaskSource`, as `generate`), the training settings (`TrainingConfig`), and
    GRPO's own; defaults follow Thinkless (lr 1e-6, 8 samples at temperature 0.6, alpha 0.001,
    rewards 1.0 / 0.5 / -1). CLI flags mirror these fields."""

    out: str = "runs/grpo"
    format: str = option("s1", choices=tuple(FORMATS), help="think/answer template of the prompts and rewards")
    objective: str = option("grpo", choices=OBJECTIVES,
                            help="grpo: TRL's loss (--loss-type); degrpo: Thinkless' decoupled GRPO "
                            "(--format hybrid): the control token's term weighted by --control-alpha")  # fmt: skip
    learning_rate: float = 1e-6
    epochs: float = 1.0
    batch_size: int = 16  # completions per optimizer step: batch_size / num_generations prompts
    num_generations: int = option(8, help="completions sampled per prompt (a group)")
    max_completion_length: int = option(256, help="tokens a sampled completion may take (thinking + answer)")
    temperature: float = option(0.6, help="sampling temperature of the completions")
    top_p: float = option(1.0)
    beta: float = option(0.0, help="KL coefficient against the starting model (0: no reference model)")
    epsilon: float = option(0.2, help="clipping range of the policy ratio")
    loss_type: str = option("dapo", help="--objective grpo: TRL's loss_type (grpo, dapo, dr_grpo, bnpo, ...)")
    scale_rewards: str = option("group", choices=("group", "batch", "none"),
                                help="--objective grpo: divide advantages by the group's (or batch's) reward "
                                "std; degrpo never does")  # fmt: skip
    control_alpha: float = option(0.001, help="degrpo: weight of the control token's term")
    reward_correct: float = option(1.0, help="a correct answer (s1 / r1 / plain)")
    reward_short: float = option(1.0, help="hybrid: a correct answer in short mode")
    reward_think: float = option(0.5, help="hybrid: a correct answer in think mode (Thinkless: raise it to "
                                 "0.7-0.8 if the policy collapses to short)")  # fmt: skip
    reward_wrong: float | None = option(None, help="a wrong answer (default: -1 for hybrid, 0 otherwise)")
    reward_malformed: float | None = option(None, help="thinking never ended / no control token "
                                            "(default: --reward-wrong)")  # fmt: skip
    short_max_tokens: int | None = option(None, help="hybrid: a short-mode response longer than this many "
                                          "tokens is malformed, so a think-length answer after <short> cannot "
                                          "earn --reward-short (default: no bound)")  # fmt: skip
    use_vllm: bool = option(False, help="generate with vLLM (colocated, TRL's vllm_mode) instead of the "
                            "model's own generate (the CPU path)")  # fmt: skip

    def validate(self, processes: int = 1, launched: bool = False, source: bool = True) -> None:
        if source:
            self.check_source()
        fmt = get_format(self.format)
        self.check_training(processes, launched, command="grpo")
        check_at_least(self, 2, "num_generations")
        check_at_least(self, 1, "max_completion_length")
        if self.objective not in OBJECTIVES:
            raise ThinkscaleError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.objective == "degrpo" and not fmt.hybrid:
            raise ThinkscaleError("--objective degrpo decouples the control token (<think>/<short>) from the "
                                  f"response: it needs --format hybrid, not {self.format}")  # fmt: skip
        if self.batch_size % self.num_generations:
            raise ThinkscaleError(f"--batch-size {self.batch_size} (completions per step) must be a multiple of "
                                  f"--num-generations {self.num_generations}")  # fmt: skip
        if self.objective == "degrpo" and (self.batch_size // processes) % self.num_generations:
            raise ThinkscaleError(f"--objective degrpo needs whole groups on each process: --batch-size / "
                                  f"{processes} processes must be a multiple of --num-generations")  # fmt: skip
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ThinkscaleError("--temperature must be > 0 (GRPO samples) and --top-p in (0, 1]")
        check_at_least(self, 0, "control_alpha", "beta", "epsilon")
        if self.short_max_tokens is not None:
            check_at_least(self, 1, "short_max_tokens")
            if not fmt.hybrid:
                raise ThinkscaleError(f"--short-max-tokens bounds hybrid short-mode answers: it needs --format "
                                      f"hybrid, not {self.format}")  # fmt: skip

    def rewards(self) -> dict[str, float]:
        hybrid = get_format(self.format).hybrid
        wrong = self.reward_wrong if self.reward_wrong is not None else (-1.0 if hybrid else 0.0)
        return {"correct": self.reward_correct, "short": self.reward_short, "think": self.reward_think,
                "wrong": wrong, "malformed": self.reward_malformed if self.reward_malformed is not None else wrong}  # fmt: skip


def completion_mode(ids: list[int], controls: dict[int, str]) -> str | None:
    """A hybrid completion's mode from its first token (None: the format has no modes)."""
    if not controls:
        return None
    return controls.get(ids[0], "none") if ids else "none"


class Rewards:
    """The reward TRL calls with each batch of completions: graded by the task, per the format.
    Reads the dataset's `index` column to find each completion's example."""

    __name__ = "thinkscale_reward"

    def __init__(self, task, examples, fmt, tokenizer, rewards: dict[str, float], pool=None,
                 short_max_tokens: int | None = None):  # fmt: skip
        from thinkscale.tasks.grading import GradingPool

        self.task, self.examples, self.fmt, self.tokenizer, self.values = task, examples, fmt, tokenizer, rewards
        self.short_max_tokens = short_max_tokens
        from thinkscale.infer.forcing import ForcingTokens

        self.pool = pool or GradingPool(workers=1)
        tokens = ForcingTokens.from_tokenizer(tokenizer, fmt)  # the engine's stop and control ids
        self.stop, self.controls = tokens.stop, dict(tokens.controls)

    def judge(self, completion_ids: list[list[int]], index: list[int]) -> list[dict]:
        """Per completion: mode, malformed, pred, correct."""
        out, todo = [], []
        for ids, i in zip(completion_ids, index):
            ids = list(ids)
            cut = next((k for k, t in enumerate(ids) if t in self.stop), len(ids))
            text = self.tokenizer.decode(ids[:cut], skip_special_tokens=False)
            mode = completion_mode(ids, self.controls)
            thinking, answer = self.fmt.split(text, mode)
            ended = not self.fmt.thinks or mode == "short" or self.fmt.think_end in text
            overlong = mode == "short" and self.short_max_tokens is not None and cut - 1 > self.short_max_tokens
            malformed = mode == "none" or not ended or not answer or overlong
            ex = self.examples[i]
            pred = None if malformed else self.task.extract(answer, ex)
            out.append({"mode": mode, "malformed": malformed, "overlong": overlong, "pred": pred, "correct": False})
            if pred is not None:
                todo.append((out[-1], ex))
        verdicts = self.pool.grade([(self.task.grader, j["pred"], ex.gold) for j, ex in todo])
        for (j, _), ok in zip(todo, verdicts):
            j["correct"] = bool(ok)
        return out

    def reward(self, j: dict) -> float:
        v = self.values
        if j["malformed"]:
            return v["malformed"]
        if not j["correct"]:
            return v["wrong"]
        return v[j["mode"]] if j["mode"] in ("think", "short") else v["correct"]

    def __call__(self, prompts=None, completions=None, completion_ids=None, index=None, log_metric=None,
                 **_) -> list[float]:  # fmt: skip
        judged = self.judge(completion_ids, index)
        if log_metric is not None:
            for name, value in batch_stats(judged).items():
                log_metric(name, value)
        return [self.reward(j) for j in judged]


def batch_stats(judged: list[dict]) -> dict[str, float]:
    """What each step logs: accuracy, malformed share, and for a hybrid model the think share and
    the accuracy per mode (Thinkless' mode-collapse watch)."""
    n = max(len(judged), 1)
    stats = {"accuracy": sum(j["correct"] for j in judged) / n, "malformed": sum(j["malformed"] for j in judged) / n}
    if any(j["mode"] is not None for j in judged):
        stats["think_share"] = sum(j["mode"] == "think" for j in judged) / n
        stats["short_overlong"] = sum(j["overlong"] for j in judged) / n
        for mode in ("think", "short"):
            js = [j for j in judged if j["mode"] == mode]
            if js:
                stats[f"accuracy_{mode}"] = sum(j["correct"] for j in js) / len(js)
    return stats


def sync_by_reload(generation) -> bool:
    """On vLLM's CPU backend, TRL's colocated weight sync goes through vLLM's in-place reload;
    returns whether it was switched.

    That backend packs every linear's weight for oneDNN and leaves an empty parameter behind, so
    TRL's sync (`model.load_weights` into those parameters) fails on the first step with
    "'Parameter' object has no attribute 'weight_loader'". `reload_weights` (the model runner's)
    restores the checkpoint-format parameters, loads, and packs again. GPUs keep TRL's path."""
    from vllm.platforms import current_platform

    if generation.mode != "colocate" or not current_platform.is_cpu():
        return False
    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner

    def sync_weights() -> None:
        runner.reload_weights(weights_iterator=generation._iter_named_params())
        generation.llm.reset_prefix_cache()

    generation.sync_weights = sync_weights
    return True


def grpo_trainer_class(objective: str, alpha: float):
    """TRL's GRPOTrainer with thinkscale's fixes and its sampling timed; for degrpo, its loss
    replaced (one method) and the equal-reward groups marked (where the whole group is in view)."""
    from trl import GRPOTrainer

    class Trainer(trainer_class(GRPOTrainer)):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.use_vllm:
                sync_by_reload(self.vllm_generation)

        def _generate(self, prompts):
            """Sampling, timed: each step logs `generate_seconds` beside TRL's `step_time`."""
            start = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                self._log_metric("generate_seconds", time.perf_counter() - start)

    if objective != "degrpo":
        return Trainer

    class DeGRPOTrainer(Trainer):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            a = out["advantages"]  # reward - group mean, groups consecutive: std-free, so all 0 <=> equal rewards
            groups = a.view(-1, self.num_generations)
            out["group_live"] = (groups.abs().sum(1) > 0).repeat_interleave(self.num_generations).to(a.dtype)
            return out

        def _compute_loss(self, model, inputs):
            import torch

            from thinkscale.train.losses import degrpo_loss

            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
            attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            logps, _, _ = self._get_per_token_logps_and_entropies(
                model, ids, attn, inputs["completion_ids"].size(1), compute_entropy=False
            )
            old = inputs.get("old_per_token_logps")
            loss, stats = degrpo_loss(
                logps, logps.detach() if old is None else old, inputs["advantages"], inputs["completion_mask"],
                inputs.get("group_live"), alpha, self.epsilon_low, self.epsilon_high, self.beta,
                inputs.get("ref_per_token_logps"),
            )  # fmt: skip
            if self.model.training:
                for name, value in stats.items():
                    self._log_metric(name, value)
                loss = loss / self.current_gradient_accumulation_steps
            return loss

    return DeGRPOTrainer


def train_grpo(cfg: GRPORunConfig, model=None, tokenizer=None, task=None) -> Path:
    """Run GRPO / DeGRPO and write a normal HF checkpoint to cfg.out; `model` and `tokenizer`:
    objects already in memory instead of `cfg.model`, `task`: a Task instead of cfg's task/data
    (the Python API, tests)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig

    from thinkscale.models import check_format_tokens, load_tokenizer, resolve_model_path

    processes, launched, main_process = launch_info()
    cfg.validate(processes, launched, source=task is None)
    task = task or cfg.build_task()
    examples = load_examples(task, cfg.limit)
    missing = [ex.id for ex in examples if ex.gold is None]
    if missing:
        raise ThinkscaleError(f"task '{task.name}': {len(missing)} question(s) without a gold answer (first: "
                              f"'{missing[0]}'); GRPO's reward grades answers against it")  # fmt: skip
    path = resolve_model_path(cfg.model) if model is None else cfg.model
    tokenizer = tokenizer or load_tokenizer(path)
    fmt = get_format(cfg.format)
    if fmt.hybrid:
        check_format_tokens(tokenizer, fmt.added_tokens, path)
    out = Path(cfg.out)
    settings = {k: v for k, v in asdict(cfg).items() if k != "resume"}
    resume_from = (check_run_dir(out, RUN_FILE, settings, cfg.resume, "thinkscale GRPO") if main_process
                   else latest_checkpoint(out) if cfg.resume else None)  # fmt: skip
    rows = [{"prompt": fmt.render_prompt(tokenizer, task.prompt(ex)), "index": i} for i, ex in enumerate(examples)]
    if model is None:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume and main_process:
        (out / RUN_FILE).write_text(json.dumps({"config": settings, "questions": len(rows)}, indent=2))
    degrpo = cfg.objective == "degrpo"
    args = GRPOConfig(
        **cfg.training_args(processes),
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        loss_type=cfg.loss_type,
        scale_rewards="none" if degrpo else cfg.scale_rewards,
        use_vllm=cfg.use_vllm,
        vllm_mode="colocate",
        log_completions=False,
    )
    rewards = Rewards(task, examples, fmt, tokenizer, cfg.rewards(), short_max_tokens=cfg.short_max_tokens)
    if cfg.use_vllm:  # TRL builds its own engine: not with a dropped one still to be finalized
        from thinkscale.infer.vllm_engine import finalize_dropped_engines

        finalize_dropped_engines()
    try:
        trainer = grpo_trainer_class(cfg.objective, cfg.control_alpha)(
            model=model, reward_funcs=rewards, args=args, train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )  # fmt: skip
        if resume_from:
            print(f"resuming from {resume_from}")
        trainer.train(resume_from_checkpoint=resume_from)
        save_final(trainer, tokenizer, out, main_process)
    finally:
        rewards.pool.close()
    return out
