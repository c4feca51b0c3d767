"""Any user file (JSONL or parquet) as a task: name the question, answer and id fields."""

from __future__ import annotations

from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.tasks.base import Example, Task, read_table
from thinkscale.tasks.extract import extract_for


class FileTask(Task):
    def __init__(
        self,
        path: str | Path,
        question_field: str = "question",
        answer_field: str = "answer",
        id_field: str | None = None,
        grader: str = "math",
        name: str | None = None,
    ):
        self.path = Path(path)
        self.question_field, self.answer_field, self.id_field = (
            question_field,
            answer_field,
            id_field,
        )
        self.grader = grader
        self.name = name or self.path.stem

    def load(self, limit: int | None = None) -> list[Example]:
        examples, seen = [], set()
        for lineno, row in read_table(self.path):
            for fld in (self.question_field, self.answer_field) + (
                (self.id_field,) if self.id_field else ()
            ):
                if fld not in row or row[fld] is None or str(row[fld]).strip() == "":
                    raise ThinkscaleError(f"{self.path}:{lineno}: missing field '{fld}'")
            ex_id = str(row[self.id_field]) if self.id_field else f"{self.name}-{lineno}"
            if ex_id in seen:
                raise ThinkscaleError(
                    f"{self.path}:{lineno}: duplicate id '{ex_id}' in field '{self.id_field}'"
                )
            seen.add(ex_id)
            examples.append(
                Example(ex_id, str(row[self.question_field]), str(row[self.answer_field]), {})
            )
            if limit is not None and len(examples) >= limit:
                break
        if not examples:
            raise ThinkscaleError(f"{self.path}: empty dataset (no rows)")
        return examples

    def extract(self, answer: str) -> str | None:
        return extract_for(self.grader, answer)
