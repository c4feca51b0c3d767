"""DoT data: a question, a chain of thoughts, an answer.

Multiplication follows the implicit-CoT format (Deng et al.) that DoT trains on: digits are
written least-significant first and space-separated; the chain is the partial products, each
after the first followed by the running sum in parentheses; the last running sum is the answer:

    1 3 3 4 * 3 3 8 2 || 3 9 9 2 1 + 0 3 9 9 2 1 ( 3 2 9 2 6 3 ) + ... #### 3 2 7 9 8 6 2 2

GSM8K comes from the spine's task: its rationale lines are the thoughts, `#### N` the answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from thinkscale import ThinkscaleError

SRC_SEP = "||"  # between the question (never noised) and the chain
ANSWER_SEP = "####"  # between the chain and the answer
# between thoughts (DoT-MP generates one thought per pass): implicit-CoT's `+` for
# multiplication; GSM8K's rationales contain `+`, so their thoughts get a token of their own
MUL_THOUGHT_SEP = "+"
TEXT_THOUGHT_SEP = "<thought>"


@dataclass
class DotExample:
    id: str
    question: str
    thoughts: list[str]
    answer: str
    gold: str  # what the answer is graded against (the plain number for multiplication)
    sep: str = MUL_THOUGHT_SEP
    meta: dict = field(default_factory=dict)

    def target(self) -> str:
        """The text the model denoises: the chain, then the answer."""
        return f" {self.sep} ".join(self.thoughts) + f" {ANSWER_SEP} {self.answer}"


def digits_reversed(n: int, width: int) -> str:
    return " ".join(str(n).zfill(width)[::-1])


def multiplication_example(a: int, b: int, digits_a: int, digits_b: int) -> DotExample:
    """One implicit-CoT multiplication example; `gold` is the plain product."""
    b_digits = [int(d) for d in str(b).zfill(digits_b)[::-1]]
    thoughts, running = [], 0
    for i, d in enumerate(b_digits):
        partial = a * d * 10**i
        running += partial
        width = digits_a + 1 + i
        thought = digits_reversed(partial, width)
        if i > 0:  # the running sum after adding this partial product
            thought += f" ( {digits_reversed(running, width)} )"  # running < 10**width
        thoughts.append(thought)
    answer = digits_reversed(a * b, digits_a + digits_b)
    question = f"{digits_reversed(a, digits_a)} * {digits_reversed(b, digits_b)}"
    return DotExample(f"mul{digits_a}x{digits_b}-{a}-{b}", question, thoughts, answer, str(a * b))


def multiplication(digits: int, count: int, seed: int, exclude: set[str] | None = None) -> list[DotExample]:
    """`count` distinct seeded problems with two `digits`-digit operands (leading digit non-zero),
    none of whose questions is in `exclude` (keeps a test split out of training)."""
    rng = random.Random(seed)
    lo, hi = 10 ** (digits - 1), 10**digits - 1
    if count > (hi - lo + 1) ** 2 // 2:
        raise ThinkscaleError(f"cannot draw {count} distinct {digits}x{digits} problems")
    seen, out = set(exclude or ()), []
    while len(out) < count:
        ex = multiplication_example(rng.randint(lo, hi), rng.randint(lo, hi), digits, digits)
        if ex.question not in seen:
            seen.add(ex.question)
            out.append(ex)
    return out


def parse_reversed_number(text: str) -> str | None:
    """`3 2 7 9` (least significant first) -> `9723`; None when it is not digits."""
    tokens = text.split()
    if not tokens or not all(t.isdigit() and len(t) == 1 for t in tokens):
        return None
    return str(int("".join(tokens[::-1])))


def gsm8k(split: str, limit: int | None = None) -> list[DotExample]:
    """GSM8K from the spine's task: rationale lines (calculator annotations removed) as thoughts."""
    from thinkscale.tasks.builtin import GSM8K

    out = []
    for ex in GSM8K(split).load(limit):
        rationale = ex.meta["solution"].split("####")[0]
        rationale = re.sub(r"<<[^>]*>>", "", rationale)  # GSM8K's calculator annotations
        thoughts = [line.strip() for line in rationale.splitlines() if line.strip()]
        out.append(DotExample(ex.id, ex.question, thoughts, ex.gold, ex.gold, TEXT_THOUGHT_SEP))
    return out


TASKS = ("mul4x4", "mul5x5", "gsm8k")  # the paper's; any mulNxN (N = 1..9) works too


TEST_POOL, TEST_SEED = 1000, 10_000


def check_task(task: str) -> None:
    if task != "gsm8k" and not re.fullmatch(r"mul([1-9])x\1", task):
        raise ThinkscaleError(f"unknown DoT task '{task}' (choose from {', '.join(TASKS)}, or mulNxN)")


def load_task(task: str, split: str, count: int | None = None, seed: int = 0) -> list[DotExample]:
    """Train or test examples of a DoT task; multiplication test problems never appear in train."""
    check_task(task)
    if task.startswith("mul"):
        digits = int(task[3])
        # one fixed held-out pool per size, whatever the training seed
        pool = min(TEST_POOL, (9 * 10 ** (digits - 1)) ** 2 // 4)
        test = multiplication(digits, pool, seed=TEST_SEED)
        if split == "test":
            if count is not None and count > pool:
                raise ThinkscaleError(f"{task} has {pool} held-out test problems; asked for {count}")
            return test[:count]
        return multiplication(digits, count or 100_000, seed=seed, exclude={e.question for e in test})
    return gsm8k(split, count)


def trace_examples(source: str, limit: int | None = None) -> list[DotExample]:
    """Traces (a file or built-in corpus: question, thinking, answer) as DoT examples: each
    non-empty thinking line is a thought (how `thinkscale synth` feeds its data to DoT)."""
    from thinkscale.data.traces import load_traces

    return [
        DotExample(str(t["id"]), t["question"], [x.strip() for x in t["thinking"].splitlines() if x.strip()],
                   str(t["answer"]).strip(), str(t["answer"]).strip(), TEXT_THOUGHT_SEP)  # fmt: skip
        for t in load_traces(source, limit=limit)
    ]


def question_examples(source: str, limit: int | None = None) -> list[DotExample]:
    """Held-out questions with gold answers: a thinkscale task name (e.g. arith-mul) or a
    JSONL/parquet file of question/answer rows."""
    from thinkscale.tasks import TASKS, FileTask, get_task

    task = get_task(source) if source in TASKS else FileTask(source, grader="numeric")
    return [DotExample(ex.id, ex.question, [], "", str(ex.gold), TEXT_THOUGHT_SEP) for ex in task.load(limit)]


def is_reversed_task(task: str) -> bool:
    """Whether answers are implicit-CoT reversed digits (the mulNxN tasks)."""
    return re.fullmatch(r"mul([1-9])x\1", task) is not None


def iter_text(examples: list[DotExample]) -> Iterator[str]:
    for ex in examples:
        yield ex.question
        yield ex.target()
