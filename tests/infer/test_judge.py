"""The local judge on a scripted tiny model: verdict parsing, both verdicts kept, agreement,
resume without asking again."""

from __future__ import annotations

import json

import pytest

from tests.infer.test_engine import Scripted
from thinkscale.eval.evaluate import evaluate_path
from thinkscale.infer.judge import judge_path, judge_results, parse_verdict
from thinkscale.records import load_records


@pytest.mark.parametrize("reply,verdict", [
    ("yes", True), ("Yes.", True), ("No", False), ("no, it is not", False), ("Correct", True),
    ("incorrect", False), ("The answer is yes", True), ("maybe", None), ("", None), ("Noon", None),
])  # fmt: skip
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def yes_sayer(tiny_model, tokenizer):
    y, e, s = tokenizer.encode("yes", add_special_tokens=False)
    script = {i: y for i in range(len(tokenizer))}
    return Scripted(tiny_model, {**script, y: e, e: s, s: tokenizer.eos_token_id})


def test_judge_records_both_verdicts_and_agreement(tmp_path, tiny_model, tokenizer):
    recs = [
        {"task": "fqa", "id": "a", "question": "Capital of Australia?", "gold": ["Canberra"], "pred": "Canberra",
         "correct": True, "grader": "qa", "answer": "Canberra"},
        {"task": "fqa", "id": "b", "question": "Capital of Canada?", "gold": ["Ottawa"], "pred": "Toronto",
         "correct": False, "grader": "qa", "answer": "Toronto"},
        {"task": "fqa", "id": "c", "question": "Capital of Kenya?", "gold": ["Nairobi"], "pred": None,
         "correct": False, "grader": "qa", "answer": ""},
    ]  # fmt: skip
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in recs))
    model = yes_sayer(tiny_model, tokenizer)
    assert judge_results(results, "judge-x", model=model, tokenizer=tokenizer, progress=False) == 2
    judged = load_records(results)
    assert [r["judge_correct"] for r in judged] == [True, True, False]  # no prediction: never asked
    assert [r["correct"] for r in judged] == [True, False, False]  # the rule-based verdict is kept
    assert all(r["judge_model"] == "judge-x" for r in judged)
    metrics, _ = evaluate_path(results)
    run = metrics["runs"][0]
    assert run["judged"] == 3 and run["judge_accuracy"] == pytest.approx(2 / 3)
    assert run["judge_agreement"] == pytest.approx(2 / 3) and run["em"] == pytest.approx(1 / 3)
    assert run["f1"] == pytest.approx(1 / 3)  # filled in by eval for records made elsewhere
    log = judge_path(results).read_text().splitlines()
    assert len(log) == 2 and json.loads(log[0])["reply"] == "yes"
    assert judge_results(results, "judge-x", model=model, tokenizer=tokenizer, progress=False) == 0  # resumed
    assert len(judge_path(results).read_text().splitlines()) == 2
