"""The synth loop: verification rules on scripted outputs, self-correction, a 2-round run on a tiny
model (every file, a planted eval question never kept, SIGKILL in round 2's sampling resumes to
the same data), changed settings refused, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thinkscale import ThinkscaleError
from thinkscale.synth.loop import Loop, SynthConfig, synth
from thinkscale.synth.verify import verify_gold, verify_vote
from thinkscale.tasks.grading import numeric_equal


def rec(q: str, s: int, pred: str | None, correct: bool | None = None, thinking: str = "t") -> dict:
    return {"task": "samples", "id": q, "sample": s, "pred": pred, "answer": pred or "", "thinking": thinking,
            "correct": correct}  # fmt: skip


def test_gold_keeps_the_correct_samples():
    rs = [rec("a", 0, "3", False), rec("a", 1, "7", True), rec("a", 2, "7", True)]
    assert verify_gold(rs) == ([rs[1], rs[2]], None)
    assert verify_gold(rs[:1]) == ([], "wrong")


@pytest.mark.parametrize("preds,min_agreement,kept,why", [
    (["7", "7", "7", "3"], 0.75, [0, 1, 2], None),          # 3/4 agree: at the threshold
    (["7", "7", "7", "3"], 0.8, [], "no_majority"),         # below it
    (["7", "7.0", "07", "3"], 0.75, [0, 1, 2], None),       # the grader's equivalence groups answers
    (["7", "7", None, None], 0.75, [], "no_majority"),      # no answer counts against agreement
    ([None, None, None, None], 0.5, [], "no_answer"),
    (["3", "7", "3", "7"], 0.5, [0, 2], None),              # a tie: the answer seen first
])  # fmt: skip
def test_vote(preds, min_agreement, kept, why):
    rs = [rec("a", i, p) for i, p in enumerate(preds)]
    got, reason = verify_vote(rs, min_agreement, numeric_equal)
    assert got == [rs[i] for i in kept] and reason == why


class ScriptedLoop(Loop):
    """The loop with canned engine outputs: `_generate` answers from `script(path_name, id, prompt, sample)`."""

    def __init__(self, cfg, out, script):
        super().__init__(cfg, out, progress=False)
        self.script, self.calls = script, []

    def _generate(self, model, prompts, path, n, greedy=False, fmt=None, max_answer_tokens=None):
        self.calls.append((path.name, [p for _, p, _ in prompts], n))
        out = []
        for qid, prompt, gold in prompts:
            for s in range(n):
                pred = self.script(path.name, qid, prompt, s)
                out.append(rec(qid, s, pred, None if gold is None else pred == gold, thinking=f"{path.name} {prompt}"))
        return out


def questions(tmp_path, rows) -> str:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_vote_and_check_keep_only_confirmed_majorities(tmp_path):
    qs = questions(tmp_path, [{"id": "a", "question": "1+6?"}, {"id": "b", "question": "2+2?"},
                              {"id": "c", "question": "5+5?"}])  # fmt: skip
    answers = {"a": ["7", "7", "7", "7"], "b": ["4", "4", "4", "4"], "c": ["10", "3", "9", "1"]}

    def script(name, qid, prompt, s):
        if name == "checks.jsonl":  # the model confirms a's solutions, not b's
            return "yes" if "1+6?" in prompt else "no"
        return answers[qid][s]

    cfg = SynthConfig(questions=qs, verify="vote+check", samples=4, min_agreement=0.75)
    loop = ScriptedLoop(cfg, tmp_path / "o", script)
    samples = {q: [rec(q, s, answers[q][s]) for s in range(4)] for q in answers}
    verified, reasons = loop._verify(samples, tmp_path / "o" / "checks.jsonl", "m")
    assert set(verified) == {"a"} and verified["a"][1] == "vote+check"
    assert reasons == {"b": "check_rejected", "c": "no_majority"}
    checked = next(prompts for name, prompts, _ in loop.calls if name == "checks.jsonl")
    assert len(checked) == 8  # every majority solution of a and b was shown, none of c


def test_hint_keeps_only_rationalizations_that_reach_the_hinted_answer(tmp_path):
    qs = questions(tmp_path, [{"id": "a", "question": "1+6?", "answer": "7"}, {"id": "b", "question": "2+2?", "answer": "4"}])

    def script(name, qid, prompt, s):
        if name == "corrections.jsonl":
            assert "The correct answer is" in prompt
            return "7" if qid == "a" else "5"  # b's rationalization misses the hint
        return "0"

    cfg = SynthConfig(questions=qs, verify="gold", self_correct="hint", samples=2)
    loop = ScriptedLoop(cfg, tmp_path / "o", script)
    samples = {q: [rec(q, s, "0", False) for s in range(2)] for q in ("a", "b")}
    verified, reasons = loop._verify(samples, tmp_path / "c.jsonl", "m")
    assert not verified and reasons == {"a": "wrong", "b": "wrong"}
    corrected = loop._correct(samples, verified, reasons, tmp_path, "m")
    assert set(corrected) == {"a"} and corrected["a"][1] == "hint"
    from thinkscale.synth.verify import to_trace

    trace = to_trace(corrected["a"][0], "1+6?", "a", 1, "hint")
    assert trace["rationalized"] is True and trace["question"] == "1+6?"  # trained without the hint


def test_retry_shows_the_failed_attempt_and_votes_again(tmp_path):
    qs = questions(tmp_path, [{"id": "a", "question": "1+6?"}])

    def script(name, qid, prompt, s):
        if name == "corrections.jsonl":
            assert "An earlier attempt" in prompt and "Answer: 1" in prompt
            return "7"
        return str(s + 1)  # 1, 2, 3, 4: no majority

    loop = ScriptedLoop(SynthConfig(questions=qs, verify="vote", self_correct="retry", samples=4), tmp_path, script)
    samples = {"a": [rec("a", s, str(s + 1)) for s in range(4)]}
    verified, reasons = loop._verify(samples, tmp_path / "c.jsonl", "m")
    corrected = loop._correct(samples, verified, reasons, tmp_path, "m")
    assert reasons == {"a": "no_majority"} and corrected["a"][1] == "retry" and corrected["a"][0]["pred"] == "7"


# -- a real run on a tiny model ---------------------------------------------------------------------


def planted_question() -> str:
    from thinkscale.tasks import get_task

    return get_task("gsm8k").load(limit=1)[0].question


def write_run_inputs(tmp_path: Path) -> tuple[Path, Path]:
    seed = tmp_path / "seed.jsonl"
    rows = [{"id": f"s{i}", "question": f"What is {i} plus {7 - i} today?", "thinking": "add them up so it is 7",
             "answer": "7"} for i in range(8)]  # fmt: skip
    rows.append({"id": "planted-seed", "question": planted_question(), "thinking": "add them up so it is 7", "answer": "7"})
    seed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rows = [{"id": f"q{i}", "question": f"What is {i % 7} plus {7 - i % 7} now?", "answer": "7"} for i in range(24)]
    rows += [{"id": f"h{i}", "question": f"What is {i} plus {i} here?", "answer": str(2 * i + 50)} for i in range(24)]
    rows.append({"id": "planted", "question": planted_question(), "answer": "7"})
    qs = tmp_path / "questions.jsonl"
    qs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return seed, qs


def run_flags(seed: Path, qs: Path, model: Path) -> list[str]:
    return ["synth", "--seed-data", str(seed), "--questions", str(qs), "--model", str(model), "--rounds", "2",
            "--samples", "2", "--verify", "gold", "--budget", "12", "--max-answer-tokens", "3",
            "--gen-batch-size", "2", "--max-steps", "30", "--learning-rate", "1e-2", "--batch-size", "8",
            "--micro-batch-size", "8", "--save-steps", "10", "--eval-task", "none", "--dtype", "float32"]  # fmt: skip


def test_two_rounds_on_a_tiny_model_resume_after_sigkill(tmp_path, tiny_checkpoint):
    seed, qs = write_run_inputs(tmp_path)
    cmd = [sys.executable, "-m", "thinkscale.cli", *run_flags(seed, qs, tiny_checkpoint)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight = tmp_path / "straight"
    done = subprocess.run([*cmd, "--out", str(straight)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("synth_run.json", "synth.json", "synth.png", "round-0/data.jsonl", "round-0/model/config.json",
                 "round-0/metrics.json", "round-1/samples.jsonl", "round-1/candidates.jsonl", "round-1/data.jsonl",
                 "round-1/funnel.json", "round-1/model/config.json", "round-1/metrics.json", "round-2/data.jsonl",
                 "round-2/metrics.json"):  # fmt: skip
        assert (straight / name).exists(), name
    assert not list(straight.glob("round-*/model/checkpoints"))  # a finished round's checkpoints are removed
    report = json.loads((straight / "synth.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2]
    f1 = json.loads((straight / "round-1" / "funnel.json").read_text())
    assert f1["questions_open"] == 49 and f1["sampled"] == 98
    data1 = [json.loads(x) for x in (straight / "round-1" / "data.jsonl").read_text().splitlines()]
    new = [d for d in data1 if d.get("round") == 1]
    assert new, "the trained tiny model should solve some 7-questions"  # the loop really keeps traces
    assert all(d["answer"] == "7" and d["synth_question"].startswith("q") for d in new)  # only gold-verified ones
    assert f1["kept"] == len(new) and f1["verified"] >= len(new)
    # the GSM8K test question planted in the seed and in the questions never reaches any data
    assert json.loads((straight / "round-0" / "funnel.json").read_text())["dropped"] == {"contaminated:gsm8k": 1}
    planted = planted_question()
    for r in (0, 1, 2):
        rows = [json.loads(x) for x in (straight / f"round-{r}" / "data.jsonl").read_text().splitlines()]
        assert rows and planted not in {d["question"] for d in rows}
    f2 = json.loads((straight / "round-2" / "funnel.json").read_text())
    assert f2["questions_open"] == 49 - len(new)  # solved questions are not sampled again

    # kill in the middle of round 2's sampling, then resume with the same flags
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = out / "round-2" / "samples.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and not (samples.exists() and samples.read_text().count("\n") >= 4):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = samples.read_text().count("\n")
    assert 0 < partial < 2 * f2["questions_open"]  # really killed mid-way
    again = subprocess.run([*cmd, "--out", str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    key = lambda r: (r["id"], r["sample"])  # noqa: E731
    a = sorted((json.loads(x) for x in (straight / "round-2" / "samples.jsonl").read_text().splitlines()), key=key)
    b = sorted((json.loads(x) for x in samples.read_text().splitlines()), key=key)
    assert [key(r) for r in a] == [key(r) for r in b]  # every sample exactly once
    assert [r["answer"] for r in a] == [r["answer"] for r in b]
    assert (straight / "round-2" / "data.jsonl").read_text() == (out / "round-2" / "data.jsonl").read_text()
    # other settings on the same folder: refused
    other = subprocess.run([*cmd, "--out", str(out), "--samples", "3"], env=env, capture_output=True, text=True)
    assert other.returncode == 2 and "different settings (samples)" in other.stderr


def test_bad_input_writes_nothing(tmp_path, tiny_checkpoint):
    qs = questions(tmp_path, [{"id": "a", "question": "1+6?"}])
    out = tmp_path / "o"
    with pytest.raises(ThinkscaleError, match=r"q.jsonl:1: missing field 'answer' \(--verify gold needs a gold answer\)"):
        synth(SynthConfig(questions=qs, verify="gold", model=str(tiny_checkpoint)), out)
    with pytest.raises(ThinkscaleError, match="--rounds must be >= 1"):
        synth(SynthConfig(questions=qs, rounds=0), out)
    with pytest.raises(ThinkscaleError, match="--verify vote needs --samples >= 2"):
        synth(SynthConfig(questions=qs, samples=1), out)
    assert not out.exists()


def test_dot_on_a_rounds_data_reports_held_out_accuracy(tmp_path):
    from thinkscale.data.arith import MUL_CONFIG, arith_traces

    qs = questions(tmp_path, [{"id": "a", "question": "What is 2 * 3?"}])
    folder = tmp_path / "round-1"
    folder.mkdir()
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in arith_traces(MUL_CONFIG)[:32]))
    cfg = SynthConfig(questions=qs, dot=True, dot_train_seconds=2.0, dot_steps=2, eval_limit=4)
    m = Loop(cfg, tmp_path, progress=False)._dot(folder)
    assert 0 <= m["dot_accuracy"] <= 1 and m["dot_train_seconds"] == 2.0
    recs = [json.loads(x) for x in (folder / "dot-eval" / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and {r["task"] for r in recs} == {"arith-mul"}
    assert (folder / "dot" / "dot.json").exists()
    with pytest.raises(ThinkscaleError, match="--dot reports held-out accuracy"):
        SynthConfig(questions=qs, dot=True, eval_task="none").validate()
