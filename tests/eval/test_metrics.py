import itertools
import random
from math import comb

import pytest

from thinkscale.eval.metrics import (
    group_answers,
    majority_correct,
    pass_at_k,
    run_metrics,
    scaling_metrics,
)


def brute_force_pass_at_k(correct: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(range(len(correct)), k))
    return sum(any(correct[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("seed", range(20))
def test_pass_at_k_matches_enumeration(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    correct = [rng.random() < 0.3 for _ in range(n)]
    for k in range(1, n + 1):
        assert pass_at_k(n, sum(correct), k) == pytest.approx(brute_force_pass_at_k(correct, k))
        assert pass_at_k(n, sum(correct), k) == pytest.approx(
            1 - comb(n - sum(correct), k) / comb(n, k)
        )


def test_pass_at_k_edges():
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 5, 1) == 1.0 and pass_at_k(5, 3, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


EQ = lambda a, b: float(a) == float(b)  # noqa: E731


def test_majority_groups_by_equivalence_not_strings():
    groups = group_answers(["0.5", "1", ".50", "0.500"], EQ)
    assert groups == [0, 1, 0, 0]
    assert majority_correct(groups, [True, False, True, True])


def test_majority_ties_go_to_first_seen_group():
    groups = group_answers(["3", "4", "4", "3"], EQ)
    assert majority_correct(groups, [True, False, False, True])  # tie 2-2: '3' was seen first
    groups = group_answers(["4", "3", "3", "4"], EQ)
    assert not majority_correct(groups, [False, True, True, False])


def test_missing_answers_do_not_vote():
    groups = group_answers([None, None, "2"], EQ)
    assert groups == [None, None, 0] and majority_correct(groups, [False, False, True])
    assert not majority_correct([None, None], [False, False])


def rec(qid, sample, correct, pred, think=10, budget=32):
    return {"task": "t", "id": qid, "sample": sample, "budget": budget, "num_ignore": 0, "correct": correct,
            "pred": pred, "thinking_tokens": think, "answer_tokens": 3, "answer": f"Answer: {pred}", "thinking": "x"}  # fmt: skip


def test_run_metrics():
    rs = [rec("a", 0, True, "1"), rec("a", 1, False, "2"), rec("a", 2, False, "2"), rec("a", 3, True, "1"),
          rec("b", 0, False, "5"), rec("b", 1, False, "6"), rec("b", 2, False, "6"), rec("b", 3, False, "7")]  # fmt: skip
    m = run_metrics(rs, EQ)
    assert m["n"] == 4 and m["questions"] == 2 and m["accuracy"] == 0.25
    assert m["pass@k"]["1"] == pytest.approx(0.25) and m["pass@k"]["4"] == 0.5
    assert m["cov@k"]["1"] == 0.5 and m["cov@k"]["2"] == 0.5
    assert m["maj@k"]["4"] == 0.5  # a: tie 1 vs 2 -> '1' first -> correct


def test_scaling_metrics():
    runs = [{"avg_thinking_tokens": 100, "accuracy": 0.1}, {"avg_thinking_tokens": 200, "accuracy": 0.3},
            {"avg_thinking_tokens": 400, "accuracy": 0.3}]  # fmt: skip
    by_run = {
        ("t", 100, 0): [
            {"budget": 100, "thinking_tokens": 100},
            {"budget": 100, "thinking_tokens": 101},
        ]
    }
    s = scaling_metrics(runs, by_run)
    assert s["control"] == 0.5 and s["performance"] == 0.3
    # slopes (per 1k tokens, in points): (0.2/100), (0.2/300), (0/200)
    assert s["scaling"] == pytest.approx((200 + 200 / 3 + 0) / 3)


def test_hybrid_metrics_on_hand_made_records():
    from thinkscale.eval.metrics import hybrid_metrics

    def rec(i, mode, correct, think, answer):
        return {"id": f"q{i}", "mode": mode, "correct": correct, "thinking_tokens": think, "answer_tokens": answer}

    records = [rec(0, "think", True, 40, 4), rec(1, "think", False, 60, 4), rec(2, "short", True, 0, 2),
               rec(3, "short", True, 0, 4), rec(4, "none", False, 0, 10)]  # fmt: skip
    m = hybrid_metrics(records)
    assert m["think_share"] == 2 / 5
    assert m["by_mode"]["think"] == {"samples": 2, "accuracy": 0.5, "avg_thinking_tokens": 50.0, "avg_total_tokens": 54.0}
    assert m["by_mode"]["short"] == {"samples": 2, "accuracy": 1.0, "avg_thinking_tokens": 0.0, "avg_total_tokens": 3.0}
    assert m["by_mode"]["none"]["samples"] == 1 and m["by_mode"]["none"]["accuracy"] == 0.0
    assert hybrid_metrics([{"id": "q", "correct": True}]) == {}  # not a hybrid model's records
