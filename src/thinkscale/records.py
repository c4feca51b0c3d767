"""The record every producer writes and eval reads: its fields, its key, resume, atomic writes.

A record is one graded sample: a plain dict (JSON on disk), built by `make_record` only, so the
field list lives here once. Its key is (task, id, sample, budget, num_ignore), plus the requested
mode for a hybrid model's records (auto / think / short runs of one sweep share a file). Results files are
append-only JSONL: re-running a command skips every key already in the file; a crash can leave a
truncated last line, which is cut off on open (its key is not done, so it is generated again).
Everything read back is checked: a malformed line, a field of the wrong type, or a key seen twice
is an error naming file:line, never a silently wrong number.

This module imports nothing of the stages (no torch, no engine): eval, report, data and every
producer build on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from thinkscale import ThinkscaleError

KEY_FIELDS = ("task", "id", "sample", "budget", "num_ignore")
MODE_KEY = "requested_mode"  # hybrid records only: the --mode a sample ran under (part of its key)
RECORD_FIELDS = (
    *KEY_FIELDS, "question", "gold", "thinking", "answer", "pred", "correct", "thinking_tokens",
    "answer_tokens", "capped", "waits", "finish_reason",
)  # fmt: skip
# settings that change what a record means: resuming with other values would mix two experiments
SETTINGS = ("model", "format", "temperature", "seed", "min_thinking", "forcing", "adaptive")

Record = dict[str, Any]


def make_record(
    *,
    task: str,
    id: str,
    sample: int,
    budget: int | None,
    num_ignore: int,
    question: str,
    gold: str | list[str] | None,
    thinking: str,
    answer: str,
    pred: str | None,
    correct: bool | None,
    thinking_tokens: int | None,
    answer_tokens: int | None,
    capped: bool,
    waits: int,
    finish_reason: str | None,
    **extra: Any,
) -> Record:
    """The one record builder: every field of RECORD_FIELDS, in order, then the producer's extras
    (grader, format, settings, DoT's steps/nfe, ...)."""
    rec = {
        "task": task, "id": id, "sample": sample, "budget": budget, "num_ignore": num_ignore,
        "question": question, "gold": gold, "thinking": thinking, "answer": answer, "pred": pred,
        "correct": correct, "thinking_tokens": thinking_tokens, "answer_tokens": answer_tokens,
        "capped": capped, "waits": waits, "finish_reason": finish_reason,
    }  # fmt: skip
    rec.update(extra)
    return rec


def sample_key(
    task: str | None, id: str, sample: int, budget: int | None, num_ignore: int, mode: str | None = None
) -> tuple:
    """The one key rule: what `record_key` gives the record this sample becomes."""
    key = (task, str(id), int(sample), budget, int(num_ignore))
    return key if mode is None else (*key, mode)


def record_key(rec: Record) -> tuple:
    return sample_key(rec.get("task"), rec["id"], rec.get("sample", 0), rec.get("budget"),
                      rec.get("num_ignore", 0), rec.get(MODE_KEY))  # fmt: skip


def record_name(rec: Record) -> str:
    """How messages name one record: task/id, sample, budget, Waits (and a hybrid's mode)."""
    task, ex_id, sample, budget, num_ignore, *mode = record_key(rec)
    return f"{task}/{ex_id} sample {sample} budget {budget} num_ignore {num_ignore}" + (
        f" mode {mode[0]}" if mode else ""
    )


# -- validation of what is read back ----------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "task": (lambda v: v is None or isinstance(v, str), "a string"),
    "id": (lambda v: isinstance(v, str) or _is_int(v), "a string or an integer"),
    "sample": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "budget": (lambda v: v is None or (_is_int(v) and v > 0), "an integer > 0 or null"),
    "num_ignore": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "question": (lambda v: v is None or isinstance(v, str), "a string"),
    "gold": (
        lambda v: v is None
        or isinstance(v, (str, int, float))
        and not isinstance(v, bool)
        or isinstance(v, list)
        and bool(v)
        and all(isinstance(x, str) for x in v),
        "a string, a number or a non-empty list of strings",
    ),
    "thinking": (lambda v: v is None or isinstance(v, str), "a string"),
    "answer": (lambda v: v is None or isinstance(v, str), "a string"),
    "pred": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "correct": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "thinking_tokens": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0 or null"),
    "answer_tokens": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0 or null"),
    "capped": (lambda v: v is None or isinstance(v, bool), "true or false"),
    "waits": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0"),
    "finish_reason": (lambda v: v is None or isinstance(v, str), "a string or null"),
    # a grader's extras
    "f1": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1),
           "a number in [0, 1] or null"),
    "choices": (lambda v: v is None or isinstance(v, list) and all(isinstance(x, str) for x in v),
                "a list of strings"),
    "judge_correct": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    # hybrid models: the mode a sample chose, and the one it was asked for (part of the key)
    "mode": (lambda v: v is None or v in ("think", "short", "none"), "think, short, none or null"),
    MODE_KEY: (lambda v: v is None or v in ("auto", "think", "short"), "auto, think, short or null"),
    # adaptive thinking: what ended thinking, and the probes' compute
    "stopped_by": (lambda v: v is None or v in ("model", "cap", "adaptive"), "model, cap, adaptive or null"),
    "adaptive": (lambda v: v is None or isinstance(v, str), "a string (the rule's label) or null"),
    "probes": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0 or null"),
    "probe_tokens": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0 or null"),
}


