"""A local judge: a second opinion on short answers where phrasing varies (fs1), from any local
checkpoint through thinkscale's own engine (greedy), with a fixed prompt. No API, no network.

The rule-based `correct` stays; the judge adds `judge_correct` (true/false, null when its reply
says neither) and `judge_model`. Verdicts are appended to `<results>.judge.jsonl` as they come
(resume after a crash), then the results file is rewritten once, atomically, with both verdicts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from thinkscale.records import Record, RecordWriter, load_records, record_key, write_jsonl_atomic

JUDGE_PROMPT = (
    "You are checking an answer against the reference answer of a question.\n"
    "Question: {question}\n"
    "Reference answer: {gold}\n"
    "Proposed answer: {pred}\n"
    "Does the proposed answer mean the same as the reference answer? Reply with one word: yes or no."
)
_VERDICT = re.compile(r"\b(yes|no|correct|incorrect|true|false)\b", re.IGNORECASE)


def judge_prompt(rec: Record) -> str:
    gold = rec.get("gold")
    gold = " or ".join(map(str, gold)) if isinstance(gold, list) else str(gold)
    question = (rec.get("question") or "")[:2000]
    return JUDGE_PROMPT.format(question=question, gold=gold, pred=rec.get("pred"))


def parse_verdict(reply: str) -> bool | None:
    """The first yes/no (or correct/incorrect, true/false) in the reply; None if there is none."""
    m = _VERDICT.search(reply or "")
    return None if m is None else m.group(1).lower() in ("yes", "correct", "true")


def judge_path(results: Path) -> Path:
    return results.with_name(results.name + ".judge.jsonl")


def judge_results(
    results: str | Path, judge_model: str, batch_size: int = 16, model=None, tokenizer=None,
    progress: bool = True,
) -> int:  # fmt: skip
    """Judge every record of `results` not yet judged by `judge_model`; returns how many the
    judge answered in this call. A record with no prediction is judged wrong without asking."""
    from thinkscale.infer.generate import GenerateConfig, generate_records
    from thinkscale.tasks import QuestionsTask

    results = Path(results)
    records = load_records(results)
    log_path = judge_path(results)
    verdicts = {}  # record key -> verdict, from this judge model only
    for v in load_records(log_path):
        if v.get("judge_model") == judge_model:
            verdicts[tuple(v["record_key"])] = v["judge_correct"]
    todo = [r for r in records if record_key(r) not in verdicts and r.get("pred") is not None]
    asked = 0
    if todo:
        ids = [f"judge-{i}" for i in range(len(todo))]
        by_id = dict(zip(ids, todo))
        task = QuestionsTask([judge_prompt(r) for r in todo], ids=ids, name="judge", instruction="")
        cfg = GenerateConfig(model=judge_model, format="plain", budgets=[None], max_answer_tokens=8,
                             temperature=0.0, batch_size=batch_size)  # fmt: skip
        with RecordWriter(log_path) as log:
            for out in generate_records(cfg, task, model=model, tokenizer=tokenizer, progress=progress):
                key = record_key(by_id[out["id"]])
                verdicts[key] = verdict = parse_verdict(out["answer"])
                log.write({"task": "judge", "id": f"{judge_model} {json.dumps(key)}", "record_key": list(key),
                           "judge_model": judge_model, "judge_correct": verdict, "reply": out["answer"]})  # fmt: skip
                asked += 1
    judged = []
    for r in records:
        r = dict(r)
        r["judge_correct"] = verdicts[record_key(r)] if r.get("pred") is not None else False
        r["judge_model"] = judge_model
        judged.append(r)
    write_jsonl_atomic(results, judged)
    return asked

