"""The Python API: the CLI's verbs as functions, on objects in memory or on files.

    import thinkscale as ts
    recs = ts.generate(["What is 17*23?"], model=model, tokenizer=tok, budget=256, n=4,
                       temperature=0.7)
    recs = ts.generate(task="gsm8k", limit=50, budgets=[128, 512], out="r.jsonl")  # resumable
    metrics = ts.evaluate(recs)                     # or a path
    for ev in ts.stream("Prove ...", model=model, tokenizer=tok, budget=512):
        print(ev.text, end="")

Each verb is a thin layer over its stage's library function: this module adds no behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thinkscale import ThinkscaleError
from thinkscale.models import DEFAULT_MODEL
from thinkscale.records import Record, load_records, record_key, sample_key

_UNSET: Any = object()


def _config(model, budget, budgets, num_ignore, num_ignores, config: dict):
    from thinkscale.infer.generate import GenerateConfig

    if budget is not _UNSET and budgets is not _UNSET:
        raise ThinkscaleError("give budget or budgets, not both")
    if num_ignore is not _UNSET and num_ignores is not _UNSET:
        raise ThinkscaleError("give num_ignore or num_ignores, not both")
    if budget is not _UNSET:
        config["budgets"] = [budget]
    elif budgets is not _UNSET:
        config["budgets"] = list(budgets)
    if num_ignore is not _UNSET:
        config["num_ignores"] = [num_ignore]
    elif num_ignores is not _UNSET:
        config["num_ignores"] = list(num_ignores)
    if isinstance(model, (str, Path)):
        config["model"] = str(model)
    elif model is not None:  # an object: name it in the records by where it came from
        config["model"] = str(getattr(getattr(model, "config", None), "_name_or_path", "") or "in-memory")
    try:
        return GenerateConfig(**config)
    except TypeError as e:
        raise ThinkscaleError(f"generate: {e}") from None


def _task(questions, golds, ids, task, config: dict):
    """A Task from whichever the caller gave: questions, a task name, a Task, or a file."""
    from thinkscale.tasks import QuestionsTask, Task

    if questions is not None:
        if task is not None:
            raise ThinkscaleError("give questions or task, not both")
        if isinstance(questions, str):
            questions = [questions]
        return QuestionsTask(list(questions), golds, ids, grader=config.get("grader", "math"))
    if isinstance(task, Task):
        return task
    if isinstance(task, Path) or isinstance(task, str) and (
        task.endswith((".jsonl", ".parquet", ".json")) or Path(task).exists()
    ):
        config["data"] = str(task)
        return None
    if task is not None:
        config["task"] = task
    return None


def generate(
    questions: str | list[str] | None = None,
    *,
    golds: list | None = None,
    ids: list[str] | None = None,
    task=None,
    model=DEFAULT_MODEL,
    tokenizer=None,
    budget: int | None = _UNSET,
    budgets: list[int | None] = _UNSET,
    num_ignore: int = _UNSET,
    num_ignores: list[int] = _UNSET,
    out: str | Path | None = None,
    progress: bool = False,
    **config: Any,
) -> list[Record]:
    """Graded records for questions (a list of strings, with optional `golds`: a gold answer, a
    list of accepted answers, or None each), a task name, a Task, or a JSONL/parquet file
    (`question_field=`, ... as the CLI). `model`: a name, a checkpoint dir, or a model object
    with its `tokenizer`. Other keywords are `GenerateConfig` fields (n, temperature, ...).
    With `out`, records are appended to that file and resumed exactly once, and the returned
    list holds every record of this call's plan, earlier ones included."""
    from thinkscale.infer.generate import generate as generate_file
    from thinkscale.infer.generate import generate_records, load_examples, plan

    the_task = _task(questions, golds, ids, task, config)
    cfg = _config(model, budget, budgets, num_ignore, num_ignores, config)
    obj = None if isinstance(model, (str, Path)) else model
    if out is None:
        return list(generate_records(cfg, the_task, model=obj, tokenizer=tokenizer, progress=progress))
    generate_file(cfg, out, obj, tokenizer, progress=progress, task=the_task)
    the_task = the_task or cfg.build_task()
    wanted = {
        sample_key(the_task.name, ex.id, s, b, k, mode)
        for ex, b, k, mode, samples in plan(cfg, the_task, load_examples(the_task, cfg.limit))
        for s in samples
    }
    return [r for r in load_records(out) if record_key(r) in wanted]


def stream(
    prompt: str,
    *,
    model=DEFAULT_MODEL,
    tokenizer=None,
    budget: int | None = None,
    num_ignore: int = 0,
    gold: str | list[str] | None = None,
    **config: Any,
) -> Iterator:
    """Token events of one greedy (or seeded) completion of `prompt`: `ev.phase` (think |
    answer | done), `ev.text`, `ev.forced`; the last event's `ev.record` is the graded record."""
    from thinkscale.infer.generate import generate_records
    from thinkscale.infer.streaming import stream_records
    from thinkscale.models import load_model
    from thinkscale.tasks import QuestionsTask

    if config.get("n", 1) != 1:
        raise ThinkscaleError("stream() makes one sample; use generate() for n > 1")
    cfg = _config(model, budget, _UNSET, num_ignore, _UNSET, config)
    cfg.validate(source=False)
    if isinstance(model, (str, Path)):
        model, tokenizer = load_model(str(model), dtype=cfg.dtype)
    task = QuestionsTask([prompt], None if gold is None else [gold], grader=cfg.grader)
    run = lambda on_token: generate_records(  # noqa: E731
        cfg, task, model=model, tokenizer=tokenizer, on_token=on_token, progress=False
    )
    return stream_records(run, tokenizer)


def evaluate(records: list[Record] | str | Path, out: str | Path | None = None) -> dict:
    """metrics.json's content for records in memory, or for a results file / run directory
    (written beside it, or to `out`)."""
    from thinkscale.eval.evaluate import evaluate as evaluate_records
    from thinkscale.eval.evaluate import evaluate_path

    if isinstance(records, (str, Path)):
        return evaluate_path(records, out)[0]
    return evaluate_records([dict(r) for r in records])


def report(run_dir: str | Path) -> dict:
    """scaling.png, parallel.png, report.html and metrics.json in a run directory."""
    from thinkscale.eval.report import write_report

    return write_report(run_dir)


def curate(config=None, progress: bool = True, **fields: Any) -> dict:
    """The data pipeline (`thinkscale data curate`): a CurateConfig, or its fields; returns the
    funnel report."""
    from thinkscale.data.curate import CurateConfig
    from thinkscale.data.curate import curate as run

    return run(config or CurateConfig(**fields), progress=progress)


def train_sft(config=None, **fields: Any) -> Path:
    """Completion-only SFT (`thinkscale train sft`): an SFTRunConfig, or its fields."""
    from thinkscale.train.sft import SFTRunConfig
    from thinkscale.train.sft import train_sft as run

    return run(config or SFTRunConfig(**fields))
