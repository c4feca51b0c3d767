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
adjacent when the data is shuffled (`trainer.PairedSampler`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, check_between
from thinkscale.data.traces import TraceFields, load_traces
from thinkscale.formats import check_hybrid_template, get_format
from thinkscale.models import add_format_tokens, init_new_embeddings
from thinkscale.run_dirs import check_run_dir, latest_checkpoint, save_final
from thinkscale.train.refine import Refine, RefineConfig, check_gradable, refine_trainer
from thinkscale.train.trainer import TrainingConfig, launch_info, trainer_class

RUN_FILE = "thinkscale_sft.json"


@dataclass
class SFTRunConfig(TrainingConfig, RefineConfig):
    """The training settings (`TrainingConfig`: s1's defaults), refine's loss and filter
    (`RefineConfig`: off by default), then the data and its layout; `max_length` is sized for a
    CPU. CLI flags mirror these fields."""

    data: str = "arith"  # a traces file/dir or a built-in corpus: gsm8k-train, math-train, arith
    out: str = "runs/sft"
    format: str = "s1"
    question_field: str = "question"
    thinking_field: str = "thinking"
    answer_field: str = "answer"
    id_field: str | None = "id"
    limit: int | None = None
    max_length: int = 1024
    allow_truncation: bool = False
    max_truncated_share: float = 0.05  # above this share, refuse unless allow_truncation
    packing: bool = False

    def validate(self, processes: int = 1, launched: bool = False) -> None:
        get_format(self.format)
        self.check_training(processes, launched)
        self.check_refine(processes)
        check_at_least(self, 8, "max_length")
        check_at_least(self, 1, "limit")
        check_between(self, 0, 1, "max_truncated_share")


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
    Each row keeps its trace's `pair` (hybrid pairs) and `answer` under the keys `_pair`, `_answer`."""
    fields = TraceFields(cfg.question_field, cfg.thinking_field, cfg.answer_field, cfg.id_field)
    traces = load_traces(cfg.data, fields, cfg.limit)
    if cfg.samples:
        check_gradable(traces, cfg.grader)
    rows = [{**row, "_pair": t.get("pair"), "_answer": t["answer"]}
            for row, t in zip(to_conversations(traces, cfg.format), traces)]  # fmt: skip
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

    processes, launched, main_process = launch_info()  # under `accelerate launch`, one process decides
    cfg.validate(processes, launched)
    out = Path(cfg.out)
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
    answers = [r.pop("_answer") for r in rows]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    if added:
        init_new_embeddings(model, tokenizer, added)
        print(f"added tokens {', '.join(added)} (embedding rows start as the mean embedding)")

    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume and main_process:
        run = {"config": {k: v for k, v in asdict(cfg).items() if k != "resume"}, "lengths": report}
        (out / RUN_FILE).write_text(json.dumps(run, indent=2))
    args = SFTConfig(
        **cfg.training_args(processes),
        max_length=cfg.max_length,
        completion_only_loss=True,
        packing=cfg.packing,
    )
    cls = trainer_class(SFTTrainer)
    refined = cfg.objective != "ce" or cfg.samples
    trainer = (refine_trainer(cls) if refined else cls)(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    if refined:
        trainer.refine_cfg = cfg
        if cfg.samples:
            questions = [r["prompt"][0]["content"] for r in rows]
            trainer.refine = Refine(cfg, questions, answers, cfg.format, cfg.seed, cfg.batch_size)
            if resume_from:
                trainer.refine.load(resume_from)
    if any(len(g) > 1 for g in groups):
        if cfg.packing:  # TRL packs before sampling: rows land in sequences by length alone
            print("note: --packing places rows by length (TRL's best-fit packing), so the two rows of a "
                  "pair do not stay adjacent; without --packing they do")  # fmt: skip
        else:
            trainer.pair_groups = groups
    if resume_from:
        print(f"resuming from {resume_from} (optimizer, scheduler, RNG and data order restored)")
    elif cfg.resume:
        print("no checkpoint yet: starting from the beginning")
    trainer.train(resume_from_checkpoint=resume_from)
    save_final(trainer, tokenizer, out, main_process)
    return out
