"""Any user file (JSONL or parquet) as a task: name the question, answer and id fields."""

from __future__ import annotations

from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.tasks.base import Example, Task, read_table
from thinkscale.tasks.choice import (
    attach_options,
    gold_letter,
    options_from,
    split_question_options,
)


class FileTask(Task):
    """Rows of a JSONL/parquet file (or one split of a dataset directory) graded by `grader`:
    math, numeric, qa (short answers, a list of aliases) or choice (options from
    `choices_field`, else parsed from the question)."""

    def __init__(
        self,
        path: str | Path,
        question_field: str = "question",
        answer_field: str = "answer",
        id_field: str | None = None,
        grader: str = "math",
        name: str | None = None,
        choices_field: str | None = None,
        shuffle_choices: bool = False,
        seed: int = 0,
        source_field: str | None = None,
        source_filter: list[str] | None = None,
        split: str | None = None,
    ):
        self.path = Path(path)
        self.question_field, self.answer_field, self.id_field = question_field, answer_field, id_field
        self.grader = grader
        self.name = name or (self.path.name if split and self.path.is_dir() else self.path.stem)
        self.choices_field, self.shuffle_choices, self.seed = choices_field, shuffle_choices, seed
        self.source_filter = source_filter or None
        self.source_field = source_field or ("source" if self.source_filter else None)
        self.split = split

    def load(self, limit: int | None = None) -> list[Example]:
        examples, seen = [], set()
        where_file = f"{self.path}" + (f"[{self.split}]" if self.split else "")
        required = (self.question_field, self.answer_field) + ((self.id_field,) if self.id_field else ())
        for lineno, row in read_table(self.path, self.split):
            for fld in required:
                if fld not in row or row[fld] is None or str(row[fld]).strip() == "":
                    raise ThinkscaleError(f"{where_file}:{lineno}: missing field '{fld}'")
            meta = {}
            if self.source_field:
                if self.source_field not in row:
                    raise ThinkscaleError(f"{where_file}:{lineno}: missing field '{self.source_field}'")
                meta["source"] = str(row[self.source_field])
                if self.source_filter and meta["source"] not in self.source_filter:
                    continue
            ex_id = str(row[self.id_field]) if self.id_field else f"{self.name}-{lineno}"
            if ex_id in seen:
                raise ThinkscaleError(
                    f"{where_file}:{lineno}: duplicate id '{ex_id}' in field '{self.id_field}'"
                )
            seen.add(ex_id)
            question = str(row[self.question_field])
            if self.grader == "choice":
                question, gold = self._choices(row, question, ex_id, meta, f"{where_file}:{lineno}")
            else:
                gold = self._gold(row, lineno)
            examples.append(Example(ex_id, question, gold, meta))
            if limit is not None and len(examples) >= limit:
                break
        if not examples:
            kept = f" with {self.source_field} in {self.source_filter}" if self.source_filter else ""
            raise ThinkscaleError(f"{where_file}: empty dataset (no rows{kept})")
        return examples

    def _choices(self, row: dict, question: str, ex_id: str, meta: dict, where: str) -> tuple[str, str]:
        """The stem, the gold letter; the options (shuffled with the seed if asked) go to meta."""
        if self.choices_field:
            if self.choices_field not in row:
                raise ThinkscaleError(f"{where}: missing field '{self.choices_field}'")
            options = options_from(row[self.choices_field], f"{where}: field '{self.choices_field}'")
        else:
            split = split_question_options(question)
            if split is None:
                raise ThinkscaleError(
                    f"{where}: field '{self.question_field}': --grader choice needs options: "
                    "give --choices-field, or write them in the question as 'A) .. B) ..'"
                )
            question, options = split
        gold = gold_letter(row[self.answer_field], options, f"{where}: field '{self.answer_field}'")
        return question, attach_options(meta, options, gold, self.shuffle_choices, self.seed, ex_id)

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



class FactualQA(FileTask):
    """40 short factual questions with alias lists, in four sources (geography, science, history,
    culture), written for thinkscale from general knowledge (each answer checkable in any
    encyclopedia): a small offline check of the `qa` grader and of `--source-filter`."""

    def __init__(self):
        super().__init__(Path(__file__).parent / "data" / "factual_qa.jsonl", answer_field="answers",
                         id_field="id", grader="qa", name="factual-qa", source_field="source")  # fmt: skip
