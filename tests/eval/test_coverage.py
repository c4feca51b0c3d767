"""Coverage curves: the unbiased pass@k against brute-force enumeration, chunk coverage by hand,
the `coverage` command end to end on a tiny model (resumed, several models), bad input."""

from __future__ import annotations

import json
from itertools import combinations

import pytest

from thinkscale import ThinkscaleError
from thinkscale.cli import main
from thinkscale.eval.coverage import chunk_coverage, correct_by_question, coverage_metrics


def records(correct: dict[str, list[bool]]) -> list[dict]:
    return [{"task": "t", "id": q, "sample": s, "correct": c} for q, cs in correct.items() for s, c in enumerate(cs)]


def test_pass_at_k_equals_brute_force_over_all_k_subsets():
    correct = {"a": [True, False, False, True, False, False], "b": [False] * 6, "c": [True] * 6,
               "d": [False, False, False, False, False, True]}  # fmt: skip
    m = coverage_metrics(records(correct))
    assert m["n"] == 6 and sorted(m["pass@k"], key=int) == [str(k) for k in range(1, 7)]
    for k in range(1, 7):
        brute = sum(
            sum(any(cs[i] for i in subset) for subset in combinations(range(6), k)) / len(list(combinations(range(6), k)))
            for cs in correct.values()
        ) / len(correct)  # fmt: skip
        assert m["pass@k"][str(k)] == pytest.approx(brute, abs=1e-12), k
    assert m["pass_at_1"] == pytest.approx((2 / 6 + 0 + 1 + 1 / 6) / 4)


def test_chunk_coverage_by_hand():
    # 3 questions, 4 samples; k = 2: chunks {0,1} and {2,3}
    correct = {"a": [False, True, False, False], "b": [False, False, False, False], "c": [True, True, False, True]}
    c2 = chunk_coverage(correct, 2, 4)
    # chunk 0 covers a, c (2/3); chunk 1 covers c (1/3): mean 1/2, s.e. = std(ddof=1)/sqrt(2) = 1/6
    assert c2["chunks"] == 2 and c2["mean"] == pytest.approx(0.5) and c2["se"] == pytest.approx(1 / 6)
    c4 = chunk_coverage(correct, 4, 4)
    assert c4 == {"mean": pytest.approx(2 / 3), "se": 0.0, "chunks": 1}
    c1 = chunk_coverage(correct, 1, 4)  # per-sample accuracy, averaged over the 4 chunks
    assert c1["mean"] == pytest.approx((2 + 1 + 0 + 1) / 3 / 4)
    # samples are put in sample order, whatever the record order
    shuffled = list(reversed(records(correct)))
    assert correct_by_question(shuffled) == correct


def test_ungraded_records_and_ks_above_n_are_errors():
    with pytest.raises(ThinkscaleError, match="not graded"):
        coverage_metrics([{"task": "t", "id": "a", "sample": 0, "correct": None}])
    with pytest.raises(ThinkscaleError, match="above n = 2"):
        coverage_metrics(records({"a": [True, False]}), ks=[4, 8])


def test_coverage_command_two_models_resumes(tmp_path, tiny_checkpoint):
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(3)))
    out = tmp_path / "cov"
    other = tmp_path / "other" / "model"  # a second model: named by its run folder
    import shutil

    shutil.copytree(tiny_checkpoint, other)
    cmd = ["coverage", "--data", str(q), "--model", str(tiny_checkpoint), str(other), "--n", "4", "--budget", "4",
           "--max-answer-tokens", "3", "--ks", "1", "2", "4", "--out", str(out)]  # fmt: skip
    assert main(cmd) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics) == sorted([tiny_checkpoint.name, "other"])
    for m in metrics.values():
        assert m["n"] == 4 and m["questions"] == 3 and sorted(m["chunk_coverage"]) == ["1", "2", "4"]
        assert len(m["pass@k"]) == 4
    assert (out / "coverage.png").stat().st_size > 0
    lines = (out / "other" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(x)["temperature"] == 1.0 for x in lines)
    before = (out / "other" / "results.jsonl").stat().st_mtime_ns
    assert main(cmd) == 0  # resumed: nothing sampled again
    assert (out / "other" / "results.jsonl").stat().st_mtime_ns == before
    # an earlier results file joins as one more line
    assert main([*cmd[:-2], "--results", str(out / "other" / "results.jsonl"), "--out", str(tmp_path / "c2")]) == 0
    assert len(json.loads((tmp_path / "c2" / "metrics.json").read_text())) == 3


@pytest.mark.parametrize("flags,msg", [
    (["--temperature", "0"], "--temperature must be > 0"),
    (["--ks", "0"], "--ks values must be >= 1"),
    (["--results", "nope.jsonl"], "nope.jsonl: no such results file"),
])  # fmt: skip
def test_bad_coverage_flags(tmp_path, capsys, tiny_checkpoint, flags, msg):
    rc = main(["coverage", "--task", "arith", "--model", str(tiny_checkpoint), *flags, "--out", str(tmp_path / "o")])
    assert rc == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
