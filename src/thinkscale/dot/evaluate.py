"""`thinkscale dot eval`: sample a DoT checkpoint at several step counts, write graded records,
then the spine's metrics and report.

Records are the spine's (`task, id, sample, budget, num_ignore, ...`) with `budget` = T, the
number of denoising steps (DoT's compute knob), so eval groups runs by T, and pass@k / maj@k
over the n samples of a question are DoT's self-consistency. Each record also carries `steps`,
`nfe` (forward passes), `passes` (DoT-MP) and `method`. Appended one at a time: a rerun resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least
from thinkscale.dot.data import (
    ANSWER_SEP,
    DotExample,
    is_reversed_task,
    load_task,
    parse_reversed_number,
    question_examples,
)
from thinkscale.dot.model import load_dot
from thinkscale.dot.sample import SampleConfig, ar_generate, sample_dot
from thinkscale.records import Record, RecordWriter, check_settings, make_record, write_json_atomic
from thinkscale.tasks.extract import extract_number
from thinkscale.tasks.grading import GRADERS


@dataclass
class DotEvalConfig:
    model: str = "runs/dot-mul4x4"  # a checkpoint written by `thinkscale dot train`
    out: str = "runs/dot-eval"
    task: str | None = None  # default: the task the model was trained on
    data: str | None = None  # held-out questions instead: a thinkscale task name or a question/answer file
    limit: int | None = 200  # test questions
    steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    order: str = "confidence"
    block_length: int = 0
    temperature: float = 0.0
    multipass: bool = False
    max_passes: int = 16
    n: int = 1
    seed: int = 0
    batch_size: int = 64


def split_output(text: str) -> tuple[str, str]:
    """(chain, answer) of a decoded output; no answer separator: all of it is chain."""
    if ANSWER_SEP not in text:
        return text.strip(), ""
    chain, answer = text.split(ANSWER_SEP, 1)
    return chain.strip(), answer.strip()


def extract_answer(task: str, answer: str) -> str | None:
    return parse_reversed_number(answer) if is_reversed_task(task) else extract_number(answer)


def to_record(task: str, ex: DotExample, out: dict, steps: int | None, settings: dict, tokenizer) -> Record:
    chain, answer = split_output(out["text"])
    pred = extract_answer(task, answer)
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0  # noqa: E731
    return make_record(
        task=task, id=ex.id, sample=out["sample"], budget=steps, num_ignore=0, question=ex.question,
        gold=ex.gold, thinking=chain, answer=answer, pred=pred, correct=GRADERS["numeric"](pred, ex.gold),
        grader="numeric", thinking_tokens=count(chain), answer_tokens=count(answer), capped=False,
        waits=0, finish_reason="steps" if steps else "eos", steps=steps, nfe=out["nfe"],
        passes=out["passes"], **settings,
    )  # fmt: skip


def _sample_config(cfg: DotEvalConfig, steps: int) -> SampleConfig:
    fields = ("order", "block_length", "temperature", "multipass", "max_passes", "n", "seed", "batch_size")
    return SampleConfig(steps=steps, **{k: getattr(cfg, k) for k in fields})


def eval_dot(cfg: DotEvalConfig) -> Path:
    """Sample every (question, sample, T) not yet in out/results.jsonl; returns that file."""
    if not cfg.steps:
        raise ThinkscaleError("give at least one --steps value")
    for steps in cfg.steps:  # every setting is checked before the model loads
        _sample_config(cfg, steps).validate()
    check_at_least(cfg, 1, "limit")
    model, tokenizer, meta = load_dot(cfg.model)
    if cfg.data:
        task, examples = Path(cfg.data).stem if Path(cfg.data).suffix else cfg.data, question_examples(cfg.data, cfg.limit)
    elif (cfg.task or meta.task) == "traces":
        raise ThinkscaleError(f"{cfg.model} was trained on a traces file: give its held-out questions with --data")
    else:
        task = cfg.task or meta.task
        examples = load_task(task, "test", cfg.limit)
    by_id = {ex.id: ex for ex in examples}
    out = Path(cfg.out) / "results.jsonl"
    method = "ar" if meta.objective == "ar" else ("dot-mp" if cfg.multipass else "dot")
    settings = {"model": str(cfg.model), "order": cfg.order, "block_length": cfg.block_length, "temperature": cfg.temperature,
                "seed": cfg.seed, "method": method}  # fmt: skip
    timing = {}
    with RecordWriter(out) as writer:
        check_settings(writer.records, out, task, settings)
        for steps in [None] if meta.objective == "ar" else cfg.steps:
            todo = [(ex.id, ex.question) for ex in examples
                    if any((task, ex.id, s, steps, 0) not in writer.done for s in range(cfg.n))]  # fmt: skip
            if not todo:
                continue
            bar = tqdm(total=len(todo) * (1 if steps is None else cfg.n), desc=f"{method} T={steps or '-'}", unit="sample")
            start = time.perf_counter()
            if steps is None:
                outs = ar_generate(model, tokenizer, meta, todo, cfg.batch_size, progress=bar)
            else:
                outs = sample_dot(model, tokenizer, meta, todo, _sample_config(cfg, steps), progress=bar)
            bar.close()
            timing[str(steps)] = {"problems_per_s": len(todo) / (time.perf_counter() - start), "problems": len(todo)}
            for o in outs:
                writer.write(to_record(task, by_id[o["id"]], o, steps, settings, tokenizer))
    if timing:
        write_json_atomic(Path(cfg.out) / "timing.json", timing)
    return out
