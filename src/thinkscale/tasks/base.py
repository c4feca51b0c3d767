"""A task is one small class: load examples, write the prompt, extract a prediction, grade it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.tasks.extract import extract_math
from thinkscale.tasks.grading import Gold, grade


@dataclass
class Example:
    id: str
    question: str
    gold: Gold | None  # None: no gold answer (records are not graded)
    meta: dict = field(default_factory=dict)


class Task:
    name: str = "task"
    grader: str = "math"  # a key of GRADERS: how `pred` is compared with `gold`
    instruction: str = "Please reason step by step, and put your final answer within \\boxed{}."

    def load(self, limit: int | None = None) -> list[Example]:
        raise NotImplementedError

    def prompt(self, example: Example) -> str:
        """The user message; the format adds the chat template and think delimiters."""
        return f"{example.question}\n{self.instruction}" if self.instruction else example.question

    def extract(self, answer: str) -> str | None:
        return extract_math(answer)

    def grade(self, pred: str | None, gold: Gold) -> bool:
        return grade(self.grader, pred, gold)


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line; a bad line is an error naming file:line."""
    from thinkscale.records import read_jsonl as read

    return list(read(path))


def read_table(path: Path) -> list[tuple[int, dict]]:
    """JSONL or parquet rows, numbered from 1 (lines for JSONL, rows for parquet)."""
    if path.suffix == ".parquet":
        if not path.exists():
            raise ThinkscaleError(f"{path}: file not found")
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:
            raise ThinkscaleError(f"{path}: cannot read parquet ({e})") from None
        return list(enumerate(table.to_pylist(), 1))
    return read_jsonl(path)
