"""Held-out arithmetic problems: the evaluation side of the procedural trace corpora (`arith`,
and `arith-mixed`'s two difficulties, `arith-easy` and `arith-hard`)."""

from __future__ import annotations

from thinkscale.data.arith import ArithConfig, arith_traces, mixed_arith
from thinkscale.tasks.base import Example, Task

TRAIN_CONFIG = ArithConfig()  # what `--data arith` trains on


class Arith(Task):
    name = "arith"
    grader = "numeric"
    instruction = ""  # the question alone, as in the training traces

    def __init__(self, config: ArithConfig | None = None):
        self.config = config or ArithConfig(seed=TRAIN_CONFIG.seed + 1, count=1000)

    def load(self, limit: int | None = None) -> list[Example]:
        seen = {t["question"] for t in arith_traces(TRAIN_CONFIG)}
        examples = []
        for t in arith_traces(self.config):
            if t["question"] in seen:  # held out: never a training question
                continue
            seen.add(t["question"])
            examples.append(
                Example(t["id"].replace("arith-", "arith-eval-"), t["question"], t["answer"], {})
            )
            if limit is not None and len(examples) >= limit:
                break
        return examples


class ArithEasy(Task):
    """One-digit sums held out of `arith-mixed` (30): a short answer suffices."""

    name = "arith-easy"
    grader = "numeric"
    instruction = ""
    difficulty = "easy"

    def load(self, limit: int | None = None) -> list[Example]:
        rows = [t for t in mixed_arith("test") if t["difficulty"] == self.difficulty]
        return [Example(t["id"], t["question"], t["answer"], {}) for t in rows[:limit]]


class ArithHard(ArithEasy):
    """3-4 digit sums held out of `arith-mixed` (200): the column trace is needed."""

    name = "arith-hard"
    difficulty = "hard"
