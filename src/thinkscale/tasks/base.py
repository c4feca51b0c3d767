"""A task is one small class: load examples, write the prompt, extract a prediction, grade it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.tasks.choice import render
from thinkscale.tasks.extract import extract_for
from thinkscale.tasks.grading import Gold, grade, qa_f1


@dataclass
class Example:
    id: str
    question: str
    gold: Gold | None  # None: no gold answer (records are not graded)
    meta: dict = field(default_factory=dict)


INSTRUCTIONS = {
    "math": "Please reason step by step, and put your final answer within \\boxed{}.",
    "numeric": "Please reason step by step, and put your final answer within \\boxed{}.",
    "qa": "Answer with a short phrase (a name, a place, a date), after 'Answer:'.",
    "choice": "Answer with the letter of the correct option within \\boxed{}.",
}


class Task:
    name: str = "task"
    grader: str = "math"  # a key of GRADERS: how `pred` is compared with `gold`
    instruction: str | None = None  # None: the grader's (INSTRUCTIONS); "" for none

    def load(self, limit: int | None = None) -> list[Example]:
        raise NotImplementedError

    def prompt(self, example: Example) -> str:
        """The user message (options listed as letters for multiple choice); the format adds
        the chat template and think delimiters."""
        question = example.question
        if example.meta.get("choices"):
            question = render(question, example.meta["choices"])
        instruction = INSTRUCTIONS.get(self.grader, "") if self.instruction is None else self.instruction
        return f"{question}\n{instruction}" if instruction else question

    def extract(self, answer: str, example: Example | None = None) -> str | None:
        choices = example.meta.get("choices") if example is not None else None
        return extract_for(self.grader, answer, choices)

    def grade(self, pred: str | None, gold: Gold) -> bool:
        return grade(self.grader, pred, gold)

    def extras(self, example: Example, pred: str | None) -> dict:
        """What a record carries beyond the common fields: the options shown (and the shuffle),
        the source, token-F1 for short answers."""
        out = {k: example.meta[k] for k in RECORD_META if k in example.meta}
        if self.grader == "qa" and example.gold is not None:
            out["f1"] = round(qa_f1(pred, example.gold), 4)
        return out


RECORD_META = ("choices", "choice_order", "source")


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line; a bad line is an error naming file:line."""
    from thinkscale.records import read_jsonl as read

    return list(read(path))


def read_table(path: Path, split: str | None = None) -> list[tuple[int, dict]]:
    """JSONL or parquet rows, numbered from 1 (lines for JSONL, rows for parquet); with `split`,
    one split of a dataset directory: a saved HF dataset (`save_to_disk`) or a folder of
    `{split}.jsonl` / `{split}.parquet` / `{split}-*.parquet` files (the Hub's layout)."""
    path = Path(path)
    if split is not None:
        return _read_split(path, split)
    if path.suffix == ".parquet":
        return _read_parquet(path)
    return read_jsonl(path)


def _read_parquet(path: Path) -> list[tuple[int, dict]]:
    if not path.exists():
        raise ThinkscaleError(f"{path}: file not found")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:
        raise ThinkscaleError(f"{path}: cannot read parquet ({e})") from None
    return list(enumerate(table.to_pylist(), 1))


def _read_split(path: Path, split: str) -> list[tuple[int, dict]]:
    if not path.is_dir():
        raise ThinkscaleError(f"{path}: --split picks a split of a dataset directory; this is not one")
    if (path / "dataset_dict.json").exists():
        from datasets import load_from_disk

        splits = load_from_disk(str(path))
        if split not in splits:
            raise ThinkscaleError(f"{path}: no split '{split}' (it has {', '.join(splits)})")
        return list(enumerate(splits[split].to_list(), 1))
    for candidate in (path / f"{split}.jsonl", path / f"{split}.parquet"):
        if candidate.exists():
            return read_table(candidate)
    shards = sorted(path.glob(f"{split}-*.parquet")) + sorted(path.glob(f"data/{split}-*.parquet"))
    if shards:
        rows = [row for shard in shards for _, row in _read_parquet(shard)]
        return list(enumerate(rows, 1))
    found = sorted({p.name.split("-")[0].split(".")[0] for p in path.glob("*") if p.suffix in (".jsonl", ".parquet")})
    raise ThinkscaleError(f"{path}: no split '{split}'" + (f" (found: {', '.join(found)})" if found else ""))
