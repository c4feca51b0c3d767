"""`thinkscale <stage> ...`: parses flags and calls library functions, nothing more.

Flags come from the config dataclasses through `thinkscale.configs` (one mechanism): each
command names its config and the few flags that are not config fields (`--out`, a positional
file). `--config FILE.yaml` sets the base; flags given on the command line win.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import add_flags, apply_config_file, flatten, from_args


class Parser(argparse.ArgumentParser):
    """A usage error is one line (and where to look), not the whole usage block."""

    def error(self, message: str):
        self.exit(2, f"thinkscale: error: {message} (see `{self.prog} --help`)\n")


GENERATION_GROUPS = {
    "data (one of --task or --data)": ("task", "data", "question_field", "answer_field", "id_field",
                                       "grader", "choices_field", "shuffle_choices", "source_field",
                                       "source_filter", "split", "limit"),
    "budget forcing": ("budgets", "num_ignores", "min_thinking", "max_answer_tokens", "max_total_tokens",
                       "wait", "forcing"),
    "adaptive thinking (early exit; HF engine)": ("adaptive", "probe_every", "probe_tokens", "agree", "confidence"),
    "model and sampling": ("model", "format", "modes", "think_start", "think_end", "answer_prefix", "engine", "n", "temperature", "top_p", "top_k", "seed",
                           "batch_size", "compile", "dtype"),
    "vLLM engine (--engine vllm; fs1 scale: --tensor-parallel-size 8 --max-num-seqs 32)": (
        "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "max_num_seqs",
        "gpu_memory_utilization", "max_model_len"),
}  # fmt: skip


def _add_config_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a YAML file of any of these flags (field: value); flags given here win")


def cmd_generate(args) -> None:
    from thinkscale.infer.generate import GenerateConfig, generate

    out = generate(from_args(GenerateConfig, args), args.out)
    print(f"records in {out}")


def cmd_sweep(args) -> None:
    from thinkscale.eval.evaluate import summary_table
    from thinkscale.eval.report import write_report
    from thinkscale.infer.generate import GenerateConfig, generate

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ThinkscaleError(f"{out}: is a file; sweep's --out is a run directory")
    generate(from_args(GenerateConfig, args), out / "results.jsonl")
    metrics = write_report(out)
    print(summary_table(metrics))
    print(f"wrote {out}/results.jsonl, metrics.json, scaling.png, parallel.png, report.html")


def cmd_eval(args) -> None:
    from thinkscale.eval.evaluate import evaluate_path, summary_table

    if args.judge:
        from thinkscale.eval.evaluate import results_path
        from thinkscale.infer.judge import judge_results

        if args.judge_batch_size < 1:
            raise ThinkscaleError(f"--judge-batch-size must be >= 1, got {args.judge_batch_size}")
        asked = judge_results(results_path(args.results), args.judge, batch_size=args.judge_batch_size)
        print(f"judge {args.judge}: {asked} answers judged")
    metrics, out = evaluate_path(args.results, args.out)
    print(summary_table(metrics))
    print(f"wrote {out}")


def cmd_report(args) -> None:
    from thinkscale.eval.evaluate import summary_table
    from thinkscale.eval.report import write_report

    metrics = write_report(args.run)
    print(summary_table(metrics))
    print(f"wrote scaling.png, parallel.png, report.html, metrics.json in {args.run}")


def cmd_serve(args) -> None:
    from thinkscale.serve.app import serve
    from thinkscale.serve.config import ServeConfig

    serve(from_args(ServeConfig, args))


def cmd_frontier(args) -> None:
    from thinkscale.eval.frontier import frontier_table
    from thinkscale.eval.report import write_frontier

    metrics, out = write_frontier(args.paths, args.out)
    print(frontier_table(metrics["frontier"]))
    print(f"wrote frontier.png, report.html, metrics.json in {out} (*: on the Pareto frontier)")


def cmd_coverage(args) -> None:
    from thinkscale.coverage_run import CoverageConfig, coverage
    from thinkscale.eval.coverage import coverage_table

    metrics = coverage(from_args(CoverageConfig, args), args.out)
    print(coverage_table(metrics))
    print(f"wrote metrics.json and coverage.png in {args.out}")


def cmd_synth(args) -> None:
    from thinkscale.synth.loop import SynthConfig, synth

    report = synth(from_args(SynthConfig, args), args.out)
    for r in report["rounds"]:
        acc = f"{100 * r['accuracy']:.1f}%" if "accuracy" in r else "-"
        print(f"round {r['round']}: {r['train_rows']} training traces ({r['kept']} kept this round), held-out accuracy {acc}")
    print(f"wrote synth.json, synth.png and round-*/ in {args.out}")


def cmd_train_merge(args) -> None:
    from thinkscale.train.merge import merge_shards

    out = merge_shards(args.checkpoint, args.base, args.out)
    print(f"merged checkpoint in {out} (load it with --model {out})")


def cmd_train_sft(args) -> None:
    from thinkscale.train.sft import SFTRunConfig, train_sft

    out = train_sft(from_args(SFTRunConfig, args))
    print(f"checkpoint in {out} (load it with --model {out})")


def cmd_train_grpo(args) -> None:
    from thinkscale.train.grpo import GRPORunConfig, train_grpo

    out = train_grpo(from_args(GRPORunConfig, args))
    print(f"checkpoint in {out} (load it with --model {out})")


def cmd_batch_export(args) -> None:
    from thinkscale.infer.batch import BatchExportConfig, export_batch

    cfg = from_args(BatchExportConfig, args)
    print(f"wrote {export_batch(cfg)} requests to {cfg.out}")


def cmd_batch_import(args) -> None:
    from thinkscale.infer.batch import BatchImportConfig, import_batch

    cfg = from_args(BatchImportConfig, args)
    written, failed = import_batch(cfg)
    print(
        f"appended {written} records to {cfg.out}; {len(failed)} failed line(s)"
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

DATA_FLAG_HELP = {
    "out": "output directory",
    "limit": "a seeded random sample of N traces (quick run)",
    "seed": "for --limit and select",
    "tokenizer": "counts trace_tokens",
    "executor": "local: this machine's processes; ray / slurm: a cluster (shared --out)",
    "tasks": "shards per stage (datatrove tasks)",
    "filters": "quality filters to apply",
    "eval_tasks": "built-in tasks (their test split) or .jsonl/.parquet files",
    "ngram": "words per n-gram",
    "models": "reference models: embedded name or HF checkpoint dir",
    "max_tokens": "answer tokens per reference model",
    "classifier": "embedding | field | module:function",
    "domain_field": "for --classifier field: the row's subject field",
    "select": "how many traces to keep",
}

_SUB_CONFIGS = ("executor", "quality", "decontaminate", "dedup", "difficulty", "domain", "select")
_TOP_FLAGS = ("data", "out", "limit", "seed", "tokenizer", "question_field", "thinking_field",
              "answer_field", "id_field")  # fmt: skip


def _sub_config_classes() -> dict:
    from dataclasses import fields

    from thinkscale.data.curate import CurateConfig

    return {f.name: f.default_factory().__class__ for f in fields(CurateConfig) if f.name in _SUB_CONFIGS}


def cmd_data(args) -> None:
    from thinkscale.data.curate import STAGES, CurateConfig, curate

    if args.data_command == "curate":
        stages = flatten(args.stages)
    else:
        stages = [] if args.data_command == "validate" else [args.data_command]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ThinkscaleError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    sub = {name: from_args(cls, args) for name, cls in _sub_config_classes().items()}
    top = {k: flatten(getattr(args, k)) for k in _TOP_FLAGS}
    curate(CurateConfig(stages=stages, **top, **sub))


def _add_data_parser(sub) -> None:
    from thinkscale.data.curate import STAGES, CurateConfig
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
        top_help = {**DATA_FLAG_HELP, "data": f"traces (JSONL, parquet, saved HF dataset) or {' | '.join(BUILTIN_CORPORA)}"}
        add_flags(c, CurateConfig, only=_TOP_FLAGS, help=top_help, required=("data", "out"))
        add_flags(c.add_argument_group("executor (datatrove)"), classes["executor"], help=DATA_FLAG_HELP)
        if name == "curate":
            add_flags(c, CurateConfig, only=("stages",), help={"stages": "stages in order"})
        shown = STAGES if name == "curate" else ([name] if name in STAGES else [])
        for stage in shown:
            add_flags(c.add_argument_group(stage), classes[stage], help=DATA_FLAG_HELP)
        _add_config_flag(c)
        c.set_defaults(func=cmd_data)
    from thinkscale.data.hybrid import HybridPairsConfig

    h = dsub.add_parser("hybrid", help="long/short answer pairs for a hybrid (think or short) model's warm-up",
                        description="One <think> row (the trace) and one <short> row (the final answer, or a "
                        "model's plain answer kept only when graded correct) per question, adjacent, ids "
                        "{id}-think / {id}-short. Writes DIR/data.jsonl (train it with `train sft --format "
                        "hybrid`) and DIR/funnel.json.")  # fmt: skip
    add_flags(h, HybridPairsConfig, required=("data", "out"))
    _add_config_flag(h)
    h.set_defaults(func=cmd_data_hybrid)


def cmd_data_hybrid(args) -> None:
    from thinkscale.data.hybrid import HybridPairsConfig, build_pairs

    cfg = from_args(HybridPairsConfig, args)
    funnel = build_pairs(cfg)
    print(f"{funnel['rows_in']} traces -> {funnel['pairs_out']} pairs ({funnel['rows_out']} rows); dropped shorts: "
          f"{funnel['shorts_wrong']} wrong, {funnel['shorts_truncated']} cut, {funnel['shorts_empty']} empty")
    print(f"wrote {cfg.out}/data.jsonl and funnel.json")


DOT_FLAG_HELP = {
    "task": "mul4x4 | mul5x5 | gsm8k",
    "data": "train: a traces file (question, thinking, answer; e.g. `thinkscale synth`'s round-R/data.jsonl) "
            "instead of --task, its thinking lines the thoughts; eval: held-out questions, a thinkscale task name "
            "(arith-mul, ...) or a question/answer file",
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


def cmd_dot_train(args) -> None:
    from thinkscale.dot.train import DotTrainConfig, train_dot

    out = train_dot(from_args(DotTrainConfig, args))
    print(f"DoT checkpoint in {out} (thinkscale dot eval --model {out})")


def cmd_dot_sample(args) -> None:
    import json

    from thinkscale.dot.data import load_task
    from thinkscale.dot.evaluate import split_output
    from thinkscale.dot.model import load_dot
    from thinkscale.dot.sample import SampleConfig, ar_generate, sample_dot

    cfg = from_args(SampleConfig, args)
    cfg.validate()
    model, tokenizer, meta = load_dot(args.model)
    if args.question:
        questions = [(f"q{i}", q) for i, q in enumerate(args.question)]
    else:
        questions = [(ex.id, ex.question) for ex in load_task(args.task or meta.task, "test", args.limit)]
    if meta.objective == "ar":
        outs = ar_generate(model, tokenizer, meta, questions, args.batch_size)
    else:
        outs = sample_dot(model, tokenizer, meta, questions, cfg)
    text = dict(questions)
    for o in outs:
        chain, answer = split_output(o["text"])
        print(json.dumps({"id": o["id"], "sample": o["sample"], "question": text[o["id"]], "chain": chain,
                          "answer": answer, "nfe": o["nfe"], "passes": o["passes"]}, ensure_ascii=False))  # fmt: skip


def cmd_dot_eval(args) -> None:
    from thinkscale.dot.evaluate import DotEvalConfig, eval_dot
    from thinkscale.eval.evaluate import summary_table
    from thinkscale.eval.report import write_report

    cfg = from_args(DotEvalConfig, args)
    eval_dot(cfg)
    metrics = write_report(Path(cfg.out))
    print(summary_table(metrics).replace("budget", " steps"))
    print(f"wrote {cfg.out}/results.jsonl, metrics.json, steps.png, parallel.png, report.html")


def _add_dot_parser(sub) -> None:
    from thinkscale.dot.evaluate import DotEvalConfig
    from thinkscale.dot.sample import SampleConfig
    from thinkscale.dot.train import DotTrainConfig

    d = sub.add_parser("dot", help="Diffusion of Thoughts: train, sample and evaluate a masked-diffusion reasoner")
    dsub = d.add_subparsers(dest="dot_command", required=True, metavar="STEP")
    t = dsub.add_parser("train", help="train a masked-diffusion LM (or the AR baseline) on a DoT task",
                        description="Train a bidirectional transformer (transformers' Llama, 4D mask) with the "
                        "masked-diffusion loss on mul4x4 / mul5x5 (procedural, implicit-CoT format) or gsm8k; the "
                        "question is never noised. Writes a checkpoint (safetensors, tokenizer, dot.json) to --out; "
                        "--resume continues from the latest checkpoint.")  # fmt: skip
    add_flags(t, DotTrainConfig, help=DOT_FLAG_HELP)
    _add_config_flag(t)
    t.set_defaults(func=cmd_dot_train)
    s = dsub.add_parser("sample", help="sample chains and answers from a DoT checkpoint (JSON lines)",
                        description="Denoise chain and answer in --steps steps; prints one JSON line per sample.")  # fmt: skip
    s.add_argument("--model", required=True, help="a checkpoint written by `thinkscale dot train`")
    s.add_argument("--question", nargs="+", help="question text(s), e.g. '4 3 2 1 * 8 7 6 5' (digits reversed)")
    s.add_argument("--task", help="or test questions of a task (default: the model's)")
    s.add_argument("--limit", type=int, default=8)
    add_flags(s, SampleConfig, help=DOT_FLAG_HELP)
    s.set_defaults(func=cmd_dot_sample)
    e = dsub.add_parser("eval", help="accuracy vs steps T (and self-consistency vs n) -> records, metrics, report",
                        description="Sample the test split at every --steps value, append graded records to "
                        "OUT/results.jsonl (a rerun resumes), then write metrics.json, steps.png (accuracy vs T), "
                        "parallel.png (maj@k / pass@k vs k) and report.html.")  # fmt: skip
    add_flags(e, DotEvalConfig, help=DOT_FLAG_HELP)
    _add_config_flag(e)
    e.set_defaults(func=cmd_dot_eval)


def cmd_demo(args) -> None:
    from thinkscale.demo import DemoConfig, run_demo

    run_demo(from_args(DemoConfig, args))


SFT_FLAG_HELP = {
    "data": "traces (JSONL, parquet, saved HF dataset) or gsm8k-train | math-train | champ | arith | arith-mul | arith-mixed | "
            "curated-1k",
    "format": "s1 | r1 | plain | hybrid (Thinkless' warm-up: <think>/<short> control tokens are added to the "
              "tokenizer, rows with `mode: short` train <short> answers, pairs stay adjacent)",
    "max_steps": "stop after N optimizer steps (overrides --epochs when > 0)",
    "allow_truncation": "keep samples longer than --max-length (truncated) instead of refusing/dropping",
    "packing": "TRL bfd packing, padding-free (no padding computed); on CPU pair it with --micro-batch-size 1: "
               "sdpa there gives a flattened micro-batch a dense mask (benchmarks/bench_sft.py)",
    "fsdp": "shard parameters, gradients and optimizer state across the launched processes (FSDP2, one unit "
            "per decoder layer); launch with torchrun or `accelerate launch --config_file configs/accelerate/...`",
    "save_total_limit": "checkpoints kept, the newest (a 135M model's is ~1.6 GB with Adam's state); 0 writes none, "
                        "so the run cannot be resumed",
    "fsdp_state_dict": "SHARDED_STATE_DICT: each rank saves its shard (fast; `thinkscale train merge` joins them) "
                       "| FULL_STATE_DICT",
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from thinkscale.demo import DemoConfig
    from thinkscale.infer.batch import BatchExportConfig, BatchImportConfig
    from thinkscale.infer.generate import GenerateConfig
    from thinkscale.train.sft import SFTRunConfig

    p = Parser(
        prog="thinkscale",
        description="Reasoning traces to a measured reasoning model. Every model is local; nothing is downloaded.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="generate with budget forcing, grade, append records (resumable)",
                       description="Generate answers with budget forcing and append graded records to a JSONL "
                                   "file. Re-running the same command resumes: every record already written is skipped.")  # fmt: skip
    add_flags(g, GenerateConfig, groups=GENERATION_GROUPS, single={
        "budgets": ("--budget", "thinking cap in tokens ('none' = no cap)"),
        "num_ignores": ("--num-ignore", "the first K attempts to end thinking are replaced by 'Wait' (extend)"),
        "modes": ("--mode", "--format hybrid: auto (the model emits <think> or <short>; the default), think or short (forced)"),
    })  # fmt: skip
    g.add_argument("--out", required=True, help="results JSONL (appended)")
    _add_config_flag(g)
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("sweep", help="budgets x num_ignore values -> results, metrics, plots, report",
                       description="Run every budget x num_ignore pair in one continuous batch, then write "
                                   "results.jsonl, metrics.json, scaling.png, parallel.png and report.html to --out.")  # fmt: skip
    add_flags(s, GenerateConfig, groups=GENERATION_GROUPS, defaults={"budgets": [32, 128, 512]},
              help={"num_ignores": "Wait counts to try", "modes": "--format hybrid: modes to run (auto think short)"},
              aliases={"num_ignores": ["--num-ignore"], "modes": ["--mode"]})  # fmt: skip
    s.add_argument("--out", required=True, help="run directory")
    _add_config_flag(s)
    s.set_defaults(func=cmd_sweep)

    e = sub.add_parser(
        "eval", help="metrics.json from a results file or run dir (accuracy, pass@k, maj@k, ...)"
    )
    e.add_argument("results", help="results.jsonl or a run directory")
    e.add_argument("--out", help="default: metrics.json beside the results")
    e.add_argument("--judge", metavar="MODEL", help="also ask this local model (embedded name or checkpoint "
                   "dir, greedy) whether each prediction matches the gold: judge_correct is recorded beside "
                   "correct, metrics add judge accuracy and agreement")  # fmt: skip
    e.add_argument("--judge-batch-size", type=int, default=16, help="rows the judge decodes together (default: 16)")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("report", help="scaling.png, parallel.png and report.html for a run dir")
    r.add_argument("run", help="run directory (with results.jsonl)")
    r.set_defaults(func=cmd_report)

    from thinkscale.serve.config import ServeConfig

    sv = sub.add_parser("serve", help="an OpenAI-compatible server with budget forcing (thinking_budget, num_ignore, ...)",
                        description="Serve a model over HTTP with the OpenAI API: /v1/chat/completions (stream and "
                        "not), /v1/completions, /v1/models, /health. Requests may add thinking_budget (or vLLM's "
                        "thinking_token_budget), num_ignore, min_thinking and wait; responses carry the thinking in "
                        "message.reasoning (and reasoning_content) apart from the answer, and usage counts "
                        "reasoning_tokens exactly. All requests share one continuously batched engine loop.")  # fmt: skip
    add_flags(sv, ServeConfig)
    _add_config_flag(sv)
    sv.set_defaults(func=cmd_serve)

    f = sub.add_parser("frontier", help="accuracy vs total tokens: budget caps, n x majority vote, adaptive runs",
                       description="Evaluate the records of every results file given (a budget sweep with --n "
                       "samples, adaptive runs, ...) together and draw the compute-matched frontier: accuracy "
                       "vs average generated tokens per question (thinking + answer + adaptive probes; maj@k "
                       "over k samples costs k times), the Pareto set marked. Writes metrics.json (its "
                       "'frontier' table), frontier.png and report.html.")  # fmt: skip
    f.add_argument("paths", nargs="+", help="results files, or directories whose *.jsonl are results")
    f.add_argument("--out", help="output directory (default: the first directory given)")
    f.set_defaults(func=cmd_frontier)

    from thinkscale.coverage_run import CoverageConfig

    cv = sub.add_parser("coverage", help="pass@k for every k <= n and chunk coverage of one or more models (refine)",
                        description="Sample --n completions per question at --temperature 1 from each --model "
                        "(resumable records in OUT/<model>/results.jsonl), then compute the unbiased pass@k for "
                        "every k <= n and refine's disjoint-chunk coverage (n/k chunks, mean ± standard error), "
                        "and write OUT/metrics.json and OUT/coverage.png with one line per model.")  # fmt: skip
    add_flags(cv, CoverageConfig, groups=GENERATION_GROUPS, exclude=("num_ignores", "runs", "modes", "adaptive",
              "probe_every", "probe_tokens", "agree", "confidence", "forcing"),
              single={"budgets": ("--budget", "thinking cap in tokens ('none' = no cap)")})  # fmt: skip
    cv.add_argument("--out", required=True, help="output directory")
    _add_config_flag(cv)
    cv.set_defaults(func=cmd_coverage)

    from thinkscale.synth.loop import SynthConfig

    sy = sub.add_parser("synth", help="synthetic-data rounds: sample, verify, self-correct, curate, retrain",
                        description="Round 0 fine-tunes --model on --seed-data. Each later round samples --samples "
                        "solutions per still-unsolved question with the last model, keeps the verified ones (gold "
                        "answer, majority vote, or vote + the model's own check; optional self-correction), runs them "
                        "through the curation stages (quality, decontamination, exact dedup), and fine-tunes again on "
                        "the seed + everything kept. Writes round-*/ (data.jsonl, funnel.json, model/, metrics.json), "
                        "synth.json and synth.png to --out; a rerun resumes.")  # fmt: skip
    add_flags(sy, SynthConfig, groups={
        "sampling (generate's flags)": ("format", "temperature", "top_p", "budget", "max_answer_tokens", "gen_batch_size", "dtype"),
        "training (train sft's flags)": ("max_steps", "epochs", "learning_rate", "batch_size", "micro_batch_size", "warmup",
                                         "max_length", "save_steps", "seed"),
        "held-out evaluation and DoT": ("eval_task", "eval_limit", "eval_samples", "dot", "dot_train_seconds", "dot_steps"),
        "curation": ("decontaminate_against", "ngram"),
    })  # fmt: skip
    sy.add_argument("--out", required=True, help="run directory")
    _add_config_flag(sy)
    sy.set_defaults(func=cmd_synth)

    t = sub.add_parser(
        "train", help="fine-tune on reasoning traces (train sft), RL (train grpo), merge FSDP shards (train merge)"
    )
    tsub = t.add_subparsers(dest="train_command", required=True, metavar="STAGE")
    sft = tsub.add_parser(
        "sft",
        help="completion-only SFT on think/answer traces (TRL SFTTrainer)",
        description="Fine-tune a causal LM on reasoning traces; loss on the assistant turn only. Writes a "
        "normal HF checkpoint to --out that `generate`, `sweep` and `demo` load with --model.",
    )
    add_flags(sft, SFTRunConfig, help=SFT_FLAG_HELP)
    _add_config_flag(sft)
    sft.set_defaults(func=cmd_train_sft)
    from thinkscale.train.grpo import GRPORunConfig

    gr = tsub.add_parser(
        "grpo", help="RL with verifiable rewards: GRPO, or Thinkless' decoupled GRPO (TRL GRPOTrainer)",
        description="Sample --num-generations completions per question, reward them with the task's grader "
        "(hybrid: per mode), and optimize with TRL's GRPOTrainer; --objective degrpo decouples the control "
        "token's term (Thinkless). Generation: TRL's own path, the model's generate in this process (CPU or "
        "GPU); --use-vllm generates with vLLM (colocated) where vLLM runs. Writes a normal HF checkpoint to "
        "--out; --resume continues from the latest checkpoint.",
    )  # fmt: skip
    add_flags(gr, GRPORunConfig, help={k: v for k, v in SFT_FLAG_HELP.items() if k not in ("data", "format")}, groups={
        "data (one of --task or --data)": GENERATION_GROUPS["data (one of --task or --data)"]})  # fmt: skip
    _add_config_flag(gr)
    gr.set_defaults(func=cmd_train_grpo)
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
    exp = bsub.add_parser("export", help="write an OpenAI batch JSONL (custom_id = {id}-rep-{i}) for vllm run-batch etc.",
                          description="write an OpenAI batch JSONL (custom_id = {id}-rep-{i}) for vllm run-batch etc.")  # fmt: skip
    add_flags(exp, BatchExportConfig, required=("out",))
    exp.set_defaults(func=cmd_batch_export)
    imp = bsub.add_parser("import", help="turn an OpenAI batch output JSONL into graded records for eval/report",
                          description="turn an OpenAI batch output JSONL into graded records for eval/report")  # fmt: skip
    imp.add_argument("file", help="the server's output JSONL")
    add_flags(imp, BatchImportConfig, exclude=("file", "limit"), required=("out",))
    imp.set_defaults(func=cmd_batch_import)

    _add_data_parser(sub)
    _add_dot_parser(sub)

    d = sub.add_parser("demo", help="the main job: a test-time scaling sweep of the embedded model on GSM8K",
                       description="Fine-tune the embedded SmolLM2-135M on arithmetic traces, then sweep the thinking "
                                   "budget on held-out arithmetic and on GSM8K: writes model/, results.jsonl, "
                                   "metrics.json, scaling.png, parallel.png, report.html.")  # fmt: skip
    add_flags(d, DemoConfig)
    d.set_defaults(func=cmd_demo)
    return p


def _config_path(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


def _command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)parser of the command the leading words of argv name (`data curate` ...)."""
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    config = _config_path(argv)
    if config:
        command = _command_parser(parser, argv)
        if any(a.dest == "config" for a in command._actions):
            apply_config_file(command, config)  # the file's values become the defaults ...
    return parser.parse_args(argv)  # ... and the command line wins over them


def main(argv: list[str] | None = None) -> int:
    from thinkscale.models import offline

    offline()
    try:
        args = _parse(argv)
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
