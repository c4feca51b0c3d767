"""Hostile input, table-driven: every case exits 2 with one `thinkscale: error:` line naming
what is wrong (file:line:field where there is one), no traceback, and creates or changes no
output. The engine cases fail before a model loads."""

from __future__ import annotations

import json

import pytest

from thinkscale.cli import main

Q = '{"q": "1+1?", "a": "2"}\n'
T = '{"question": "What is one plus one, in words?", "thinking": "one and one make two", "answer": "two"}\n'
REC = {"task": "t", "id": "q0", "sample": 0, "budget": 8, "num_ignore": 0, "correct": True}


def rec(**kw) -> str:
    return json.dumps({**REC, **kw}) + "\n"


def gen(*extra):
    return ["generate", "--data", "{data}", "--question-field", "q", "--answer-field", "a", "--model", "{model}",
            "--out", "{out}", *extra]  # fmt: skip


def imp(*extra):
    return ["batch", "import", "{tmp}/o.jsonl", "--data", "{data}", "--question-field", "q", "--answer-field", "a",
            "--tokenizer", "", "--out", "{out}", *extra]  # fmt: skip


def out_line(custom_id: str) -> str:
    body = {"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}
    return json.dumps({"custom_id": custom_id, "response": {"body": body}}) + "\n"


def data(stage, *extra, data="{tmp}/t.jsonl", out="{tmp}/cur"):
    return ["data", stage, "--data", data, "--out", out, *extra]


def sft(*extra):
    return ["train", "sft", "--data", "{tmp}/t.jsonl", "--model", "{model}", "--out", "{tmp}/sft", *extra]


def dot_train(*extra):
    return ["dot", "train", "--out", "{tmp}/dot", *extra]


CASES = [
    # (name, argv, files to write {name: text}, message)
    ("budget 0", gen("--budget", "0"), {}, "--budget must be a positive"),
    ("budget negative", gen("--budget", "-5"), {}, "--budget must be a positive"),
    ("num-ignore negative", gen("--num-ignore", "-1"), {}, "--num-ignore must be >= 0"),
    ("batch-size 0", gen("--batch-size", "0"), {}, "--batch-size must be >= 1"),
    ("n 0", gen("--n", "0"), {}, "--n must be >= 1"),
    ("max-answer-tokens 0", gen("--max-answer-tokens", "0"), {}, "--max-answer-tokens must be >= 1"),
    ("max-total-tokens 0", gen("--max-total-tokens", "0"), {}, "--max-total-tokens must be >= 1"),
    ("top-p 0", gen("--top-p", "0"), {}, "--top-p must be in (0, 1]"),
    ("top-p 1.5", gen("--top-p", "1.5"), {}, "--top-p must be in (0, 1]"),
    ("top-k negative", gen("--top-k", "-1"), {}, "--top-k must be >= 0"),
    ("temperature negative", gen("--temperature", "-1"), {}, "--temperature must be >= 0"),
    ("min-thinking negative", gen("--min-thinking", "-1"), {}, "--min-thinking must be >= 0"),
    ("limit 0", gen("--limit", "0"), {}, "--limit must be >= 1"),
    ("greedy n > 1", gen("--n", "3"), {}, "--temperature > 0"),
    ("multi-round sampled", gen("--forcing", "multi-round", "--temperature", "0.5"), {}, "greedy only"),
    ("empty wait", gen("--wait", " "), {}, "--wait must be a non-empty"),
    ("data is a directory", ["generate", "--data", "{tmp}", "--model", "{model}", "--out", "{out}"], {}, "is a directory"),
    ("data missing", ["generate", "--data", "{tmp}/nope.jsonl", "--model", "{model}", "--out", "{out}"], {}, "nope.jsonl: file not found"),
    ("malformed JSON", gen(), {"q.jsonl": Q + '{"q": oops}\n'}, "q.jsonl:2: malformed JSON"),
    ("missing field", gen(), {"q.jsonl": Q + '{"q": "2+2?"}\n'}, "q.jsonl:2: missing field 'a'"),
    ("empty data", gen(), {"q.jsonl": ""}, "empty dataset"),
    ("gold is an object", gen(), {"q.jsonl": '{"q": "1+1?", "a": {"x": 1}}\n'}, "q.jsonl:1: field 'a': must be a string"),
    ("gold is an empty list", gen(), {"q.jsonl": '{"q": "1+1?", "a": [""]}\n'}, "q.jsonl:1: field 'a': a list of accepted"),
    ("not UTF-8", gen(), {"q.jsonl": b'{"q": "\xff", "a": "2"}\n'}, "q.jsonl:1: not valid UTF-8"),
    ("out under a file", gen()[:-1] + ["{tmp}/q.jsonl/r.jsonl"], {}, "is a file, not a directory"),
    ("out is a directory", gen()[:-1] + ["{tmp}"], {}, "is a directory; --out takes a results file"),
    ("sweep out is a file", ["sweep", "--data", "{data}", "--question-field", "q", "--answer-field", "a",
                             "--model", "{model}", "--out", "{data}"], {}, "sweep's --out is a run directory"),
    ("task and data", gen("--task", "gsm8k"), {}, "exactly one of --task or --data"),
    ("neither task nor data", ["generate", "--model", "{model}", "--out", "{out}"], {}, "exactly one of --task or --data"),
    ("unknown model", ["generate", "--data", "{data}", "--question-field", "q", "--answer-field", "a",
                       "--model", "{tmp}/no-model", "--out", "{out}"], {}, "unknown model"),
    ("model dir without config", ["generate", "--data", "{data}", "--question-field", "q", "--answer-field", "a",
                                  "--model", "{tmp}", "--out", "{out}"], {}, "not a local checkpoint directory"),
    ("eval missing", ["eval", "{tmp}/none.jsonl"], {}, "none.jsonl: file not found"),
    ("eval directory without results", ["eval", "{tmp}"], {}, "results.jsonl: file not found"),
    ("eval empty file", ["eval", "{tmp}/r.jsonl"], {"r.jsonl": ""}, "r.jsonl: no records to evaluate"),
    ("eval correct as a string", ["eval", "{tmp}/r.jsonl"], {"r.jsonl": rec(correct="false")}, "r.jsonl:1: field 'correct' must be"),
    ("eval duplicate key", ["eval", "{tmp}/r.jsonl"], {"r.jsonl": rec() + rec()}, "r.jsonl:2: duplicate record"),
    ("eval budget 0", ["eval", "{tmp}/r.jsonl"], {"r.jsonl": rec(budget=0)}, "r.jsonl:1: field 'budget' must be"),
    ("eval sample negative", ["eval", "{tmp}/r.jsonl"], {"r.jsonl": rec(sample=-1)}, "r.jsonl:1: field 'sample' must be"),
    ("eval gold as a dict", ["eval", "{tmp}/r.jsonl"], {"r.jsonl": rec(gold={"a": 1}, correct=None)}, "r.jsonl:1: field 'gold' must be"),
    ("eval no id", ["eval", "{tmp}/r.jsonl"], {"r.jsonl": '{"task": "t"}\n'}, "r.jsonl:1: field 'id': missing"),
    ("eval bad JSON middle line", ["eval", "{tmp}/r.jsonl"], {"r.jsonl": rec() + "{bad\n" + rec(id="q1")}, "r.jsonl:2: malformed JSON"),
    ("report missing", ["report", "{tmp}/nothing"], {}, "file not found"),
    ("batch export n 0", ["batch", "export", "--data", "{data}", "--question-field", "q", "--answer-field", "a",
                          "--n", "0", "--out", "{out}"], {}, "--n must be >= 1"),
    ("batch export max-tokens 0", ["batch", "export", "--data", "{data}", "--question-field", "q", "--answer-field", "a",
                                   "--max-tokens", "0", "--out", "{out}"], {}, "--max-tokens must be >= 1"),
    ("batch import content not a string", ["batch", "import", "{tmp}/o.jsonl", "--data", "{data}", "--question-field", "q",
                                           "--answer-field", "a", "--tokenizer", "", "--out", "{out}"],
     {"o.jsonl": json.dumps({"custom_id": "q-1-rep-0", "response": {"body": {"choices": [{"message": {"content": [1]}}]}}}) + "\n"},
     "o.jsonl:1: field 'response.body.choices[0].message.content' must be a string"),
    ("batch import unknown id", ["batch", "import", "{tmp}/o.jsonl", "--data", "{data}", "--question-field", "q",
                                 "--answer-field", "a", "--tokenizer", "", "--out", "{out}"],
     {"o.jsonl": json.dumps({"custom_id": "zz-rep-0", "response": {"body": {"choices": [{"message": {"content": "x"}}]}}}) + "\n"},
     "o.jsonl:1: field 'custom_id': ids not in task"),
    ("config unknown field", gen("--config", "{tmp}/c.yaml"), {"c.yaml": "colour: red\n"}, "unknown field(s) colour"),
    ("config bad value", gen("--config", "{tmp}/c.yaml"), {"c.yaml": "batch_size: many\n"}, "field 'batch_size'"),
    ("dot eval steps 0", ["dot", "eval", "--model", "{tmp}/no-model", "--steps", "0", "--out", "{tmp}/dot"], {}, "--steps must be in 1..256"),
    ("batch import sample outside n", imp("--n", "2"), {"o.jsonl": out_line("q-1-rep-2")}, "o.jsonl:1: field 'custom_id': sample 2 of q-1 is outside --n 2"),
    ("batch import duplicate custom_id", imp(), {"o.jsonl": out_line("q-1-rep-0") + out_line("q-1-rep-0")}, "o.jsonl:2: field 'custom_id': q-1-rep-0 also on line 1"),
    ("batch import n 0", imp("--n", "0"), {"o.jsonl": out_line("q-1-rep-0")}, "--n must be >= 1"),
    ("data malformed eval-tasks file", data("decontaminate", "--eval-tasks", "{tmp}/ev.jsonl"), {"ev.jsonl": Q + "{oops\n"}, "ev.jsonl:2: malformed JSON"),
    ("data eval-tasks missing", data("decontaminate", "--eval-tasks", "{tmp}/ev.jsonl"), {}, "ev.jsonl: file not found"),
    ("data unknown eval task", data("decontaminate", "--eval-tasks", "aime"), {}, "unknown eval task 'aime'"),
    ("data ngram 0", data("decontaminate", "--ngram", "0"), {}, "--ngram must be >= 1"),
    ("data validate no valid trace", data("validate"), {"t.jsonl": "not json\n"}, "no valid traces"),
    ("data validate missing", data("validate", data="{tmp}/none.jsonl"), {}, "none.jsonl: file not found"),
    ("data curate unknown stage", data("curate", "--stages", "quality,shuffle"), {}, "unknown stage(s) shuffle"),
    ("choice without options", gen("--grader", "choice"), {}, "q.jsonl:1: field 'q': --grader choice needs options"),
    ("choice letter outside options", gen("--grader", "choice", "--choices-field", "o"),
     {"q.jsonl": '{"q": "Sky?", "o": ["red", "blue"], "a": "D"}\n'}, "q.jsonl:1: field 'a': answer 'D' is not one of the options A, B"),
    ("qa empty alias list", gen("--grader", "qa"), {"q.jsonl": '{"q": "Capital?", "a": []}\n'}, "q.jsonl:1: field 'a': a list of accepted"),
    ("choices-field without choice", gen("--choices-field", "o"), {}, "--choices-field needs --grader choice"),
    ("custom format without delimiters", gen("--format", "custom"), {}, "--format custom needs --think-start and --think-end"),
    ("source filter on a task without sources", ["generate", "--task", "gsm8k", "--source-filter", "x", "--model", "{model}",
                                                 "--out", "{out}"], {}, "task 'gsm8k' has no sources"),
    ("eval judge batch 0", ["eval", "{tmp}/r.jsonl", "--judge", "{model}", "--judge-batch-size", "0"], {"r.jsonl": rec()}, "--judge-batch-size must be >= 1"),
    ("data workers 0", data("curate", "--workers", "0"), {}, "--workers must be >= 1 (or -1: all)"),
    ("data difficulty batch 0", data("difficulty", "--batch-size", "0"), {}, "--batch-size must be >= 1"),
    ("data limit 0", data("validate", "--limit", "0"), {}, "--limit must be >= 1"),
    ("data existing out keeps no stages", data("validate", data="{tmp}/none.jsonl", out="{tmp}"), {}, "none.jsonl: file not found"),
    ("train sft micro-batch 0", sft("--micro-batch-size", "0"), {}, "--micro-batch-size must be >= 1"),
    ("train sft batch 0", sft("--batch-size", "0"), {}, "--batch-size must be >= 1"),
    ("train sft batch not a multiple", sft("--batch-size", "6", "--micro-batch-size", "4"), {}, "not a multiple of --micro-batch-size 4"),
    ("train sft warmup 1", sft("--warmup", "1"), {}, "--warmup must be in [0, 1)"),
    ("train sft max-length 4", sft("--max-length", "4"), {}, "--max-length must be >= 8"),
    ("train sft save-steps 0", sft("--save-steps", "0"), {}, "--save-steps must be >= 1"),
    ("train sft limit 0", sft("--limit", "0"), {}, "--limit must be >= 1"),
    ("train sft pass-n 0", sft("--objective", "pass-at-n", "--pass-n", "0"), {}, "--pass-n must be >= 1"),
    ("train sft filter threshold 0", sft("--filter", "sampled", "--filter-threshold", "0"), {}, "--filter-threshold must be in (0, 1]"),
    ("train sft filter threshold 1.5", sft("--filter", "sampled", "--filter-threshold", "1.5"), {}, "--filter-threshold must be in (0, 1]"),
    ("train sft filter samples 0", sft("--filter", "sampled", "--filter-samples", "0"), {}, "--filter-samples must be >= 1"),
    ("train sft sampled p, answer not gradeable", sft("--objective", "pass-at-n", "--p-source", "sampled", "--grader", "numeric"),
     {"t.jsonl": T}, "answer 'two' cannot be graded by the 'numeric' grader"),
    ("synth gold without answers", ["synth", "--questions", "{tmp}/sq.jsonl", "--verify", "gold", "--model", "{model}",
                                    "--out", "{tmp}/syn"], {"sq.jsonl": '{"question": "1+6?"}\n'},
     "sq.jsonl:1: missing field 'answer' (--verify gold needs a gold answer)"),
    ("synth rounds 0", ["synth", "--questions", "{data}", "--rounds", "0", "--out", "{tmp}/syn"], {}, "--rounds must be >= 1"),
    ("synth vote with one sample", ["synth", "--questions", "{data}", "--samples", "1", "--out", "{tmp}/syn"], {},
     "--verify vote needs --samples >= 2 to vote, got 1"),
    ("coverage ks 0", ["coverage", "--data", "{data}", "--question-field", "q", "--answer-field", "a", "--model", "{model}",
                       "--ks", "0", "--out", "{tmp}/cov"], {}, "--ks values must be >= 1"),
    ("dot train batch 0", dot_train("--batch-size", "0"), {}, "--batch-size must be >= 1"),
    ("dot train heads", dot_train("--heads", "3"), {}, "not a multiple of --heads 3"),
    ("dot train seconds negative", dot_train("--train-seconds", "-1"), {}, "--train-seconds must be positive"),
    ("dot train layers 0", dot_train("--layers", "0"), {}, "--layers must be >= 1"),
    # hybrid reasoning: modes only for --format hybrid, a model that knows the control tokens
    ("mode without hybrid", gen("--mode", "think"), {}, "--mode applies to --format hybrid"),
    ("hybrid unknown mode", gen("--format", "hybrid", "--mode", "sometimes"), {}, "--mode must be one of auto, think, short"),
    ("hybrid on a model without control tokens", gen("--format", "hybrid"), {}, "has no token <think>, </think>, <short>"),
    ("hybrid multi-round", gen("--format", "hybrid", "--forcing", "multi-round"), {}, "multi-round does not run --format hybrid"),
    ("data hybrid unknown model", ["data", "hybrid", "--data", "{tmp}/t.jsonl", "--out", "{tmp}/h", "--short-from", "model",
                                   "--short-model", "{tmp}/nope"], {}, "unknown model"),
    ("data hybrid bad mode field", ["data", "hybrid", "--data", "{tmp}/m.jsonl", "--out", "{tmp}/h"],
     {"m.jsonl": T.replace("}", ', "mode": "long"}')}, "m.jsonl:1: field 'mode' must be think or short"),
    ("sft hybrid bad mode field", sft("--format", "hybrid", "--data", "{tmp}/m.jsonl"),
     {"m.jsonl": T.replace("}", ', "mode": "long"}')}, "m.jsonl:1: field 'mode' must be think or short"),
]  # fmt: skip


@pytest.mark.parametrize("name,argv,files,message", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(tmp_path, capsys, tiny_checkpoint, name, argv, files, message):
    (tmp_path / "q.jsonl").write_text(Q)
    (tmp_path / "t.jsonl").write_text(T)
    for fname, text in files.items():
        (tmp_path / fname).write_bytes(text if isinstance(text, bytes) else text.encode())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    dirs = sorted(p for p in tmp_path.rglob("*") if p.is_dir())
    subs = {"data": tmp_path / "q.jsonl", "model": tiny_checkpoint, "out": tmp_path / "out.jsonl", "tmp": tmp_path}
    code = main([a.format(**subs) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("thinkscale: error:") and len(err.splitlines()) == 1, err
    assert message in err and "Traceback" not in err, err
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, sorted(set(after) ^ set(before))  # nothing created or changed
    assert sorted(p for p in tmp_path.rglob("*") if p.is_dir()) == dirs  # no folder left behind


def _gen(tmp_path, model, data, out):
    return ["generate", "--data", str(data), "--question-field", "q", "--answer-field", "a", "--model", str(model),
            "--budget", "4", "--max-answer-tokens", "2", "--out", str(out)]  # fmt: skip


def test_resume_refuses_another_data_set_under_the_same_name(tmp_path, capsys, tiny_checkpoint):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "set.jsonl").write_text(Q + '{"q": "2+2?", "a": "4"}\n')
    (tmp_path / "b" / "set.jsonl").write_text('{"q": "3+3?", "a": "6"}\n' + Q)
    out = tmp_path / "r.jsonl"
    assert main(_gen(tmp_path, tiny_checkpoint, tmp_path / "a" / "set.jsonl", out)) == 0
    capsys.readouterr()
    before = out.read_bytes()
    assert main(_gen(tmp_path, tiny_checkpoint, tmp_path / "b" / "set.jsonl", out)) == 2
    err = capsys.readouterr().err
    assert "id 'set-1' with another question" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == before  # keys and contents exactly as they were
    recs = [json.loads(line) for line in before.decode().splitlines()]
    assert [(r["id"], r["question"]) for r in recs] == [("set-1", "1+1?"), ("set-2", "2+2?")]


def test_a_failed_validation_leaves_no_results_file(tmp_path, capsys, tiny_checkpoint):
    (tmp_path / "q.jsonl").write_text(Q)
    out = tmp_path / "sub" / "r.jsonl"
    assert main(_gen(tmp_path, tiny_checkpoint, tmp_path / "q.jsonl", out)[:-2] + ["--budget", "-1", "--out", str(out)]) == 2
    assert not out.exists() and not out.parent.exists()
