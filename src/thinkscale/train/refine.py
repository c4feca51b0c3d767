"""refine ("Rethinking Fine-Tuning when Scaling Test-Time Compute"): pass@N-aware SFT and the
sampling filter, as settings of `train sft` and a Trainer subclass (not a forked loop).

- `--objective pass-at-n`: each example's cross-entropy is scaled by F_N(p), detached
  (`losses.pass_at_n_loss`); p is the reference completion's probability under the current weights
  (`--p-source likelihood`, from the training forward itself: no extra pass) or the success rate
  p-hat of samples of the current weights (`--p-source sampled`).
- `--filter sampled`: on a sampling step, candidates are drawn from the data stream, each is sampled
  `--filter-samples` times at temperature 1 through thinkscale's own engine on the training model
  (in process: no second copy of the weights), graded with `--grader` against the trace's answer, and
  only those with p-hat < `--filter-threshold` are trained on; the batch is refilled from the stream.

Candidates come from a stream of the training set of its own (a seeded permutation per pass,
`CandidateStream`), whose cursor is saved beside each checkpoint (`refine_state.json`), so a resumed
run draws, samples (seeds are a function of the step and example) and trains what an uninterrupted
one does. The Trainer's own batches are still consumed on sampling steps, so its epoch bookkeeping
(and its skipping of trained batches on resume) is the one plain SFT has.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, flag_name, option
from thinkscale.train.losses import pass_at_n_loss

OBJECTIVES = ("ce", "pass-at-n")
P_SOURCES = ("likelihood", "sampled")
FILTERS = ("none", "sampled")
STATE_FILE = "refine_state.json"


@dataclass
class RefineConfig:
    """refine's settings of `train sft` (defaults: plain cross-entropy, no filter)."""

    objective: str = option("ce", choices=OBJECTIVES, help="ce: plain cross-entropy; pass-at-n: refine's "
                            "loss, each example's CE scaled by F_N(p) (gradient of -log pass@N)")  # fmt: skip
    pass_n: int = option(16, help="--objective pass-at-n: the N of pass@N (1 = plain CE)")
    p_source: str = option("likelihood", choices=P_SOURCES, help="--objective pass-at-n: p is the reference "
                           "completion's probability (likelihood) or the sampled success rate (sampled)")  # fmt: skip
    filter: str = option("none", choices=FILTERS, help="sampled: train only on examples the current model "
                         "solves in fewer than --filter-threshold of --filter-samples samples (refine's filter)")  # fmt: skip
    filter_samples: int = option(64, help="samples per candidate (temperature 1) for p-hat")
    filter_threshold: float = option(0.1, help="keep an example when p-hat < this")
    filter_every: int = option(1, help="sample every this many optimizer steps (other steps train unfiltered)")
    filter_warmup_steps: int = option(20, help="optimizer steps trained unfiltered before the filter starts")
    filter_budget: int = option(512, help="thinking-token cap of each sample")
    filter_max_answer_tokens: int = option(32, help="answer tokens of each sample")
    filter_max_candidates: int = option(0, help="candidates sampled per step at most (0: 4 x --batch-size); "
                                        "a step that finds fewer hard examples trains on those it found")  # fmt: skip
    filter_batch_size: int = option(64, help="rows the sampler decodes together")
    grader: str = option("math", help="how a sample's answer is compared with the trace's answer "
                         "(math, numeric, qa, choice)")  # fmt: skip

    @property
    def samples(self) -> bool:
        """Whether training samples the model (the filter, or p from samples)."""
        return self.filter == "sampled" or self.sampled_p

    @property
    def sampled_p(self) -> bool:
        """Whether the loss weighs examples by a sampled p-hat (every step then samples)."""
        return self.objective == "pass-at-n" and self.p_source == "sampled"

    def filter_step(self, step: int) -> bool:
        """Whether the filter picks the batch of this optimizer step."""
        if self.filter != "sampled" or step < self.filter_warmup_steps:
            return False
        return (step - self.filter_warmup_steps) % self.filter_every == 0

    def sampling_step(self, step: int) -> bool:
        """Whether this step's batch is sampled (the filter's steps; every step for sampled p)."""
        return self.filter_step(step) or self.sampled_p

    def check_refine(self, processes: int = 1) -> None:
        from thinkscale.tasks.grading import GRADERS

        check_at_least(self, 1, "pass_n", "filter_samples", "filter_every", "filter_budget",
                       "filter_max_answer_tokens", "filter_batch_size")  # fmt: skip
        check_at_least(self, 0, "filter_warmup_steps", "filter_max_candidates")
        if not 0 < self.filter_threshold <= 1:
            raise ThinkscaleError(f"--filter-threshold must be in (0, 1], got {self.filter_threshold}")
        if self.grader not in GRADERS:
            raise ThinkscaleError(f"--grader must be one of {', '.join(GRADERS)}, got '{self.grader}'")
        if self.samples and getattr(self, "packing", False):
            raise ThinkscaleError("--filter / --p-source sampled pick examples one by one: not with --packing")
        if self.objective == "pass-at-n" and getattr(self, "packing", False):
            raise ThinkscaleError("--objective pass-at-n weighs each example by its own p: not with --packing")
        if self.samples and (processes > 1 or getattr(self, "fsdp", False)):
            raise ThinkscaleError(
                f"{flag_name('filter')} / --p-source sampled sample with the whole model in one process: "
                "run them without torchrun/accelerate (one process)"
            )


