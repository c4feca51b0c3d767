"""Difficulty (s1): drop questions a reference model already solves, and record how long each
trace is in tokens (the second difficulty signal, used by `select`).

Reference models run through the project's own engine (`thinkscale.infer.generate`), so they are
batched, graded with math-verify against the trace's answer, and resumable per question: a crash
loses nothing already generated. Each datatrove task answers its own shard, which is how the stage
spreads over GPUs with `--executor slurm|ray`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least
from thinkscale.models import DEFAULT_MODEL


@dataclass
class DifficultyConfig:
    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])  # reference models
    answer_format: str = "plain"  # how reference models are prompted: plain | s1 | r1
    max_tokens: int = 256  # per reference answer
    batch_size: int = 16
    keep_solved: bool = False  # record solved_by_* but drop nothing

    def validate(self) -> None:
        from thinkscale.formats import FORMATS
        from thinkscale.models import resolve_model_path

        if self.answer_format not in FORMATS:
            raise ThinkscaleError(f"--answer-format must be one of {', '.join(FORMATS)}")
        check_at_least(self, 1, "max_tokens", "batch_size")
        for m in self.models:
            resolve_model_path(m)


def model_slug(model: str) -> str:
    """`solved_by_<slug>`: the model's name or its directory's name, safe as a field name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model.rstrip("/")).name) or "model"


def count_trace_tokens(rows: list[dict], tokenizer: str = DEFAULT_MODEL) -> list[int]:
    """Tokens of thinking + answer per trace: s1 ranks by this within a domain."""
    from thinkscale.models import load_tokenizer

    tok = load_tokenizer(tokenizer)
    texts = [f"{r.get('thinking', '')}\n{r.get('answer', '')}" for r in rows]
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []


def solved_by(rows: list[dict], model: str, cfg: DifficultyConfig, work: Path) -> dict[str, bool]:
    """id -> whether `model` answers the question correctly (greedy). Generation runs in memory
    (`generate_records`); each graded record is appended to `work/<slug>.jsonl` as it comes, so
    a rerun skips questions already answered."""
    from thinkscale.infer.generate import GenerateConfig, generate_records
    from thinkscale.records import RecordWriter, load_records
    from thinkscale.tasks import QuestionsTask
    from thinkscale.tasks.base import INSTRUCTIONS

    task = QuestionsTask([r["question"] for r in rows], [str(r["answer"]) for r in rows],
                         [r["id"] for r in rows], instruction=INSTRUCTIONS["math"])  # fmt: skip
    gen = GenerateConfig(
        format=cfg.answer_format,
        budgets=[None],
        max_answer_tokens=cfg.max_tokens,
        max_total_tokens=cfg.max_tokens + 2048,
        model=model,
        batch_size=cfg.batch_size,
    )
    path = work / f"{model_slug(model)}.jsonl"
    with RecordWriter(path) as writer:
        for rec in generate_records(gen, task, skip=writer.done):
            writer.write(rec)
    return {rec["id"]: bool(rec["correct"]) for rec in load_records(path)}


class DifficultyFilter(BaseFilter):
    """Answers the whole shard in one batched engine run, then keeps what no model solved."""

    name = "difficulty"

    def __init__(self, cfg: DifficultyConfig, tokenizer: str, work: str, exclusion_writer=None):
        super().__init__(exclusion_writer, batch_size=1 << 30)  # one batch: the shard
        self.cfg, self.tokenizer, self.work = cfg, tokenizer, Path(work)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        from thinkscale.data.documents import to_row

        rows = [to_row(d) for d in batch]
        shard = hashlib.sha1("\n".join(r["id"] for r in rows).encode()).hexdigest()[:12]
        rank_work = self.work / shard  # the same shard finds its own answers again on resume
        for doc, n in zip(batch, count_trace_tokens(rows, self.tokenizer)):
            doc.metadata["trace_tokens"] = n
        solved: dict[str, dict[str, bool]] = {}
        for model in self.cfg.models:
            slug = model_slug(model)
            solved[slug] = solved_by(rows, model, self.cfg, rank_work)
            for doc in batch:
                doc.metadata[f"solved_by_{slug}"] = solved[slug].get(doc.id, False)
        results: list[bool | tuple[bool, str]] = []
        for doc in batch:
            by = [slug for slug in solved if doc.metadata[f"solved_by_{slug}"]]
            results.append(
                True if not by or self.cfg.keep_solved else (False, f"solved_by_{by[0]}")
            )
        return results
