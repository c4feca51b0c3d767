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
                Example(ex_id, str(row[self.question_field]), self._gold(row, lineno), {})
            )
            if limit is not None and len(examples) >= limit:
                break
        if not examples:
            raise ThinkscaleError(f"{self.path}: empty dataset (no rows)")
        return examples

    def extract(self, answer: str) -> str | None:
        return extract_for(self.grader, answer)

    def _gold(self, row: dict, lineno: int) -> str | list[str]:
        """A string or number, or a list of accepted answers (aliases), never a repr."""
        gold = row[self.answer_field]
        where = f"{self.path}:{lineno}: field '{self.answer_field}'"
        if isinstance(gold, list):
            if not gold or not all(isinstance(g, (str, int, float)) and not isinstance(g, bool)
                                   and str(g).strip() for g in gold):  # fmt: skip
                raise ThinkscaleError(f"{where}: a list of accepted answers must hold non-empty strings or numbers")
            return [str(g) for g in gold]
        if isinstance(gold, (dict, bool)):
            raise ThinkscaleError(f"{where}: must be a string, a number or a list of them, got {type(gold).__name__}")
        return str(gold)


class QuestionsTask(Task):
    """Questions given in memory (the Python API's `generate(["..."])`), with optional gold
    answers; without one a record's `correct` is null. The prompt is the question as given
    (plus `instruction`, if any)."""

    def __init__(
        self,
        questions: list[str],
        golds: list | None = None,
        ids: list[str] | None = None,
        name: str = "questions",
        grader: str = "math",
        instruction: str = "",
    ):
        if golds is not None and len(golds) != len(questions):
            raise ThinkscaleError(f"{len(questions)} questions but {len(golds)} gold answers")
        if ids is not None and len(set(ids)) != len(questions):
            raise ThinkscaleError("ids must be unique, one per question")
        for i, q in enumerate(questions):
            if not isinstance(q, str) or not q.strip():
                raise ThinkscaleError(f"question {i} must be a non-empty string, got {q!r}")
        self.questions, self.golds, self.name, self.grader = questions, golds, name, grader
        self.instruction = instruction
        self.ids = ids or [f"{name}-{i}" for i in range(len(questions))]

    def load(self, limit: int | None = None) -> list[Example]:
        golds = self.golds or [None] * len(self.questions)
        examples = [Example(i, q, g, {}) for i, q, g in zip(self.ids, self.questions, golds)]
        return examples if limit is None else examples[:limit]

    def extract(self, answer: str) -> str | None:
        return extract_for(self.grader, answer)
