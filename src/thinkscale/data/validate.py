"""The first stage of curation: every row is checked (UTF-8, JSON, required fields, unique id);
a bad row is dropped with its file:line and reason instead of ending a long run on row 40,000."""

from __future__ import annotations

import json
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.data.traces import BUILTIN_CORPORA, TraceFields, load_traces, trace_from


def validate_traces(
    sources: list[str], fields: TraceFields | None = None, limit: int | None = None
) -> tuple[list[dict], list[dict]]:
    """(valid traces, dropped rows as {id, where, reason}) from files or built-in corpus names."""
    fields = fields or TraceFields()
    kept: list[dict] = []
    dropped: list[dict] = []
    seen: set[str] = set()
    for source in sources:
        if source in BUILTIN_CORPORA:
            numbered = [(i, r, f"{source}:{i}") for i, r in enumerate(load_traces(source), 1)]
            source_fields = TraceFields()
        else:
            numbered = _read_rows(Path(source), dropped)
            source_fields = fields
        stem = Path(source).stem
        for lineno, row, where in numbered:
            try:
                trace = trace_from(row, source_fields, where, stem, lineno)
            except ThinkscaleError as e:
                dropped.append({"id": where, "where": where, "reason": _reason(str(e))})
                continue
            if trace["id"] in seen:
                dropped.append({"id": trace["id"], "where": where, "reason": "duplicate_id"})
                continue
            seen.add(trace["id"])
            kept.append(trace)
    if limit is not None:
        kept = kept[:limit]
    if not kept:
        shown = "; ".join(f"{d['where']}: {d['reason']}" for d in dropped[:3])
        raise ThinkscaleError(
            f"{', '.join(sources)}: no valid traces"
            + (f" ({shown})" if shown else " (empty input)")
        )
    return kept, dropped


def _reason(message: str) -> str:
    """'file:3: missing field 'thinking'' -> 'missing_field:thinking' (a countable reason)."""
    text = message.split(": ", 1)[-1]
    if "field '" in text:
        what = "missing" if text.startswith("missing") else "empty"
        return f"{what}_field:{text.split(chr(39))[1]}"
    return text


def _read_rows(path: Path, dropped: list[dict]) -> list[tuple[int, dict, str]]:
    """(line, row, 'file:line') for each readable row; undecodable lines go to `dropped`."""
    if not path.exists():
        raise ThinkscaleError(f"{path}: file not found")
    if path.is_dir() or path.suffix == ".parquet":
        from thinkscale.data.traces import read_table_or_dataset

        return [(i, r, f"{path}:{i}") for i, r in read_table_or_dataset(path)]
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                dropped.append({"id": where, "where": where, "reason": "invalid_utf8"})
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                dropped.append({"id": where, "where": where, "reason": "malformed_json"})
                continue
            if not isinstance(obj, dict):
                dropped.append({"id": where, "where": where, "reason": "not_an_object"})
                continue
            rows.append((lineno, obj, where))
    return rows
