"""Reasoning traces in: `question`, `thinking`, `answer` (names configurable), optional `id`,
`source`, `domain`; from JSONL, parquet, a saved HF dataset, or a built-in corpus name."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.tasks.base import read_table
from thinkscale.tasks.builtin import GSM8K, MATH

BUILTIN_CORPORA = ("gsm8k-train", "math-train", "champ", "arith", "arith-mul", "arith-mixed", "curated-1k")
# `thinkscale data curate` output shipped with the package (README: "On real data")
CURATED = Path(__file__).parent / "builtin" / "curated-1k.jsonl"


@dataclass
class TraceFields:
    question: str = "question"
    thinking: str = "thinking"
    answer: str = "answer"
    id: str | None = "id"


def _gsm8k_train() -> list[dict]:
    """Rationale (calculator annotations removed) as thinking, the `#### N` number as answer."""
    rows = []
    for ex in GSM8K("train").load():
        rationale = re.sub(r"<<[^>]*>>", "", ex.meta["solution"].rsplit("####", 1)[0]).strip()
        rows.append(
            {
                "id": ex.id,
                "question": ex.question,
                "thinking": rationale,
                "answer": ex.gold,
                "source": "gsm8k",
            }
        )
    return rows


def _math_train() -> list[dict]:
    """The solution as thinking, its last boxed answer as answer."""
    return [
        {
            "id": ex.id,
            "question": ex.question,
            "thinking": ex.meta["solution"],
            "answer": ex.gold,
            "source": "math",
            "domain": ex.meta.get("type"),
        }  # fmt: skip
        for ex in MATH("train").load()
    ]


def _champ() -> list[dict]:
    """CHAMP (PyPI `champ-dataset`): 270 competition problems with step-by-step solutions.
    Read from the package's JSON file (its module needs `natsort`, which we don't install)."""
    import importlib.util

    spec = importlib.util.find_spec("champ_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ThinkscaleError("built-in corpus 'champ' needs: pip install --no-deps champ-dataset")
    path = Path(spec.submodule_search_locations[0]) / "dataset_files" / "v0.json"
    problems = json.loads(path.read_text(encoding="utf-8"))["problems"]
    rows = []
    for p in problems.values():
        solution = p["solution"]
        if isinstance(solution, str):  # stored as a Python repr in this release
            solution = ast.literal_eval(solution)
        rows.append({
            "id": p["identifier"],
            "question": p["_text"],
            "thinking": "\n".join(step["_text"] for step in solution["steps"]),
            "answer": p["_answer"],
            "source": "champ",
            "domain": p["category"],
        })  # fmt: skip
    return rows


def load_traces(
    source: str, fields: TraceFields | None = None, limit: int | None = None
) -> list[dict]:
    """Validated traces as dicts with question/thinking/answer/id (+ source, domain if present)."""
    fields = fields or TraceFields()
    if source == "gsm8k-train":
        rows = _gsm8k_train()
    elif source == "math-train":
        rows = _math_train()
    elif source == "curated-1k":
        rows = [trace_from(r, TraceFields(), f"{CURATED}:{i}", CURATED.stem, i)
                | {k: r[k] for k in ("trace_tokens",) if k in r}
                for i, r in read_table(CURATED)]  # fmt: skip
    elif source == "champ":
        rows = _champ()
    elif source == "arith":
        from thinkscale.data.arith import ArithConfig, arith_traces

        rows = arith_traces(ArithConfig())
    elif source == "arith-mul":
        from thinkscale.data.arith import MUL_CONFIG, arith_traces

        rows = arith_traces(MUL_CONFIG)
    elif source == "arith-mixed":
        from thinkscale.data.arith import mixed_arith

        rows = mixed_arith("train")
    else:
        rows = _read_user_traces(Path(source), fields)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise ThinkscaleError(f"{source}: no traces (empty dataset)")
    return rows


def _read_user_traces(path: Path, fields: TraceFields) -> list[dict]:
    return [
        trace_from(r, fields, f"{path}:{lineno}", path.stem, lineno)
        for lineno, r in read_table_or_dataset(path)
    ]


def read_table_or_dataset(path: Path) -> list[tuple[int, dict]]:
    if path.is_dir():  # a saved HF dataset
        from datasets import load_from_disk

        try:
            return list(enumerate(load_from_disk(str(path)), 1))
        except Exception as e:
            raise ThinkscaleError(
                f"{path}: not a saved HF dataset ({str(e).splitlines()[0]})"
            ) from None
    return read_table(path)


def trace_from(r: dict, fields: TraceFields, where: str, stem: str, lineno: int) -> dict:
    """One row as a trace; a missing or empty field is an error naming `where` (file:line). A
    hybrid pair's short row (`mode: short`, from `data hybrid`) has no thinking."""
    mode = r.get("mode")
    if mode is not None and mode not in ("think", "short"):
        raise ThinkscaleError(f"{where}: field 'mode' must be think or short, got {mode!r}")
    required = (fields.question, fields.answer) + (() if mode == "short" else (fields.thinking,))
    for name in required:
        if name not in r or r[name] is None or not str(r[name]).strip():
            what = "empty" if name in r else "missing"
            raise ThinkscaleError(f"{where}: {what} field '{name}'")
    return {
        "id": str(r[fields.id]) if fields.id and r.get(fields.id) is not None else f"{stem}-{lineno}",
        "question": str(r[fields.question]),
        "thinking": "" if mode == "short" else str(r[fields.thinking]),
        "answer": str(r[fields.answer]),
        **{k: r[k] for k in ("source", "domain", "difficulty", "mode", "pair") if r.get(k) is not None},
    }  # fmt: skip
