"""OpenAI batch files out and back: run generation elsewhere, evaluate here.

`export_batch` writes one chat-completions request per (question, sample), `custom_id` =
`{id}-rep-{i}` (fs1's convention), that `vllm run-batch` or any OpenAI-batch-compatible server
accepts. For thinking formats the assistant turn is pre-filled with the think delimiter
(`continue_final_message`, a vLLM extension that other servers ignore). `import_batch` reads the
server's output lines (`custom_id`, `response.body.choices[0].message.content`, `error`), splits
thinking from answer by format, grades, and appends our records; failed lines are reported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.formats import get_format
from thinkscale.infer.records import RecordWriter, write_jsonl_atomic
from thinkscale.tasks import Task
from thinkscale.tasks.base import read_jsonl
from thinkscale.tasks.grading import GradingPool


def export_batch(task: Task, out: str | Path, n: int = 1, fmt_name: str = "s1", model: str = "model",
                 max_tokens: int = 4096, temperature: float = 0.0, limit: int | None = None) -> int:  # fmt: skip
    if n < 1:
        raise ThinkscaleError(f"--n must be >= 1, got {n}")
    fmt = get_format(fmt_name)
    examples = task.load(limit)

    def lines():
        for ex in examples:
            messages = [{"role": "user", "content": task.prompt(ex)}]
            extra = {}
            if fmt.thinks:
                messages.append({"role": "assistant", "content": fmt.think_start})
                extra = {"add_generation_prompt": False, "continue_final_message": True}
            for i in range(n):
                body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
                        **extra}  # fmt: skip
                yield {
                    "custom_id": f"{ex.id}-rep-{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": body,
                }

    return write_jsonl_atomic(Path(out), lines())


def _parse_output(path: Path) -> tuple[list[tuple[str, int, str]], list[str]]:
    """(id, sample, content) per good line, and a description of each failed line."""
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
        try:
            content = obj["response"]["body"]["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            failed.append(
                f"{path.name}:{lineno} {cid}: no response.body.choices[0].message.content"
            )
            continue
        good.append((ex_id, int(rep), content or ""))
    return good, failed


def import_batch(
    path: str | Path, task: Task, out: str | Path, fmt_name: str = "s1", tokenizer=None
) -> tuple[int, list[str]]:
    """Append graded records for the good lines; return (records written, failed lines)."""
    fmt = get_format(fmt_name)
    good, failed = _parse_output(Path(path))
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    if not good:
        raise ThinkscaleError(f"{path}: no usable line ({len(failed)} failed)")
    examples = {ex.id: ex for ex in task.load()}
    unknown = sorted({i for i, _, _ in good if i not in examples})
    if unknown:
        raise ThinkscaleError(f"{path}: ids not in task '{task.name}': {', '.join(unknown[:5])}")

    def count(text: str) -> int | None:
        return (
            len(tokenizer.encode(text, add_special_tokens=False)) if tokenizer is not None else None
        )

    records = []
    for ex_id, sample, content in good:
        ex = examples[ex_id]
        thinking, answer = fmt.split(content)
        pred = task.extract(answer or content)
        records.append({
            "task": task.name, "id": ex_id, "sample": sample, "budget": None, "num_ignore": 0,
            "question": ex.question, "gold": ex.gold, "thinking": thinking, "answer": answer, "pred": pred,
            "correct": None, "thinking_tokens": count(thinking), "answer_tokens": count(answer), "capped": False,
            "waits": 0, "finish_reason": "imported", "grader": task.grader, "format": fmt.name,
            "source_file": str(path),
        })  # fmt: skip
    with GradingPool(workers=1) as pool:
        verdicts = pool.grade([(task.grader, r["pred"], r["gold"]) for r in records])
    with RecordWriter(out) as writer:
        before = len(writer.done)
        for rec, ok in zip(records, verdicts):
            rec["correct"] = ok
            writer.write(rec)
        written = len(writer.done) - before
    return written, failed