def check_gradable(traces: list[dict], grader: str) -> None:
    """Sampling grades against each trace's answer: it must be there and equal itself."""
    from thinkscale.tasks.grading import grade

    for t in traces:
        gold = t.get("answer")
        if not isinstance(gold, str) or not gold.strip() or not grade(grader, gold, gold):
            raise ThinkscaleError(
                f"trace {t.get('id', '?')}: answer {gold!r} cannot be graded by the '{grader}' grader "
                "(--filter / --p-source sampled grade samples against it): give a gradeable answer "
                "field (--answer-field) or another --grader"
            )


class CandidateStream:
    """Dataset indices in a seeded permutation per pass, endlessly; `cursor` is its whole state."""

    def __init__(self, size: int, seed: int, cursor: int = 0):
        self.size, self.seed, self.cursor = size, seed, cursor
        self._order: tuple[int, list[int]] | None = None

    def take(self, k: int) -> list[int]:
        import torch

        out = []
        for _ in range(k):
            epoch, pos = divmod(self.cursor, self.size)
            if self._order is None or self._order[0] != epoch:
                g = torch.Generator().manual_seed(self.seed + 7919 * epoch)
                self._order = (epoch, torch.randperm(self.size, generator=g).tolist())
            out.append(self._order[1][pos])
            self.cursor += 1
        return out


def pass_rates(model, tokenizer, questions: list[str], golds: list[str], ids: list[str], cfg: RefineConfig,
               fmt: str, seed: int) -> list[float]:  # fmt: skip
    """p-hat per question: the share of `cfg.filter_samples` samples (temperature 1, the
    current weights of `model`) whose answer the grader accepts. Seeds depend on (seed, id, sample)."""
    import torch

    from thinkscale.infer.generate import GenerateConfig, generate_records
    from thinkscale.tasks import QuestionsTask

    gen = GenerateConfig(format=fmt, n=cfg.filter_samples, temperature=1.0, budgets=[cfg.filter_budget],
                         max_answer_tokens=cfg.filter_max_answer_tokens, seed=seed,
                         batch_size=cfg.filter_batch_size, grader=cfg.grader)  # fmt: skip
    task = QuestionsTask(questions, golds, ids, name="refine", grader=cfg.grader)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            records = list(generate_records(gen, task, model=model, tokenizer=tokenizer, progress=False))
    finally:
        model.train(was_training)
    right = dict.fromkeys(ids, 0)
    for r in records:
        right[r["id"]] += bool(r["correct"])
    return [right[i] / cfg.filter_samples for i in ids]


