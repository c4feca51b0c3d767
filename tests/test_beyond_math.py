"""The fs1 / GPQA command lines end to end on the tiny checkpoint: qa with sources, choice with
shuffled options, the custom format from flags and from a YAML config."""

from __future__ import annotations

import json

from thinkscale.cli import main
from thinkscale.records import load_records


def test_qa_sweep_with_source_filter(tmp_path, capsys, tiny_checkpoint):
    data = tmp_path / "fs1_test.jsonl"
    rows = [{"question": f"Who is {i}?", "answers": [f"Person {i}", f"P{i}"], "source": src}
            for i, src in enumerate(["ComplexWebQuestions", "SimpleQA", "ComplexWebQuestions"])]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "fs1"
    assert main(["sweep", "--data", str(data), "--answer-field", "answers", "--grader", "qa", "--source-field", "source",
                 "--source-filter", "ComplexWebQuestions", "--budgets", "4", "8", "--max-answer-tokens", "3",
                 "--model", str(tiny_checkpoint), "--out", str(out)]) == 0  # fmt: skip
    recs = load_records(out / "results.jsonl")
    assert len(recs) == 4 and {r["source"] for r in recs} == {"ComplexWebQuestions"}
    assert all(r["grader"] == "qa" and 0 <= r["f1"] <= 1 and r["gold"][1].startswith("P") for r in recs)
    metrics = json.loads((out / "metrics.json").read_text())
    assert all({"em", "f1"} <= set(run) for run in metrics["runs"])
    assert "EM" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert "<th>em</th>" in html and "<th>f1</th>" in html and "<th>chance</th>" not in html


def test_choice_generate_with_shuffled_options(tmp_path, tiny_checkpoint):
    data = tmp_path / "gpqa.jsonl"
    rows = [{"question": f"Q{i}?", "options": ["alpha", "beta", "gamma", "delta"], "correct": "gamma"} for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.jsonl"
    argv = ["generate", "--data", str(data), "--grader", "choice", "--choices-field", "options", "--answer-field",
            "correct", "--shuffle-choices", "--seed", "3", "--budget", "4", "--max-answer-tokens", "3",
            "--model", str(tiny_checkpoint), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    recs = load_records(out)
    for r in recs:
        assert r["choices"][ord(r["gold"]) - ord("A")] == "gamma"  # the gold follows its option
        assert [rows[0]["options"][i] for i in r["choice_order"]] == r["choices"]
        assert r["question"] == f"Q{int(r['id'].rsplit('-', 1)[1]) - 1}?"  # the stem; options in `choices`
    assert len({tuple(r["choice_order"]) for r in recs}) > 1


def test_custom_format_from_flags_and_yaml(tmp_path, tiny_checkpoint):
    data = tmp_path / "q.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n')
    common = ["generate", "--data", str(data), "--budget", "5", "--max-answer-tokens", "2", "--model", str(tiny_checkpoint)]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main([*common, "--format", "custom", "--think-start", "<reasoning>", "--think-end", "</reasoning>",
                 "--answer-prefix", "Answer: ", "--out", str(a)]) == 0  # fmt: skip
    cfg = tmp_path / "c.yaml"
    cfg.write_text("format: custom\nthink_start: <reasoning>\nthink_end: </reasoning>\nanswer_prefix: 'Answer: '\n")
    assert main([*common, "--config", str(cfg), "--out", str(b)]) == 0
    ra, rb = load_records(a)[0], load_records(b)[0]
    assert ra["format"] == rb["format"] == 'custom ["<reasoning>", "</reasoning>", "Answer: "]'
    assert ra["thinking_tokens"] == 5 and ra["capped"] and ra["thinking"] == rb["thinking"]
    # resuming with other delimiters is another experiment: refused
    assert main([*common, "--format", "custom", "--think-start", "<r>", "--think-end", "</r>", "--out", str(a)]) == 2