def check_record(rec: object, where: str) -> None:
    """Each present field has its type and range; `id` is required (the rest of the key has
    defaults, so records made elsewhere with fewer fields still evaluate)."""
    if not isinstance(rec, dict):
        raise ThinkscaleError(f"{where}: expected a JSON object (a record)")
    if "id" not in rec:
        raise ThinkscaleError(f"{where}: field 'id': missing")
    for name, (ok, what) in _CHECKS.items():
        if name in rec and not ok(rec[name]):
            raise ThinkscaleError(f"{where}: field '{name}' must be {what}, got {rec[name]!r}")


# -- reading ----------------------------------------------------------------------------------
def read_jsonl(
    path: str | Path, repair: bool = False, partial_tail: bool = False
) -> Iterator[tuple[int, dict]]:
    """(line number, object) per non-empty line of a JSONL file; a line that is not UTF-8, not
    JSON or not an object is an error naming file:line. For an append-only file
    (`partial_tail`), a broken last line without its newline (a crash mid-write) is skipped,
    and with `repair` cut from the file."""
    path = Path(path)
    if path.is_dir():
        raise ThinkscaleError(f"{path}: is a directory, not a JSONL file")
    if not path.exists():
        raise ThinkscaleError(f"{path}: file not found")
    data = path.read_bytes()
    if repair and partial_tail and data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            if _complete_object(data[cut:]):  # written elsewhere without a final newline
                f.seek(len(data))
                f.write(b"\n")
                data += b"\n"
            else:  # half a line: a crash mid-write
                f.truncate(cut)
                data = data[:cut]
    lines = data.split(b"\n")
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        last_unterminated = partial_tail and lineno == len(lines) and not data.endswith(b"\n")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if last_unterminated:
                return
            raise ThinkscaleError(f"{path}:{lineno}: not valid UTF-8 ({e.reason})") from None
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if last_unterminated:
                return
            raise ThinkscaleError(
                f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise ThinkscaleError(f"{path}:{lineno}: expected a JSON object per line")
        yield lineno, obj


def _complete_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def load_records(path: str | Path, repair: bool = False) -> list[Record]:
    """All complete records of a results file, each checked, no key twice. A missing file is no
    records (a run not started yet)."""
    path = Path(path)
    if not path.exists():
        return []
    records, seen = [], {}
    for lineno, rec in read_jsonl(path, repair=repair, partial_tail=True):
        where = f"{path}:{lineno}"
        check_record(rec, where)
        key = record_key(rec)
        if key in seen:
            raise ThinkscaleError(
                f"{where}: duplicate record (task, id, sample, budget, num_ignore[, mode]) = {key}, "
                f"first at line {seen[key]}"
            )
        seen[key] = lineno
        records.append(rec)
    return records


def check_settings(records: list[Record], out: Path, task: str, mine: dict) -> None:
    """Refuse to resume a results file whose records of this task were made with other settings
    (`mine`: setting name -> value, as the records store them)."""
    for rec in records:
        if rec.get("task") != task:
            continue
        diff = [
            f"{k}: {rec[k]!r} there, {mine[k]!r} now"
            for k in mine
            if k in rec and rec[k] != mine[k]
        ]
        if diff:
            raise ThinkscaleError(
                f"{out} holds {task} records made with other settings ({'; '.join(diff)}); "
                "use another --out, or the same settings to resume"
            )
        return  # one record stands for the file: every write goes through this check


# -- writing ----------------------------------------------------------------------------------
class RecordWriter:
    """Appends records one line at a time, flushed, so a killed process loses no written record.
    The file is created on the first write: a run that fails before it leaves nothing behind."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records = load_records(self.path, repair=True)  # what was there before this run
        self.done = {record_key(r) for r in self.records}
        self._f = None

    def write(self, rec: Record) -> bool:
        """Append `rec` unless its key is already there; True when it was written."""
        key = record_key(rec)
        if key in self.done:
            return False
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        self.done.add(key)
        return True

    def close(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """The one atomic writer: `write(tmp)` fills a temp file beside `path`, then it is renamed
    over `path`, so readers never see half a file (and a failure leaves the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, obj) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | Path, objs: Iterable) -> int:
    """One JSON object per line, atomically; returns the line count."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with open(tmp, "w", encoding="utf-8") as f:
            for obj in objs:
                f.write(json.dumps(obj, ensure_ascii=False) + "\n")
                count += 1

    write_atomic(path, write)
    return count
