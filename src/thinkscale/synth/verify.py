"""Which sampled solutions a round keeps: pure functions of graded records, so every rule is
tested on scripted outputs.

- gold: a sample is verified when the grader accepts its answer against the question's gold.
- vote: self-consistency for unlabelled questions. The samples' answers are grouped by the
  grader's equivalence; when the largest group holds at least `min_agreement` of ALL the samples
  (a sample without an answer counts against agreement), that group's samples are verified.
- vote+check: vote, then the model is asked whether each verified solution is right; only those
  it confirms stay (`check_prompt`, `parse_verdict`).
- self-correction of a question with nothing verified: `retry_prompt` shows the failed attempt;
  `hint_prompt` gives the gold answer (STaR's rationalization), and such a trace is kept only when
  it reaches that answer. Kept traces are trained on the ORIGINAL question (no hint, no attempt).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

VERIFIERS = ("gold", "vote", "vote+check")
CORRECTIONS = ("hint", "retry", "off")
EqualFn = Callable[[str, str], bool]


def by_question(records: list[dict]) -> dict[str, list[dict]]:
    """Records per question id, in sample order."""
    out: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        out[str(r["id"])].append(r)
    return {q: sorted(rs, key=lambda r: r.get("sample", 0)) for q, rs in out.items()}


def verify_gold(samples: list[dict]) -> tuple[list[dict], str | None]:
    """(verified samples, why none were)."""
    kept = [r for r in samples if r.get("correct")]
    return kept, None if kept else "wrong"


def verify_vote(samples: list[dict], min_agreement: float, equal: EqualFn) -> tuple[list[dict], str | None]:
    """(the majority group's samples when it holds >= min_agreement of all samples, why not)."""
    from thinkscale.eval.metrics import group_answers

    groups = group_answers([r.get("pred") for r in samples], equal)
    counts: dict[int, int] = defaultdict(int)
    for g in groups:
        if g is not None:
            counts[g] += 1
    if not counts:
        return [], "no_answer"
    best = max(counts.values())
    winner = min(g for g, c in counts.items() if c == best)  # a tie: the answer seen first
    if best / len(samples) < min_agreement:
        return [], "no_majority"
    return [r for r, g in zip(samples, groups) if g == winner], None


def check_prompt(question: str, thinking: str, answer: str) -> str:
    """vote+check: the model judges a solution of its own (answered yes/no)."""
    return (f"Question: {question}\n\nProposed solution:\n{thinking.strip()}\nFinal answer: {answer.strip()}\n\n"
            "Is the proposed solution correct? Answer yes or no.")  # fmt: skip


def retry_prompt(question: str, thinking: str, answer: str) -> str:
    return (f"{question}\n\nAn earlier attempt, which may be wrong:\n{thinking.strip()}\nAnswer: {answer.strip()}\n\n"
            "Check it and solve the problem again.")  # fmt: skip


def hint_prompt(question: str, gold: str) -> str:
    return f"{question}\n(The correct answer is {gold}. Explain step by step how to reach it.)"


def to_trace(record: dict, question: str, qid: str, round_no: int, how: str) -> dict:
    """A kept sample as a training trace on the original question; its answer is the extracted
    prediction (what the grader compared), as the seed traces' answers are."""
    return {
        "id": f"synth-r{round_no}-{qid}",
        "question": question,
        "thinking": (record.get("thinking") or "").strip(),
        "answer": str(record.get("pred") or record.get("answer") or "").strip(),
        "source": "synth",
        "synth_question": qid,
        "round": round_no,
        "verified_by": how,
        "rationalized": how == "hint",
        "sample": record.get("sample", 0),
    }
