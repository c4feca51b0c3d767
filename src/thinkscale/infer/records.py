"""Append-only JSONL results with exactly-once resume.

A record's key is (task, id, sample, budget, num_ignore). Re-running a command skips every key
already in the file. A crash can leave a truncated last line: it is cut off on open (its key is
not done, so it is generated again); a malformed line anywhere else is an error naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from thinkscale import ThinkscaleError

RECORD_FIELDS = (
    "task", "id", "sample", "budget", "num_ignore", "question", "gold", "thinking", "answer",
    "pred", "correct", "thinking_tokens", "answer_tokens", "capped", "waits", "finish_reason",
)  # fmt: skip


def record_key(rec: dict) -> tuple:
    return (
        rec.get("task"),
        str(rec["id"]),
        int(rec.get("sample", 0)),
        rec.get("budget"),
        int(rec.get("num_ignore", 0)),
    )


def load_records(path: str | Path, repair: bool = False) -> list[dict]:
    """All complete records. With `repair`, a truncated last line is removed from the file."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        if repair:
            with open(path, "r+b") as f:
                f.truncate(cut)
        data = data[:cut]
    records = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            record_key(rec)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ThinkscaleError(f"{path}:{lineno}: not a results record ({e})") from None
        records.append(rec)
    return records


class RecordWriter:
    """Appends records one line at a time, flushed, so a killed process loses no written record."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = load_records(self.path, repair=True)  # what was there before this run
        self.done = {record_key(r) for r in self.records}
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        key = record_key(rec)
        if key in self.done:
            return
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        self.done.add(key)

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_jsonl_atomic(path: str | Path, objs) -> int:
    """One JSON object per line, written to a temp file, then renamed; returns the line count."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for obj in objs:
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def write_json_atomic(path: str | Path, obj) -> None:
    """Write to a temp file, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
