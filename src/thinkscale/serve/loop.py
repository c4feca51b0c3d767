"""One engine loop for every request of the server, in its own thread.

The HF engine takes an `incoming` queue: a request that arrives while others decode joins the
running batch at the next step (continuous batching), and a request whose client left is
dropped there (`request.cancelled`). Each HTTP request holds a `Pending`: the engine thread hands
its token events and finished samples to the request's asyncio queue, thread-safely.

An engine without `incoming` (vLLM's `LLM.generate`, s1's multi-round loop) is served in rounds:
whatever arrived while the last round ran forms the next one (`RoundLoop`).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterable

from thinkscale.infer.engines import Finished, Request, SamplingConfig, TokenEvent


class Pending:
    """One HTTP request's inbox: TokenEvents, Finished samples, or an exception."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.inbox: asyncio.Queue = asyncio.Queue()

    def put(self, item: TokenEvent | Finished | BaseException) -> None:
        """Called from the engine thread."""
        self.loop.call_soon_threadsafe(self.inbox.put_nowait, item)


class EngineLoop:
    """Runs `engine.run(incoming=...)` forever in a daemon thread."""

    def __init__(self, engine):
        self.engine = engine
        self.incoming: queue.Queue = queue.Queue()
        self.active: dict[int, Request] = {}  # id -> submitted, not yet answered or dropped
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="thinkscale-engine", daemon=True)

    def start(self) -> EngineLoop:
        self.thread.start()
        return self

    def submit(self, request: Request) -> None:
        with self.lock:
            self.active[id(request)] = request
        self.incoming.put(request)

    def release(self, request: Request) -> None:
        """The HTTP side is done with `request` (answered, or its client left)."""
        request.cancelled = True
        with self.lock:
            self.active.pop(id(request), None)

    def in_flight(self) -> int:
        with self.lock:
            return len(self.active)

    def stop(self) -> None:
        self.incoming.put(None)
        self.thread.join(timeout=60)

    def _results(self) -> Iterable[Finished]:
        return self.engine.run([], SamplingConfig(), on_token=_on_token, incoming=self.incoming)

    def _run(self) -> None:
        try:
            for fin in self._results():
                fin.request.key.put(fin)
        except BaseException as e:  # the engine died: every waiting client gets the error
            self.error = e
            with self.lock:
                waiting = list(self.active.values())
            for r in waiting:
                r.key.put(e)


class RoundLoop(EngineLoop):
    """For engines that take a fixed list of requests: each round runs what has arrived."""

    def _results(self) -> Iterable[Finished]:
        while True:
            batch = [self.incoming.get()]
            while True:
                try:
                    batch.append(self.incoming.get_nowait())
                except queue.Empty:
                    break
            live = [r for r in batch if r is not None and not r.cancelled]
            if live:
                yield from self.engine.run(live, SamplingConfig(), on_token=_on_token)
            if None in batch:
                return


def _on_token(ev: TokenEvent) -> None:
    ev.request.key.put(ev)
