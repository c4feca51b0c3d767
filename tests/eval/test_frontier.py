"""The compute-matched frontier on hand-made records: points, costs, the Pareto set, matching."""

from __future__ import annotations

import json

import pytest

from thinkscale.eval.evaluate import evaluate
from thinkscale.eval.frontier import frontier, frontier_table, pareto
from thinkscale.eval.report import write_frontier


def rec(qid, sample, budget, correct, think, answer=2, pred=None, **extra):
    return {"task": "t", "id": qid, "sample": sample, "budget": budget, "num_ignore": 0, "gold": "1",
            "pred": pred if pred is not None else ("1" if correct else "9"), "correct": correct,
            "thinking_tokens": think, "answer_tokens": answer, "grader": "numeric", **extra}  # fmt: skip


def records():
    rs = []
    # cap 8: 1 of 4 questions right; cap 32: 3 of 4 (one sample each)
    for q, ok in enumerate([True, False, False, False]):
        rs.append(rec(q, 0, 8, ok, 8))
    for q, ok in enumerate([True, True, True, False]):
        rs.append(rec(q, 0, 32, ok, 30))
    # cap 16 with 3 samples: per question right, wrong, right for q0..q1; wrong for q2, q3
    for q in range(4):
        for s, ok in enumerate([q < 2, False, q < 2]):
            rs.append(rec(q, s, 16, ok, 14))
    # adaptive at cap 32: 3 of 4 right, 12 thinking + 6 probe tokens each
    for q, ok in enumerate([True, True, True, False]):
        rs.append(rec(q, 0, 32, ok, 12, adaptive="consistency every 4 tokens 3 agree 2", probes=2,
                      probe_tokens=6, stopped_by="adaptive"))  # fmt: skip
    return rs


def test_points_costs_and_the_pareto_set():
    m = evaluate(records())
    pts = {p["label"]: p for p in m["frontier"]["t"]}
    # sequential: a sample's thinking + answer
    assert pts["cap 8"]["tokens"] == 10 and pts["cap 8"]["accuracy"] == 0.25
    assert pts["cap 32"]["tokens"] == 32 and pts["cap 32"]["accuracy"] == 0.75
    assert pts["cap 16"]["tokens"] == 16 and pts["cap 16"]["accuracy"] == pytest.approx(4 / 12)
    # parallel: maj@k over k samples costs k times (k = 2 and the n = 3 point)
    assert pts["cap 16 maj@2"]["tokens"] == 32 and pts["cap 16 maj@3"]["tokens"] == 48
    assert pts["cap 16 maj@3"]["accuracy"] == 0.5 and pts["cap 16 maj@2"]["kind"] == "parallel"
    # adaptive: thinking + answer + probes
    ada = next(p for p in m["frontier"]["t"] if p["kind"] == "adaptive")
    assert ada["tokens"] == 12 + 2 + 6 and ada["accuracy"] == 0.75
    # Pareto: cap 8 (cheapest), cap 16 (more accurate than cap 8), adaptive (0.75 at 20 tokens);
    # cap 32 (0.75 at 32) and maj@k (0.5 at 32+) are dominated by adaptive
    front = [p["label"].split(" every")[0] for p in m["frontier"]["t"] if p["pareto"]]
    assert front == ["cap 8", "cap 16", "cap 32 consistency"]
    # matched: the cheapest cap at least as accurate as the adaptive run is cap 32
    assert ada["matched"]["budget"] == 32 and ada["matched"]["token_ratio"] == pytest.approx(20 / 32)
    assert "62% of its tokens" in frontier_table(m["frontier"])
    # the run metrics keep probe tokens apart from thinking tokens, and count them in the total
    run = next(r for r in m["runs"] if "adaptive" in r)
    assert run["avg_thinking_tokens"] == 12 and run["avg_probe_tokens"] == 6 and run["avg_total_tokens"] == 20
    assert run["stopped_by"] == {"model": 0, "cap": 0, "adaptive": 4} and run["avg_probes"] == 2
    # an adaptive run is not a point of s1's budget sweep
    assert m["tasks"]["t"]["performance"] == 0.75 and len([r for r in m["runs"] if r["budget"] == 32]) == 2


def test_pareto_keeps_ties_and_drops_the_dominated():
    pts = [{"tokens": 10, "accuracy": 0.5}, {"tokens": 10, "accuracy": 0.5}, {"tokens": 20, "accuracy": 0.5},
           {"tokens": 5, "accuracy": 0.2}, {"tokens": 30, "accuracy": 0.9}]  # fmt: skip
    assert [(p["tokens"], p["accuracy"]) for p in pareto(pts)] == [(5, 0.2), (10, 0.5), (10, 0.5), (30, 0.9)]


def test_no_matching_cap_when_adaptive_beats_them_all():
    runs = [{"task": "t", "budget": 8, "num_ignore": 0, "accuracy": 0.2, "avg_total_tokens": 9, "maj@k": {"1": 0.2}},
            {"task": "t", "budget": 8, "num_ignore": 0, "adaptive": "x", "accuracy": 0.4, "avg_total_tokens": 9,
             "maj@k": {"1": 0.4}}]  # fmt: skip
    ada = next(p for p in frontier(runs)["t"] if p["kind"] == "adaptive")
    assert ada["matched"] is None and ada["pareto"]
    assert "no cap reaches its accuracy" in frontier_table(frontier(runs))


def test_frontier_command_reads_a_directory_of_results(tmp_path):
    rs = records()
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs if "adaptive" not in r))
    (tmp_path / "adaptive.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs if "adaptive" in r))
    metrics, out = write_frontier([tmp_path])
    assert out == tmp_path
    for name in ("frontier.png", "report.html", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [p["kind"] for p in saved["frontier"]["t"]].count("adaptive") == 1
    assert "Compute-matched frontier" in (tmp_path / "report.html").read_text()
