"""The Python API on a tiny random model: in memory, through a file, and streamed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import thinkscale as ts
from thinkscale.records import RECORD_FIELDS, load_records

SETTINGS = dict(budget=6, max_answer_tokens=4, batch_size=4)


def test_in_memory_records_match_the_file_path(tmp_path, tiny_model, tokenizer):
    data = tmp_path / "q.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+3?", "answer": ["5", "five"]}\n')
    mem = ts.generate(task=str(data), model=tiny_model, tokenizer=tokenizer, **SETTINGS)
    out = tmp_path / "r.jsonl"
    filed = ts.generate(task=str(data), model=tiny_model, tokenizer=tokenizer, out=out, **SETTINGS)
    assert len(mem) == len(filed) == 2
    assert [list(r) for r in mem] == [list(r) for r in filed]  # same fields, same order
    assert set(RECORD_FIELDS) <= set(mem[0])
    assert [(r["id"], r["thinking"], r["answer"]) for r in mem] == [(r["id"], r["thinking"], r["answer"]) for r in filed]
    assert all(isinstance(r["correct"], bool) for r in mem)
    assert mem[1]["gold"] == ["5", "five"]  # a list stays a list of accepted answers
    assert load_records(out) == filed
    again = ts.generate(task=str(data), model=tiny_model, tokenizer=tokenizer, out=out, **SETTINGS)
    assert again == filed and len(load_records(out)) == 2  # resumed: nothing new written


def test_questions_without_gold_are_not_graded(tiny_model, tokenizer):
    recs = ts.generate(["What is 17*23?", "Name a prime."], model=tiny_model, tokenizer=tokenizer,
                       n=2, temperature=0.7, **SETTINGS)  # fmt: skip
    assert len(recs) == 4
    assert all(r["correct"] is None and r["gold"] is None for r in recs)
    assert {(r["id"], r["sample"]) for r in recs} == {(f"questions-{i}", s) for i in (0, 1) for s in (0, 1)}
    graded = ts.generate(["What is 17*23?"], golds=["391"], model=tiny_model, tokenizer=tokenizer, **SETTINGS)
    assert graded[0]["correct"] is False and graded[0]["gold"] == "391"


def test_stream_text_is_what_generate_records(tiny_model, tokenizer):
    prompt = "What is 2+2?"
    rec = ts.generate([prompt], model=tiny_model, tokenizer=tokenizer, **SETTINGS)[0]
    events = list(ts.stream(prompt, model=tiny_model, tokenizer=tokenizer, **SETTINGS))
    assert events[-1].phase == "done" and events[-1].record["thinking"] == rec["thinking"]
    tokens = [e for e in events if e.phase != "done"]
    text = ""
    for e in tokens:
        text = text[: len(text) - e.retract] + e.text
    assert rec["thinking"] in text and rec["answer"] in text
    assert text.index(rec["thinking"]) < text.rindex(rec["answer"])
    assert {e.phase for e in tokens} == {"think", "answer"}
    forced = "".join(e.text for e in tokens if e.forced)
    assert rec["capped"] and "<|im_start|>answer" in forced  # the cap's forced delimiter, marked
    assert not any(e.forced for e in tokens if e.phase == "think")  # no Wait asked for: none forced


def test_stream_marks_forced_waits(tiny_model, tokenizer):
    events = list(ts.stream("Hi", model=tiny_model, tokenizer=tokenizer, budget=40, num_ignore=2,
                            max_answer_tokens=2, min_thinking=30))  # fmt: skip
    rec = events[-1].record
    forced_think = "".join(e.text for e in events if e.forced and e.phase == "think")
    assert forced_think.count("Wait") == rec["waits"]


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "TOKENIZERS_"))})  # fmt: skip
    return json.loads(out.stdout)


def test_eval_and_records_import_no_engine_trainer_torch_or_cli():
    mods = _run("import sys, json, thinkscale.eval, thinkscale.eval.evaluate, thinkscale.eval.report, "
                "thinkscale.eval.metrics, thinkscale.records; print(json.dumps(sorted(sys.modules)))")  # fmt: skip
    banned = ("torch", "transformers", "trl", "vllm", "accelerate", "thinkscale.infer", "thinkscale.train",
              "thinkscale.cli", "thinkscale.dot", "datatrove")  # fmt: skip
    loaded = [m for m in mods if m.split(".")[0] in banned or m.startswith(banned)]
    assert loaded == [], loaded


def test_import_thinkscale_leaves_the_environment_alone():
    env = _run("import os, json; before = dict(os.environ); import thinkscale; "
               "print(json.dumps({'same': dict(os.environ) == before, 'all': sorted(thinkscale.__all__)}))")  # fmt: skip
    assert env["same"] is True
    assert {"generate", "stream", "evaluate", "report", "curate", "train_sft", "load_model"} <= set(env["all"])
