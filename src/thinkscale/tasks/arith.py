"""Held-out arithmetic problems: the evaluation side of the procedural trace corpora (`arith`,
`arith-mul`, and `arith-mixed`'s two difficulties, `arith-easy` and `arith-hard`)."""

from __future__ import annotations

from dataclasses import replace

from thinkscale.data.arith import MUL_CONFIG, ArithConfig, arith_traces, mixed_arith
from thinkscale.tasks.base import Example, Task

TRAIN_CONFIG = ArithConfig()  # what `--data arith` trains on


class Arith(Task):
    name = "arith"
    grader = "numeric"
    instruction = ""  # the question alone, as in the training traces
    train_config = TRAIN_CONFIG

    def __init__(self, config: ArithConfig | None = None):
        self.config = config or replace(self.train_config, seed=self.train_config.seed + 1, count=1000)

    def load(self, limit: int | None = None) -> list[Example]:
        seen = {t["question"] for t in arith_traces(self.train_config)}
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


class ArithMul(Arith):
    """Held-out products of 1-2 digit numbers (`arith-mul`'s kind): harder for a small model
    than sums (each partial product is a memorised fact), so sampling more often helps."""

    name = "arith-mul"
    train_config = MUL_CONFIG


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
