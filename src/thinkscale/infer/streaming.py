"""Token streaming over any engine: the engine runs in a worker thread and hands each token to a
queue (the pattern of transformers' `TextIteratorStreamer`); the caller iterates text events.

The text of the events, joined, is the decoded completion: the record's thinking and answer are
exactly the ones `generate` writes for the same settings (the last event carries that record).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from thinkscale.infer.engines import TokenEvent
from thinkscale.records import Record


@dataclass(frozen=True)
class StreamEvent:
    """`text` to append (after deleting the last `retract` characters already shown: a
    tokenizer may re-spell the tail, and a multi-token delimiter replaced by Wait leaves).
    `phase`: think | answer (mode: a hybrid model's control token), or done for the last event,
    which carries the graded record."""

    phase: str
    text: str
    forced: bool = False  # budget forcing wrote this text (delimiter, Wait, answer prefix)
    token: int | None = None
    retract: int = 0
    record: Record | None = None


class _Cancelled(Exception):
    pass


_END = object()


def stream_records(run, tokenizer) -> Iterator[StreamEvent]:
    """`run(on_token)` produces records (e.g. `generate_records` of one question) and calls
    `on_token` for every token; this turns that into text events, one sample at a time."""
    q: queue.Queue = queue.Queue()
    cancel = threading.Event()

    def on_token(ev: TokenEvent) -> None:
        if cancel.is_set():
            raise _Cancelled
        q.put(ev)

    def work() -> None:
        try:
            for rec in run(on_token):
                q.put(rec)
        except _Cancelled:
            pass
        except BaseException as e:  # handed to the caller's thread
            q.put(e)
        finally:
            q.put(_END)

    thread = threading.Thread(target=work, name="thinkscale-stream", daemon=True)
    thread.start()
    ids: dict[tuple, list[int]] = {}
    shown: dict[tuple, str] = {}
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, dict):  # a finished, graded record
                yield StreamEvent("done", "", record=item)
                continue
            key = (id(item.request), item.sample)
            seq = ids.setdefault(key, [])
            if item.rollback:
                del seq[-item.rollback :]
            seq.append(item.token)
            text = tokenizer.decode(seq, skip_special_tokens=False)
            if text.endswith("\ufffd"):  # half a character: wait for the next token
                continue
            before = shown.get(key, "")
            common = len(os.path.commonprefix([before, text]))
            shown[key] = text
            yield StreamEvent(item.phase, text[common:], item.forced, item.token, len(before) - common)
    finally:
        cancel.set()
        thread.join(timeout=60)

