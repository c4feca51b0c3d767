"""Procedural arithmetic with exact step-by-step traces: a task a small model learns on a CPU,
where a longer trace really is needed for the answer (one line per column or partial product).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from thinkscale import ThinkscaleError


@dataclass
class ArithConfig:
    op: str = "add"  # add | mul
    min_digits: int = 1
    max_digits: int = 3
    count: int = 1000
    seed: int = 0

    def validate(self) -> None:
        if self.op not in ("add", "mul"):
            raise ThinkscaleError(f"arith op must be add or mul, got '{self.op}'")
        if not 1 <= self.min_digits <= self.max_digits:
            raise ThinkscaleError(
                f"arith digits: need 1 <= min ({self.min_digits}) <= max ({self.max_digits})"
            )
        if self.count < 1:
            raise ThinkscaleError(f"arith count must be >= 1, got {self.count}")


MUL_CONFIG = ArithConfig(op="mul", min_digits=1, max_digits=2)  # the `arith-mul` corpus


def addition_trace(a: int, b: int) -> str:
    """Column by column, least significant first: `d1+d2+carry=s, write d carry c`."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    carry, lines = 0, []
    for i in range(max(len(xs), len(ys))):
        da = int(xs[i]) if i < len(xs) else 0
        db = int(ys[i]) if i < len(ys) else 0
        s = da + db + carry
        lines.append(f"{da}+{db}+{carry}={s}, write {s % 10} carry {s // 10}")
        carry = s // 10
    if carry:
        lines.append(f"write the final carry {carry}")
    lines.append(f"so {a}+{b}={a + b}")
    return "\n".join(lines)


def multiplication_trace(a: int, b: int) -> str:
    """One partial product per digit of b (least significant first), then their sum."""
    lines, partials = [], []
    for i, d in enumerate(str(b)[::-1]):
        p = a * int(d) * 10**i
        partials.append(p)
        lines.append(f"{a}*{d}*{10**i}={p}")
    total = 0
    for p in partials:
        lines.append(f"{total}+{p}={total + p}")
        total += p
    lines.append(f"so {a}*{b}={a * b}")
    return "\n".join(lines)


def arith_traces(cfg: ArithConfig) -> list[dict]:
    """Seeded problems with traces; digit counts drawn uniformly so trace lengths vary smoothly."""
    cfg.validate()
    rng = random.Random(cfg.seed)
    sym, trace = ("+", addition_trace) if cfg.op == "add" else ("*", multiplication_trace)
    rows = []
    for i in range(cfg.count):
        a = rng.randint(0, 10 ** rng.randint(cfg.min_digits, cfg.max_digits) - 1)
        b = rng.randint(0, 10 ** rng.randint(cfg.min_digits, cfg.max_digits) - 1)
        value = a + b if cfg.op == "add" else a * b
        rows.append({
            "id": f"arith-{cfg.op}-{cfg.seed}-{i}",
            "question": f"What is {a} {sym} {b}?",
            "thinking": trace(a, b),
            "answer": str(value),
            "source": "arith",
            "domain": "arithmetic",
        })  # fmt: skip
    return rows


# Mixed difficulty (Thinkless' setting on arithmetic): `easy` questions are one-digit sums, which
# a short answer gets right; `hard` ones are 3-4 digit sums, where the column trace is needed.
MIXED_HARD = ArithConfig(op="add", min_digits=3, max_digits=4, count=230, seed=0)
MIXED_EASY_HELD_OUT = 30  # of the 100 one-digit sums, never trained on (the arith-easy task)


def mixed_arith(split: str = "train") -> list[dict]:
    """`train`: 70 easy + 230 hard traces (the built-in corpus `arith-mixed`), each with its
    `difficulty`; `test`: the 30 held-out easy sums and 200 hard ones not in train."""
    pairs = [(a, b) for a in range(10) for b in range(10)]
    random.Random(MIXED_HARD.seed).shuffle(pairs)
    easy_pairs = pairs[MIXED_EASY_HELD_OUT:] if split == "train" else pairs[:MIXED_EASY_HELD_OUT]
    easy = [{"id": f"arith-easy-{a}-{b}", "question": f"What is {a} + {b}?", "thinking": addition_trace(a, b),
             "answer": str(a + b), "source": "arith", "domain": "arithmetic", "difficulty": "easy"}
            for a, b in easy_pairs]  # fmt: skip
    hard = arith_traces(MIXED_HARD)
    if split != "train":
        seen = {t["question"] for t in hard}
        test = arith_traces(ArithConfig("add", 3, 4, count=400, seed=MIXED_HARD.seed + 1))
        hard = [t for t in test if t["question"] not in seen][:200]
    hard = [{**t, "id": t["id"].replace("arith-add", "arith-hard"), "difficulty": "hard"} for t in hard]
    return easy + hard