class Refine:
    """The sampler and stream of one training run."""

    def __init__(self, cfg: RefineConfig, questions: list[str], golds: list[str], fmt: str, seed: int,
                 batch_size: int):  # fmt: skip
        self.cfg, self.questions, self.golds, self.fmt, self.seed = cfg, questions, golds, fmt, seed
        self.stream = CandidateStream(len(questions), seed)
        self.max_candidates = cfg.filter_max_candidates or 4 * batch_size

    def draw(self, model, tokenizer, want: int, step: int) -> tuple[list[int], list[float], dict]:
        """(indices, p-hat of each, log) of up to `want` examples to train on at `step`."""
        filtering = self.cfg.filter_step(step)
        kept, rates, seen, seen_rates = [], [], 0, []
        start = time.perf_counter()
        while len(kept) < want and seen < self.max_candidates:
            chunk = self.stream.take(min(want - len(kept), self.max_candidates - seen) if filtering else want)
            p = pass_rates(model, tokenizer, [self.questions[i] for i in chunk], [self.golds[i] for i in chunk],
                           [f"train-{i}" for i in chunk], self.cfg, self.fmt, self.seed + 1_000_003 * step)  # fmt: skip
            seen += len(chunk)
            seen_rates += p
            for i, pi in zip(chunk, p):
                if not filtering or pi < self.cfg.filter_threshold:
                    kept.append(i)
                    rates.append(pi)
            if not filtering:
                break
        log = {"refine/candidates": seen, "refine/kept": len(kept),
               "refine/mean_p_hat": sum(seen_rates) / max(len(seen_rates), 1),
               "refine/sampling_seconds": time.perf_counter() - start}  # fmt: skip
        return kept, rates, log

    def save(self, folder: str) -> None:
        from thinkscale.records import write_json_atomic

        write_json_atomic(os.path.join(folder, STATE_FILE), {"cursor": self.stream.cursor})

    def load(self, folder: str) -> None:
        path = os.path.join(folder, STATE_FILE)
        if not os.path.exists(path):
            raise ThinkscaleError(f"{folder}: no {STATE_FILE}; this checkpoint was not written by a refine run")
        self.stream.cursor = json.loads(Path(path).read_text())["cursor"]


def refine_trainer(base):
    """`base` (thinkscale's SFTTrainer) with refine's loss and filter."""

    class RefineTrainer(base):
        refine_cfg: RefineConfig = RefineConfig()
        refine: Refine | None = None  # the sampler, when the settings sample

        def get_batch_samples(self, epoch_iterator, num_batches, device):
            batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
            step = self.state.global_step
            if self.refine is None or not batches or not self.refine.cfg.sampling_step(step):
                return batches, num_items
            want = sum(len(b["input_ids"]) for b in batches)  # the Trainer's batch, consumed for its bookkeeping
            model = self.accelerator.unwrap_model(self.model)
            import torch

            kept, rates, log = self.refine.draw(model, self.processing_class, want, step)
            for k, v in log.items():
                self._metrics["train"][k].append(float(v))
            micro = self.args.per_device_train_batch_size
            batches = []
            for s in range(0, len(kept), micro):
                rows = [self.train_dataset[i] for i in kept[s : s + micro]]
                batch = self.data_collator([{k: r[k] for k in ("input_ids", "labels", "completion_mask") if k in r} for r in rows])
                batch["refine_p"] = torch.tensor(rates[s : s + micro], dtype=torch.float64)
                batches.append(batch)
            return batches, self._get_num_items_in_batch(batches, device)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            sampled_p = inputs.pop("refine_p", None)
            cfg = self.refine_cfg
            if cfg.objective == "ce":
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            import torch

            labels = inputs.pop("labels")
            outputs = model(**{**inputs, "use_cache": False})
            p = sampled_p.to(outputs.logits.device) if cfg.sampled_p and sampled_p is not None else None
            denom = None if num_items_in_batch is None else torch.as_tensor(num_items_in_batch).clamp(min=1)
            loss, stats = pass_at_n_loss(outputs.logits[:, :-1], labels[:, 1:], cfg.pass_n, p, denom)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())  # as TRL's SFT loss
            mode = "train" if model.training else "eval"
            if mode == "train":  # TRL's token count, which its own loss path would have kept
                self._total_train_tokens += int(self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum())
                self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            self._metrics[mode]["refine/weight"].append(float(stats["weight"].mean()))
            self._metrics[mode]["refine/p"].append(float(stats["p"].mean()))
            return (loss, outputs) if return_outputs else loss

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            if self.refine is not None and self.args.should_save:
                folder = os.path.join(self.args.output_dir, f"checkpoint-{self.state.global_step}")
                if os.path.isdir(folder):
                    self.refine.save(folder)

    return RefineTrainer
