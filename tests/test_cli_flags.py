"""The CLI is built from the config dataclasses: every contract flag still parses, to the same
config; --config YAML sets the base and the command line wins, even at a default value."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from thinkscale.cli import _parse, build_parser, main
from thinkscale.configs import from_args
from thinkscale.infer.batch import BatchExportConfig, BatchImportConfig
from thinkscale.infer.generate import GenerateConfig
from thinkscale.tasks import TASKS

CONTRACT = json.loads((Path(__file__).parent / "cli_flags.json").read_text())


def _subparsers(p: argparse.ArgumentParser, path=()):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield " ".join((*path, name)), sp
                yield from _subparsers(sp, (*path, name))


def test_every_contract_flag_still_exists():
    commands = dict(_subparsers(build_parser()))
    for cmd, options in CONTRACT.items():
        have = {o for a in commands[cmd]._actions for o in a.option_strings}
        assert set(options) <= have, (cmd, sorted(set(options) - have))


def test_task_offers_every_registered_task():
    commands = dict(_subparsers(build_parser()))
    for cmd in ("generate", "sweep", "batch export", "batch import"):
        task = next(a for a in commands[cmd]._actions if "--task" in a.option_strings)
        assert set(task.choices) == set(TASKS), cmd


ALL_GENERATE = ["--data", "d.jsonl", "--question-field", "q", "--answer-field", "a", "--id-field", "i",
                "--grader", "numeric", "--limit", "3", "--num-ignore", "2", "--min-thinking", "5",
                "--max-answer-tokens", "9", "--max-total-tokens", "99", "--wait", "Hmm", "--forcing",
                "multi-round", "--model", "m", "--format", "r1", "--engine", "auto", "--n", "4",
                "--temperature", "0.5", "--top-p", "0.9", "--top-k", "7", "--seed", "3", "--batch-size",
                "5", "--dtype", "float32", "--budget", "none"]  # fmt: skip


@pytest.mark.parametrize("argv,expected", [
    (["generate", "--task", "gsm8k", "--out", "o"], GenerateConfig(task="gsm8k")),
    (["generate", "--task", "math500", "--budget", "64", "--out", "o"], GenerateConfig(task="math500", budgets=[64])),
    (["generate", *ALL_GENERATE, "--out", "o"], GenerateConfig(
        data="d.jsonl", question_field="q", answer_field="a", id_field="i", grader="numeric", limit=3,
        num_ignores=[2], min_thinking=5, max_answer_tokens=9, max_total_tokens=99, wait="Hmm",
        forcing="multi-round", model="m", format="r1", engine="auto", n=4, temperature=0.5, top_p=0.9,
        top_k=7, seed=3, batch_size=5, dtype="float32", budgets=[None])),
    (["sweep", "--task", "gsm8k", "--out", "d"], GenerateConfig(task="gsm8k", budgets=[32, 128, 512])),
    (["sweep", "--task", "gsm8k", "--budgets", "4", "none", "16", "--num-ignores", "0", "1", "--out", "d"],
     GenerateConfig(task="gsm8k", budgets=[4, None, 16], num_ignores=[0, 1])),
    (["sweep", "--task", "gsm8k", "--num-ignore", "2", "--out", "d"],  # the old spelling still works
     GenerateConfig(task="gsm8k", budgets=[32, 128, 512], num_ignores=[2])),
])  # fmt: skip
def test_generation_flags_parse_to_the_same_config(argv, expected):
    args = _parse(argv)
    assert from_args(GenerateConfig, args) == expected
    assert args.out == argv[-1]


def test_batch_flags_parse_to_their_configs():
    args = _parse(["batch", "export", "--data", "d.jsonl", "--n", "3", "--limit", "2", "--model-name", "x",
                   "--max-tokens", "5", "--temperature", "0.3", "--format", "r1", "--out", "r.jsonl"])  # fmt: skip
    assert from_args(BatchExportConfig, args) == BatchExportConfig(
        data="d.jsonl", n=3, limit=2, model_name="x", max_tokens=5, temperature=0.3, format="r1", out="r.jsonl")
    args = _parse(["batch", "import", "o.jsonl", "--task", "math500", "--tokenizer", "", "--out", "r.jsonl"])
    assert from_args(BatchImportConfig, args) == BatchImportConfig(
        file="o.jsonl", task="math500", tokenizer="", out="r.jsonl")


def test_yaml_sets_the_base_and_the_command_line_wins(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("task: math500\ntemperature: 0.7\nn: 4\nbudgets: [64, none]\nmax-answer-tokens: 12\nout: f.jsonl\n")
    args = _parse(["generate", "--config", str(cfg)])
    got = from_args(GenerateConfig, args)
    assert (got.task, got.temperature, got.n, got.budgets, got.max_answer_tokens, args.out) == (
        "math500", 0.7, 4, [64, None], 12, "f.jsonl")
    # flags given on the command line win, also when they equal the default
    args = _parse(["generate", "--config", str(cfg), "--temperature", "0.0", "--budget", "8", "--out", "x"])
    got = from_args(GenerateConfig, args)
    assert (got.temperature, got.n, got.budgets, args.out) == (0.0, 4, [8], "x")


@pytest.mark.parametrize("text,message", [
    ("nonsense_field: 3\n", "unknown field(s) nonsense_field"),
    ("n: three\n", "field 'n'"),
    ("format: xml\n", "field 'format'"),
    ("- a\n- b\n", "a mapping"),
    ("n: [1\n", "not valid YAML"),
])  # fmt: skip
def test_a_bad_config_file_is_one_line(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["generate", "--task", "gsm8k", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and str(cfg) in err
    assert not (tmp_path / "o").exists()


def test_a_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "--task", "gsm8k", "--n", "two", "--out", "o"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--n" in err and "--help" in err
