"""Bad input: one clear line, a non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import json

import pytest

from thinkscale.cli import main
from thinkscale.records import RECORD_FIELDS


@pytest.fixture
def data(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text('{"q": "1+1?", "a": "2"}\n{"q": "2+2?", "a": "4"}\n')
    return f


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def gen_args(data, model, out, *extra):
    return ["generate", "--data", data, "--question-field", "q", "--answer-field", "a", "--model", model,
            "--out", out, *extra]  # fmt: skip


@pytest.mark.parametrize(
    "mutate,extra,message",
    [
        (None, ["--budget", "0"], "--budget must be a positive"),
        (None, ["--budget", "-5"], "--budget must be a positive"),
        (None, ["--num-ignore", "-1"], "--num-ignore must be >= 0"),
        ('{"q": "1+1?", "a": "2"}\n{"q": oops}\n', [], "q.jsonl:2: malformed JSON"),
        ('{"q": "1+1?", "a": "2"}\n{"q": "2+2?"}\n', [], "q.jsonl:2: missing field 'a'"),
        ("", [], "empty dataset"),
        (None, ["--n", "3"], "--temperature > 0"),
        (None, ["--adaptive", "consistency", "--forcing", "multi-round"], "--adaptive needs --engine hf --forcing single-pass"),
        (None, ["--adaptive", "consistency", "--probe-every", "0"], "--probe-every must be >= 1"),
        (None, ["--adaptive", "confidence", "--confidence", "1.5"], "--confidence must be in (0, 1]"),
        (None, ["--adaptive", "consistency", "--format", "plain"], "--format plain does not think"),
        (None, ["--tensor-parallel-size", "2"], "--tensor-parallel-size applies to --engine vllm"),
        (None, ["--compile", "--forcing", "multi-round"], "--compile applies to --engine hf --forcing single-pass"),
        (None, ["--engine", "hf", "--max-model-len", "0"], "--max-model-len must be >= 1"),
    ],
)
def test_bad_input_is_one_clear_line(
    capsys, tmp_path, data, tiny_checkpoint, mutate, extra, message
):
    if mutate is not None:
        data.write_text(mutate)
    out = tmp_path / "out.jsonl"
    code, err = run_cli(capsys, *gen_args(data, tiny_checkpoint, out, *extra))
    assert code != 0
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_model_and_missing_file(capsys, tmp_path, data):
    out = tmp_path / "out.jsonl"
    code, err = run_cli(capsys, *gen_args(data, tmp_path / "no-such-model", out))
    assert code != 0 and "unknown model" in err and not out.exists()
    code, err = run_cli(capsys, *gen_args(tmp_path / "missing.jsonl", tmp_path, out))
    assert code != 0 and "missing.jsonl: file not found" in err and not out.exists()
    code, err = run_cli(capsys, "eval", tmp_path / "nothing.jsonl")
    assert code != 0 and "file not found" in err


def test_generate_eval_report_on_a_tiny_checkpoint(capsys, tmp_path, data, tiny_checkpoint):
    run_dir = tmp_path / "run"
    code = main([str(a) for a in ["sweep", "--data", data, "--question-field", "q", "--answer-field", "a", "--model",
                tiny_checkpoint, "--budgets", "4", "16", "--num-ignores", "0", "1", "--n", "2", "--temperature", "1",
                "--max-answer-tokens", "4", "--out", run_dir]])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for name in ("results.jsonl", "metrics.json", "scaling.png", "parallel.png", "report.html"):
        assert (run_dir / name).stat().st_size > 0, name
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 * 2 * 2
    required = set(RECORD_FIELDS)  # the record contract other tools rely on
    assert all(required <= set(r) for r in records)
    assert all(r["thinking_tokens"] <= r["budget"] for r in records)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {(r["budget"], r["num_ignore"]) for r in metrics["runs"]} == {
        (4, 0),
        (4, 1),
        (16, 0),
        (16, 1),
    }
    run = metrics["runs"][0]
    assert {"task", "budget", "num_ignore", "n", "accuracy", "avg_thinking_tokens"} <= set(run)
    assert {"control", "scaling", "performance"} <= set(metrics["tasks"]["q"])
    assert metrics["tasks"]["q"]["control"] == 1.0
    code = main(["eval", str(run_dir)])
    assert code == 0
