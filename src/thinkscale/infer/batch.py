"""OpenAI batch files out and back: run generation elsewhere, evaluate here.

`export_batch` writes one chat-completions request per (question, sample), `custom_id` =
`{id}-rep-{i}` (fs1's convention), that `vllm run-batch` or any OpenAI-batch-compatible server
accepts. For thinking formats the assistant turn is pre-filled with the think delimiter
(`continue_final_message`, a vLLM extension that other servers ignore). `--format hybrid`: one
`--mode` per file; auto pre-fills nothing (the model writes `<think>` or `<short>`, kept in the
content with vLLM's `skip_special_tokens: false`), think / short pre-fill their control token.
`import_batch` reads the server's output lines (`custom_id`,
`response.body.choices[0].message.content`, `error`), splits thinking from answer by format,
grades, and appends our records (hybrid: with the mode each sample took and the one it ran
under, as `generate` writes them); failed lines are reported.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, option
from thinkscale.formats import AUTO, MODES, FormatConfig, ThinkFormat
from thinkscale.infer.generate import TaskSource
from thinkscale.models import DEFAULT_MODEL
from thinkscale.records import (
    RecordWriter,
    make_record,
    read_jsonl,
    record_name,
    write_jsonl_atomic,
)
from thinkscale.tasks.grading import GradingPool


@dataclass
class BatchModeConfig(FormatConfig):
    mode: str | None = option(None, choices=MODES, help="--format hybrid: auto (the model writes <think> or "
                              "<short>; the default), think or short (pre-filled); one mode per batch file")  # fmt: skip

    def checked_mode(self) -> tuple[ThinkFormat, str | None]:
        """The format, and the hybrid mode this batch runs under (None: the format has no modes)."""
        fmt, modes = self.checked_modes(None if self.mode is None else [self.mode])
        return fmt, modes[0] if modes else None


@dataclass
class BatchExportConfig(TaskSource, BatchModeConfig):
    out: str | None = option(None, help="batch requests JSONL")
    n: int = option(1, help="samples per question")
    model_name: str = option("model", help="the `model` field of each request (the server's name)")
    max_tokens: int = option(4096)
    temperature: float = option(0.0)
    seed: int = option(0, help="with --shuffle-choices: the seed of the options' permutation")


@dataclass
class BatchImportConfig(TaskSource, BatchModeConfig):
    file: str | None = option(None, help="the server's output JSONL")
    out: str | None = option(None, help="results JSONL (appended)")
    tokenizer: str = option(DEFAULT_MODEL, help="model name or dir whose tokenizer counts tokens ('' = none)")
    seed: int = option(0, help="with --shuffle-choices: the seed the export shuffled with")
    n: int | None = option(None, help="samples per question the batch was exported with: a "
                           "custom_id whose sample index is outside it is an error")


def export_batch(cfg: BatchExportConfig) -> int:
    cfg.check_source()
    check_at_least(cfg, 1, "n", "max_tokens")
    check_at_least(cfg, 0, "temperature")
    fmt, mode = cfg.checked_mode()
    task = cfg.build_task()
    examples = task.load(cfg.limit)
    prefill = fmt.mode_start(mode) if fmt.thinks else ""

    def lines():
        for ex in examples:
            messages = [{"role": "user", "content": task.prompt(ex)}]
            extra = {}
            if prefill:
                messages.append({"role": "assistant", "content": prefill})
                extra = {"add_generation_prompt": False, "continue_final_message": True}
            if mode is not None:  # the control token is a special token: keep it in the content
                extra["skip_special_tokens"] = False
            for i in range(cfg.n):
                body = {"model": cfg.model_name, "messages": messages, "max_tokens": cfg.max_tokens,
                        "temperature": cfg.temperature, **extra}  # fmt: skip
                yield {
                    "custom_id": f"{ex.id}-rep-{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": body,
                }

    return write_jsonl_atomic(Path(cfg.out), lines())


def _parse_output(path: Path) -> tuple[list[tuple[str, int, str, str | None, int]], list[str]]:
    """(id, sample, content, finish_reason, line) per good line, and a description of each
    failed line. A line's shape is checked: a server error is a failed line, anything else that
    is not a chat completion with string content is an error naming file:line."""
    good, failed = [], []
    for lineno, obj in read_jsonl(path):
        cid = obj.get("custom_id")
        ex_id, _, rep = cid.rpartition("-rep-") if isinstance(cid, str) else ("", "", "")
        if not ex_id or not rep.isdigit():
            raise ThinkscaleError(
                f"{path}:{lineno}: field 'custom_id' must look like '{{id}}-rep-{{i}}', got {cid!r}"
            )
        if obj.get("error"):
            failed.append(f"{path.name}:{lineno} {cid}: {json.dumps(obj['error'])[:200]}")
            continue
        if "response" not in obj:
            raise ThinkscaleError(f"{path}:{lineno}: field 'response': missing (and no 'error')")
        try:
            choice = obj["response"]["body"]["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            failed.append(
                f"{path.name}:{lineno} {cid}: no response.body.choices[0].message.content"
            )
            continue
        if content is not None and not isinstance(content, str):
            raise ThinkscaleError(
                f"{path}:{lineno}: field 'response.body.choices[0].message.content' must be a "
                f"string, got {type(content).__name__}"
            )
        reason = choice.get("finish_reason")
        good.append((ex_id, int(rep), content or "", reason if isinstance(reason, str) else None, lineno))
    return good, failed


def import_batch(cfg: BatchImportConfig) -> tuple[int, list[str]]:
    """Append graded records for the good lines; return (records written, failed lines)."""
    cfg.check_source()
    check_at_least(cfg, 1, "n")
    fmt, mode = cfg.checked_mode()
    path, out, task = Path(cfg.file), Path(cfg.out), cfg.build_task()
    tokenizer = None
    if cfg.tokenizer:
        from thinkscale.models import load_tokenizer

        tokenizer = load_tokenizer(cfg.tokenizer)
    good, failed = _parse_output(path)
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    if not good:
        raise ThinkscaleError(f"{path}: no usable line ({len(failed)} failed)")
    examples = {ex.id: ex for ex in task.load()}
    seen: dict[tuple[str, int], int] = {}
    for ex_id, sample, _, _, lineno in good:
        where = f"{path}:{lineno}: field 'custom_id'"
        if ex_id not in examples:
            raise ThinkscaleError(f"{where}: ids not in task '{task.name}': {ex_id}")
        if cfg.n is not None and sample >= cfg.n:
            raise ThinkscaleError(f"{where}: sample {sample} of {ex_id} is outside --n {cfg.n} (0..{cfg.n - 1})")
        if (ex_id, sample) in seen:
            raise ThinkscaleError(f"{where}: {ex_id}-rep-{sample} also on line {seen[ex_id, sample]}")
        seen[ex_id, sample] = lineno

    def count(text: str) -> int | None:
        return (
            len(tokenizer.encode(text, add_special_tokens=False)) if tokenizer is not None else None
        )

    records = []
    for ex_id, sample, content, finish_reason, _ in good:
        ex = examples[ex_id]
        took = fmt.chosen_mode(content) if mode == AUTO else mode  # forced, or its leading control token
        thinking, answer = fmt.split(content, took)
        hybrid = {"mode": took, "requested_mode": mode} if mode is not None else {}
        # a completion that never left thinking has no answer (s1 counts it so): nothing to grade
        pred = task.extract(answer, ex) if answer else None
        records.append(make_record(
            task=task.name, id=ex_id, sample=sample, budget=None, num_ignore=0, question=ex.question,
            gold=ex.gold, thinking=thinking, answer=answer, pred=pred, correct=None,
            thinking_tokens=count(thinking), answer_tokens=count(answer), capped=False, waits=0,
            finish_reason=finish_reason, grader=task.grader, format=fmt.label, source_file=str(path),
            **hybrid, **task.extras(ex, pred),
        ))  # fmt: skip
    with GradingPool(workers=1) as pool:
        verdicts = pool.grade([(task.grader, r["pred"], r["gold"]) for r in records],
                              [record_name(r) for r in records])
    with RecordWriter(out) as writer:
        before = len(writer.done)
        for rec, ok in zip(records, verdicts):
            rec["correct"] = ok
            writer.write(rec)
        written = len(writer.done) - before
    return written, failed
