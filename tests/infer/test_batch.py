"""OpenAI batch export -> (a server) -> import -> eval: the round trip, with failed lines."""

from __future__ import annotations

import json

import pytest

from thinkscale.cli import main
from thinkscale.records import load_records


def server_output(requests: list[dict], answers: dict[str, str]) -> list[dict]:
    """What an OpenAI-batch-compatible server writes back: one line per request, or an error."""
    lines = []
    for req in requests:
        cid = req["custom_id"]
        if cid in answers:
            body = {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answers[cid]}}]
            }
            lines.append(
                {
                    "id": "x",
                    "custom_id": cid,
                    "response": {"status_code": 200, "body": body},
                    "error": None,
                }
            )
        else:
            lines.append(
                {
                    "id": "x",
                    "custom_id": cid,
                    "response": None,
                    "error": {"code": "timeout", "message": "t"},
                }
            )
    return lines


def test_export_import_round_trip(tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text(
        '{"uid": "a", "q": "1+1?", "ans": "2"}\n{"uid": "b", "q": "2+3?", "ans": "5"}\n'
    )
    common = ["--data", str(data), "--question-field", "q", "--answer-field", "ans", "--id-field", "uid",
              "--grader", "numeric", "--format", "s1"]  # fmt: skip
    reqs_file = tmp_path / "requests.jsonl"
    assert main(["batch", "export", *common, "--n", "2", "--out", str(reqs_file)]) == 0
    requests = [json.loads(line) for line in reqs_file.read_text().splitlines()]
    assert [r["custom_id"] for r in requests] == ["a-rep-0", "a-rep-1", "b-rep-0", "b-rep-1"]
    assert requests[0]["url"] == "/v1/chat/completions"
    assert requests[0]["body"]["messages"][-1] == {
        "role": "assistant",
        "content": "<|im_start|>think\n",
    }
    assert requests[0]["body"]["continue_final_message"] is True

    answers = {
        "a-rep-0": "one and one\n<|im_start|>answer\nAnswer: 2",
        "a-rep-1": "<|im_start|>think\nhmm\n<|im_start|>answer\nAnswer: 3",  # a server that echoes the prefill
        "b-rep-0": "two plus three\n<|im_start|>answer\nAnswer: \\boxed{5}",
    }  # b-rep-1 fails on the server
    out_file = tmp_path / "output.jsonl"
    out_file.write_text(
        "".join(json.dumps(line) + "\n" for line in server_output(requests, answers))
    )
    results = tmp_path / "results.jsonl"
    assert (
        main(["batch", "import", str(out_file), *common, "--tokenizer", "", "--out", str(results)])
        == 0
    )
    io = capsys.readouterr()
    assert "b-rep-1" in io.err and "1 failed line" in io.out  # reported, not dropped silently
    recs = {(r["id"], r["sample"]): r for r in load_records(results)}
    assert set(recs) == {("a", 0), ("a", 1), ("b", 0)}
    assert recs[("a", 0)]["thinking"] == "one and one" and recs[("a", 0)]["correct"] is True
    assert recs[("a", 1)]["thinking"] == "hmm" and recs[("a", 1)]["correct"] is False
    assert recs[("b", 0)]["pred"] == "5" and recs[("b", 0)]["correct"] is True
    # importing again appends nothing (exactly once), and eval works on the imported records
    assert (
        main(["batch", "import", str(out_file), *common, "--tokenizer", "", "--out", str(results)])
        == 0
    )
    assert len(load_records(results)) == 3
    assert main(["eval", str(results)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["runs"][0]["accuracy"] == 2 / 3


def test_import_bad_lines(tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text('{"uid": "a", "q": "1+1?", "ans": "2"}\n')
    common = [
        "--data",
        str(data),
        "--question-field",
        "q",
        "--answer-field",
        "ans",
        "--id-field",
        "uid",
    ]
    bad = tmp_path / "out.jsonl"
    bad.write_text('{"custom_id": "a-rep-0", "response": {"body": {"choices": []}}}\n{oops\n')
    results = tmp_path / "r.jsonl"
    assert (
        main(["batch", "import", str(bad), *common, "--tokenizer", "", "--out", str(results)]) != 0
    )
    assert "out.jsonl:2: malformed JSON" in capsys.readouterr().err and not results.exists()
    bad.write_text(
        '{"custom_id": "zzz-rep-0", "response": {"body": {"choices": [{"message": {"content": "x"}}]}}}\n'
    )
    assert (
        main(["batch", "import", str(bad), *common, "--tokenizer", "", "--out", str(results)]) != 0
    )
    assert "ids not in task" in capsys.readouterr().err and not results.exists()


def test_import_where_every_line_failed(tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text('{"uid": "a", "q": "1+1?", "ans": "2"}\n')
    out = tmp_path / "out.jsonl"
    out.write_text('{"custom_id": "a-rep-0", "response": null, "error": {"code": "x"}}\n')
    results = tmp_path / "r.jsonl"
    args = ["batch", "import", str(out), "--data", str(data), "--question-field", "q", "--answer-field", "ans",
            "--id-field", "uid", "--tokenizer", "", "--out", str(results)]  # fmt: skip
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "a-rep-0" in err and "no usable line" in err and not results.exists()


def test_import_keeps_finish_reason_and_unfinished_thinking_is_no_answer(tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text('{"uid": "a", "q": "1+1?", "ans": "2"}\n')
    out = tmp_path / "out.jsonl"
    lines = [  # a completion cut by max_tokens while thinking: its "2" is not an answer
        {"custom_id": "a-rep-0", "response": {"body": {"choices": [
            {"message": {"content": "so it is 2, or"}, "finish_reason": "length"}]}}},
        {"custom_id": "a-rep-1", "response": {"body": {"choices": [
            {"message": {"content": "x\n<|im_start|>answer\nAnswer: 2"}, "finish_reason": "stop"}]}}},
    ]  # fmt: skip
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    results = tmp_path / "r.jsonl"
    args = ["batch", "import", str(out), "--data", str(data), "--question-field", "q", "--answer-field", "ans",
            "--id-field", "uid", "--grader", "numeric", "--tokenizer", "", "--out", str(results)]  # fmt: skip
    assert main(args) == 0
    recs = {r["sample"]: r for r in load_records(results)}
    assert recs[0]["finish_reason"] == "length" and recs[0]["answer"] == ""
    assert recs[0]["pred"] is None and recs[0]["correct"] is False
    assert recs[1]["finish_reason"] == "stop" and recs[1]["correct"] is True


@pytest.mark.parametrize("line,message", [
    ({"custom_id": "a-rep-0", "response": {"body": {"choices": [{"message": {"content": 7}}]}}},
     "out.jsonl:1: field 'response.body.choices[0].message.content' must be a string"),
    ({"custom_id": "a-rep-0"}, "out.jsonl:1: field 'response': missing"),
    ({"custom_id": "zzz-rep-0", "response": {"body": {"choices": [{"message": {"content": "x"}}]}}},
     "out.jsonl:1: field 'custom_id': ids not in task"),
])  # fmt: skip
def test_import_checks_the_shape_of_server_lines(tmp_path, capsys, line, message):
    data = tmp_path / "q.jsonl"
    data.write_text('{"uid": "a", "q": "1+1?", "ans": "2"}\n')
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(line) + "\n")
    results = tmp_path / "r.jsonl"
    args = ["batch", "import", str(out), "--data", str(data), "--question-field", "q", "--answer-field", "ans",
            "--id-field", "uid", "--tokenizer", "", "--out", str(results)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not results.exists()


def test_shuffled_choices_round_trip_through_a_batch(tmp_path):
    """Export and import with the same --seed see the same permutation, so the server's letter is
    graded against the gold of the options it was shown."""
    req = tmp_path / "req.jsonl"
    assert main(["batch", "export", "--task", "mmlu-stem", "--limit", "3", "--shuffle-choices", "--seed", "5",
                 "--out", str(req)]) == 0  # fmt: skip
    from thinkscale.tasks import get_task

    task = get_task("mmlu-stem")
    task.shuffle_choices, task.seed = True, 5
    golds = {e.id: e.gold for e in task.load(3)}
    lines = [json.loads(x) for x in req.read_text().splitlines()]
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps({"custom_id": r["custom_id"], "response": {"body": {"choices": [
        {"message": {"content": f"<|im_start|>answer\nAnswer: {golds[r['custom_id'].rsplit('-rep-', 1)[0]]}"},
         "finish_reason": "stop"}]}}}) + "\n" for r in lines))  # fmt: skip
    res = tmp_path / "r.jsonl"
    assert main(["batch", "import", str(out), "--task", "mmlu-stem", "--shuffle-choices", "--seed", "5",
                 "--tokenizer", "", "--out", str(res)]) == 0  # fmt: skip
    recs = [json.loads(x) for x in res.read_text().splitlines()]
    assert len(recs) == 3 and all(r["correct"] for r in recs) and all("choice_order" in r for r in recs)


def test_hybrid_batch_round_trip_records_each_samples_mode(tmp_path):
    """--format hybrid: auto pre-fills nothing and asks the server to keep the control token; the
    import records the mode each sample took (from its leading control token) and the one it ran
    under, so eval splits by mode as for `generate`. --mode think pre-fills <think>."""
    data = tmp_path / "q.jsonl"
    data.write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n{"id": "b", "question": "2+3?", "answer": "5"}\n')
    common = ["--data", str(data), "--id-field", "id", "--grader", "numeric", "--format", "hybrid"]
    reqs_file = tmp_path / "requests.jsonl"
    assert main(["batch", "export", *common, "--n", "2", "--out", str(reqs_file)]) == 0
    requests = [json.loads(line) for line in reqs_file.read_text().splitlines()]
    assert all(r["body"]["messages"][-1]["role"] == "user" for r in requests)  # auto: the model chooses
    assert all(r["body"]["skip_special_tokens"] is False for r in requests)
    answers = {"a-rep-0": "<short>\n2", "a-rep-1": "<think>\n1+1=2\n</think>\n\n2", "b-rep-0": "5",
               "b-rep-1": "<short>\n6"}  # fmt: skip
    out_file = tmp_path / "output.jsonl"
    out_file.write_text("".join(json.dumps(line) + "\n" for line in server_output(requests, answers)))
    results = tmp_path / "results.jsonl"
    assert main(["batch", "import", str(out_file), *common, "--tokenizer", "", "--out", str(results)]) == 0
    recs = {(r["id"], r["sample"]): r for r in load_records(results)}
    assert {k: (r["mode"], r["requested_mode"], r["correct"]) for k, r in recs.items()} == {
        ("a", 0): ("short", "auto", True), ("a", 1): ("think", "auto", True),
        ("b", 0): ("none", "auto", True), ("b", 1): ("short", "auto", False),
    }  # fmt: skip
    assert recs[("a", 1)]["thinking"] == "1+1=2" and recs[("a", 0)]["thinking"] == ""
    assert main(["eval", str(results)]) == 0
    run = json.loads((tmp_path / "metrics.json").read_text())["runs"][0]
    assert run["think_share"] == 1 / 4 and run["by_mode"]["short"]["accuracy"] == 1 / 2

    think_reqs = tmp_path / "think.jsonl"
    assert main(["batch", "export", *common, "--mode", "think", "--out", str(think_reqs)]) == 0
    first = json.loads(think_reqs.read_text().splitlines()[0])
    assert first["body"]["messages"][-1] == {"role": "assistant", "content": "<think>\n"}
    think_out = tmp_path / "think_out.jsonl"
    think_out.write_text("".join(json.dumps(line) + "\n" for line in server_output(
        [first], {"a-rep-0": "1+1=2\n</think>\n\n2"})))  # fmt: skip
    assert main(["batch", "import", str(think_out), *common, "--mode", "think", "--tokenizer", "",
                 "--out", str(results)]) == 0  # fmt: skip
    forced = [r for r in load_records(results) if r["requested_mode"] == "think"]
    assert [(r["mode"], r["thinking"], r["correct"]) for r in forced] == [("think", "1+1=2", True)]
    assert len(load_records(results)) == 5  # another mode is another key: appended, nothing replaced


def test_mode_without_hybrid_format_is_refused(tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n')
    out = tmp_path / "requests.jsonl"
    assert main(["batch", "export", "--data", str(data), "--format", "s1", "--mode", "short", "--out", str(out)]) != 0
    assert "--mode applies to --format hybrid" in capsys.readouterr().err and not out.exists()
