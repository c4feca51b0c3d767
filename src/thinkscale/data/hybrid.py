"""`thinkscale data hybrid`: long/short answer pairs for a hybrid model's warm-up (Thinkless'
Reasoning-SFT), one pair per question.

The long row is the trace as it is (`<think>` mode); the short row answers at once (`<short>`
mode), with either the trace's own final answer (`--short-from answer`) or what a model answers
in the plain format (`--short-from model`, through thinkscale's engine, greedy), kept only when
it grades correct and was not cut at `--max-answer-tokens`. Rows are written pair by pair
(`{id}-think`, then `{id}-short`, sharing `pair`), which `train sft --format hybrid` keeps
adjacent when it shuffles. A question whose short answer is dropped is dropped whole: every
question the warm-up sees has both modes.

Writes OUT/data.jsonl and OUT/funnel.json atomically; with a model, its answers are appended to
OUT/shorts.jsonl as records first, so a rerun resumes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, option
from thinkscale.data.traces import BUILTIN_CORPORA, TraceFields, load_traces
from thinkscale.models import DEFAULT_MODEL, DTYPES
from thinkscale.records import load_records, write_json_atomic, write_jsonl_atomic
from thinkscale.tasks.grading import GRADERS

SHORT_FROM = ("answer", "model")


@dataclass
class HybridPairsConfig:
    data: str = option(None, help="traces (JSONL, parquet, saved HF dataset) or " + " | ".join(BUILTIN_CORPORA))
    out: str = option(None, help="output directory: data.jsonl (the pairs), funnel.json")
    short_from: str = option("answer", choices=SHORT_FROM,
                             help="answer: the trace's final answer; model: --short-model answers in the "
                             "plain format, kept only when graded correct")  # fmt: skip
    short_model: str = option(DEFAULT_MODEL, help="with --short-from model: embedded name or checkpoint dir")
    grader: str = option("math", choices=lambda: GRADERS, help="grades the model's short answers against the trace's")
    question_field: str = option("question")
    thinking_field: str = option("thinking")
    answer_field: str = option("answer")
    id_field: str | None = option("id", help="default: the line number")
    limit: int | None = option(None, help="first N traces only")
    max_answer_tokens: int = option(64, help="with --short-from model: a longer answer is dropped, not kept cut")
    batch_size: int = option(16, help="with --short-from model: rows decoded together")
    dtype: str = option("auto", choices=DTYPES, help="auto: bfloat16 where the CPU has bf16 units, else float32")

    def validate(self) -> None:
        if not self.data or not self.out:
            raise ThinkscaleError("data hybrid needs --data and --out")
        if self.short_from not in SHORT_FROM:
            raise ThinkscaleError(f"--short-from must be one of {', '.join(SHORT_FROM)}, got {self.short_from!r}")
        check_at_least(self, 1, "limit", "max_answer_tokens", "batch_size")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ThinkscaleError(f"{out}: is a file; --out is a directory")


def short_rows_from_model(cfg: HybridPairsConfig, traces: list[dict], out: Path) -> dict[str, dict]:
    """The model's plain-format answer record per trace id (appended to OUT/shorts.jsonl)."""
    from thinkscale.infer.generate import GenerateConfig, generate
    from thinkscale.tasks import QuestionsTask

    task = QuestionsTask([t["question"] for t in traces], [t["answer"] for t in traces],
                         [t["id"] for t in traces], name="shorts", grader=cfg.grader)  # fmt: skip
    gen = GenerateConfig(task="shorts", model=cfg.short_model, format="plain", budgets=[None],
                         max_answer_tokens=cfg.max_answer_tokens, batch_size=cfg.batch_size, dtype=cfg.dtype)  # fmt: skip
    path = generate(gen, out / "shorts.jsonl", task=task)
    return {str(r["id"]): r for r in load_records(path)}


def build_pairs(cfg: HybridPairsConfig) -> dict:
    """Write OUT/data.jsonl (pairs) and OUT/funnel.json; returns the funnel."""
    cfg.validate()
    fields = TraceFields(cfg.question_field, cfg.thinking_field, cfg.answer_field, cfg.id_field)
    traces = [t for t in load_traces(cfg.data, fields, cfg.limit) if t.get("mode") != "short"]
    seen: dict[str, int] = {}
    for i, t in enumerate(traces):
        if t["id"] in seen:
            raise ThinkscaleError(f"{cfg.data}: id '{t['id']}' appears twice (rows {seen[t['id']] + 1} and {i + 1}); "
                                  "pairs are named {id}-think / {id}-short, so ids must be unique")  # fmt: skip
        seen[t["id"]] = i
    out = Path(cfg.out)
    funnel = {"rows_in": len(traces), "short_from": cfg.short_from, "shorts_wrong": 0, "shorts_truncated": 0,
              "shorts_empty": 0}  # fmt: skip
    if cfg.short_from == "model":
        from thinkscale.models import resolve_model_path

        resolve_model_path(cfg.short_model)  # a bad model name fails before any output exists
        answers = short_rows_from_model(cfg, traces, out)
    rows = []
    for t in traces:
        short = t["answer"]
        if cfg.short_from == "model":
            rec = answers[t["id"]]
            short = (rec.get("answer") or "").strip()
            reason = ("shorts_empty" if not short else "shorts_truncated" if rec.get("finish_reason") == "length"
                      else "shorts_wrong" if not rec.get("correct") else None)  # fmt: skip
            if reason:
                funnel[reason] += 1
                continue
        base = {k: t[k] for k in ("source", "domain", "difficulty") if k in t}
        rows.append({"id": f"{t['id']}-think", "pair": t["id"], "mode": "think", "question": t["question"],
                     "thinking": t["thinking"], "answer": t["answer"], **base})  # fmt: skip
        rows.append({"id": f"{t['id']}-short", "pair": t["id"], "mode": "short", "question": t["question"],
                     "thinking": "", "answer": short, **base})  # fmt: skip
    funnel["pairs_out"] = len(rows) // 2
    funnel["rows_out"] = len(rows)
    if not rows:
        raise ThinkscaleError(f"no pairs: every short answer was dropped ({funnel})")
    write_jsonl_atomic(out / "data.jsonl", rows)
    write_json_atomic(out / "funnel.json", funnel)
    return funnel
