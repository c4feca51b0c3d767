"""`thinkscale serve`: an OpenAI-compatible server with budget forcing (FastAPI + uvicorn).

`/v1/chat/completions` (stream and not), `/v1/completions`, `/v1/models`, `/health`. Every
request becomes one engine `Request` (its n samples, its own sampling, its own thinking budget)
and joins the one running batch (`loop.EngineLoop`). The thinking comes back apart from the
answer, as reasoning servers do: `message.reasoning` and its older alias `reasoning_content`
(streamed as `delta.reasoning` / `delta.reasoning_content`), and `usage` counts the thinking
tokens exactly in `completion_tokens_details.reasoning_tokens`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from fastapi import Depends, FastAPI
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from thinkscale.infer.engines import Finished, Request, SamplingConfig, TokenEvent
from thinkscale.infer.forcing import Budget, ForcingTokens
from thinkscale.serve.choices import ChoiceText
from thinkscale.serve.config import ServeConfig
from thinkscale.serve.loop import EngineLoop, Pending, RoundLoop
from thinkscale.serve.protocol import (
    ChatRequest,
    CompletionRequest,
    GenerationFields,
    error_body,
    validation_message,
)

FINISH = {"stop": "stop", "length": "length", "context": "length"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


class Server:
    """The model, its format and the one engine loop; turns request bodies into engine requests."""

    def __init__(self, cfg: ServeConfig, model=None, tokenizer=None, rounds: bool = False, progress: bool = False):
        """`rounds`: serve the HF engine in rounds too (a baseline for benchmarks); `progress`: a
        bar while the decode step compiles."""
        cfg.check()
        self.cfg, self.fmt = cfg, cfg.think_format()
        self.warm_up_seconds = 0.0  # compiling the decode step before serving (--compile)
        if cfg.engine == "vllm":
            from thinkscale.infer.vllm_engine import VLLMEngine, load_llm
            from thinkscale.models import resolve_model_path

            llm = model or load_llm(str(resolve_model_path(cfg.model)), cfg.dtype, cfg.max_batch)
            self.tokenizer = tokenizer or llm.get_tokenizer()
            self.tokens = ForcingTokens.from_tokenizer(self.tokenizer, self.fmt, cfg.wait)
            engine = VLLMEngine(llm, self.tokens)
            self.loop: EngineLoop = RoundLoop(engine).start()
        else:
            from thinkscale.infer.hf_engine import HFEngine

            if model is None:
                from thinkscale.models import load_model

                model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
            self.tokenizer = tokenizer
            self.tokens = ForcingTokens.from_tokenizer(tokenizer, self.fmt, cfg.wait)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            engine = HFEngine(model, self.tokens, cfg.max_batch, pad, compile=cfg.compiles)
            hello = tokenizer.encode("Hello", add_special_tokens=False)
            if cfg.compiles and cfg.compile_in_background:
                engine.warm_up_in_background(hello, progress=progress)
            else:
                self.warm_up_seconds = engine.warm_up(hello, progress=progress)
            self.loop = (RoundLoop if rounds else EngineLoop)(engine).start()
        self.context: int | None = getattr(engine, "max_positions", None)

    def close(self) -> None:
        self.loop.stop()

    # -- a request body -> an engine request ------------------------------------------------
    def prompt_ids(self, body: ChatRequest | CompletionRequest) -> list[int]:
        if isinstance(body, ChatRequest):
            messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                        for m in body.messages]  # fmt: skip
            text = self.fmt.render_chat(self.tokenizer, messages)
        else:
            text = body.prompt
        return self.tokenizer.encode(text, add_special_tokens=False)

    def request(self, body: GenerationFields, ids: list[int], pending: Pending) -> Request:
        if body.model is not None and body.model != self.cfg.name:
            raise ApiError(404, f"model '{body.model}' is not served here (this server: '{self.cfg.name}')",
                           "model", "not_found_error")  # fmt: skip
        if body.budget_asked() and not self.fmt.thinks:
            field = next(f for f in ("thinking_budget", "thinking_token_budget", "num_ignore", "min_thinking", "wait")
                         if getattr(body, f) not in (None, 0))  # fmt: skip
            raise ApiError(400, f"{field}: the served format '{self.fmt.name}' does not think (no thinking to "
                           "budget); start the server with a thinking --format", field)  # fmt: skip
        limit, field = body.limit(), "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        if self.context:
            if len(ids) >= self.context:
                raise ApiError(400, f"messages: the prompt is {len(ids)} tokens; the model's context is "
                               f"{self.context}", "messages")  # fmt: skip
            if limit is not None and len(ids) + limit > self.context:
                raise ApiError(400, f"{field}: a prompt of {len(ids)} tokens plus {limit} to generate exceeds "
                               f"the model's context of {self.context} tokens", field)  # fmt: skip
            limit = self.context - len(ids) if limit is None else limit
        cap = body.cap()
        budget = Budget(cap, body.num_ignore, body.min_thinking, max_answer_tokens=limit or self.cfg.max_total_tokens,
                        max_total_tokens=min(self.cfg.max_total_tokens, limit or self.cfg.max_total_tokens),
                        max_tokens=limit)  # fmt: skip
        seed = body.seed if body.seed is not None else random.randrange(1 << 31)
        sampling = SamplingConfig(body.temperature, body.top_p, max(body.top_k, 0), seed)
        tokens = None
        if body.wait is not None:
            tokens = replace(self.tokens, wait=tuple(self.tokenizer.encode(body.wait, add_special_tokens=False)))
        return Request(key=pending, prompt_ids=ids, budget=budget, samples=list(range(body.n)),
                       seeds=[seed + s for s in range(body.n)], sampling=sampling, tokens=tokens)  # fmt: skip

    # -- running it ---------------------------------------------------------------------------
    async def respond(self, body: ChatRequest | CompletionRequest, http) -> dict | AsyncIterator[str]:
        """The response body (non-stream) or an async iterator of SSE lines (stream)."""
        if self.loop.error is not None:
            raise ApiError(503, f"the engine stopped: {self.loop.error}", kind="server_error")
        ids = self.prompt_ids(body)
        pending = Pending(asyncio.get_running_loop())
        request = self.request(body, ids, pending)
        if self.loop.in_flight() >= self.cfg.max_queue:
            raise ApiError(429, f"server busy: {self.cfg.max_queue} requests in flight (--max-queue); retry later",
                           kind="rate_limit_error")  # fmt: skip
        chat = isinstance(body, ChatRequest)
        stops = body.stop or []
        choices = [ChoiceText(self.tokenizer, self.fmt, stops, stop_raw=not chat) for _ in range(body.n)]
        run = Run(self, request, pending, choices, chat, body, len(ids))
        self.loop.submit(request)
        if body.stream:
            return run.stream(http)
        try:
            return await run.collect(http)
        finally:
            self.loop.release(request)


@dataclass
class Run:
    """One request in flight: its choices' text, finished states, and the response it makes."""

    server: Server
    request: Request
    pending: Pending
    choices: list[ChoiceText]
    chat: bool
    body: GenerationFields
    prompt_tokens: int

    def __post_init__(self) -> None:
        self.id = ("chatcmpl-" if self.chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.finish: dict[int, str] = {}  # sample -> finish_reason
        self.modes: dict[int, str | None] = {}

    def _take(self, item) -> list[tuple[int, str, str, str, str | None]]:
        """Apply an engine item; returns (index, reasoning, content, raw, finish_reason) deltas."""
        if isinstance(item, BaseException):
            raise ApiError(500, f"generation failed: {item}", kind="server_error")
        s = item.sample
        if s in self.finish:
            return []
        c = self.choices[s]
        if isinstance(item, TokenEvent):
            c.add(item)
            if not (self.body.stream or c.stops):  # nothing to send or watch before the end
                return []
            r, t, raw = c.deltas()
            if c.stopped:
                self.request.stopped.add(s)  # the engine drops the row at its next step
                r2, t2, raw2 = c.deltas(final=True)
                self.finish[s] = "stop"
                return [(s, r + r2, t + t2, raw + raw2, "stop")]
            return [(s, r, t, raw, None)] if r or t or raw else []
        assert isinstance(item, Finished)
        st = item.state
        c.ids, c.thinking_tokens = list(st.generated), st.thinking_tokens  # exact, whatever was streamed
        self.modes[s] = st.mode
        r, t, raw = c.deltas(st.mode, final=True)
        self.finish[s] = "stop" if c.stopped else FINISH.get(st.finish_reason or "stop", "stop")
        return [(s, r, t, raw, self.finish[s])]

    async def collect(self, http) -> dict:
        while len(self.finish) < len(self.choices):
            try:
                item = await asyncio.wait_for(self.pending.inbox.get(), timeout=1.0)
            except TimeoutError:
                if http is not None and await http.is_disconnected():
                    raise ApiError(499, "client disconnected") from None  # its rows are dropped
                continue
            self._take(item)
        out = []
        for i, c in enumerate(self.choices):
            reasoning, content, raw = c.split(c.text(), self.modes.get(i), final=True)
            if self.chat:
                message = {"role": "assistant", "content": content}
                if self.server.fmt.thinks:
                    message |= {"reasoning": reasoning, "reasoning_content": reasoning}
                out.append({"index": i, "message": message, "finish_reason": self.finish[i], "logprobs": None})
            else:
                extra = {"reasoning": reasoning} if self.server.fmt.thinks else {}
                out.append({"index": i, "text": raw, "finish_reason": self.finish[i], "logprobs": None, **extra})
        return {"id": self.id, "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created, "model": self.server.cfg.name, "choices": out, "usage": self.usage()}  # fmt: skip

    def usage(self) -> dict:
        completion = sum(len(c.ids) for c in self.choices)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
                "completion_tokens_details": {"reasoning_tokens": sum(c.thinking_tokens for c in self.choices)}}  # fmt: skip

    def _chunk(self, index: int, reasoning: str, content: str, raw: str, finish: str | None,
               role: bool = False) -> dict:  # fmt: skip
        if self.chat:
            delta: dict = {"role": "assistant"} if role else {}
            if reasoning:
                delta |= {"reasoning": reasoning, "reasoning_content": reasoning}
            if content:
                delta["content"] = content
            choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": index, "text": raw, "finish_reason": finish, "logprobs": None}
            if reasoning:
                choice["reasoning"] = reasoning
        return {"id": self.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created, "model": self.server.cfg.name, "choices": [choice]}  # fmt: skip

    async def stream(self, http) -> AsyncIterator[str]:
        """SSE lines; the client leaving cancels this generator, which drops the rows."""
        try:
            if self.chat:
                for i in range(len(self.choices)):
                    yield _sse(self._chunk(i, "", "", "", None, role=True))
            while len(self.finish) < len(self.choices):
                item = await self.pending.inbox.get()
                try:
                    deltas = self._take(item)
                except ApiError as e:
                    yield _sse(error_body(e.message, e.kind))
                    break
                for d in deltas:
                    yield _sse(self._chunk(*d))
            if (self.body.stream_options or {}).get("include_usage"):
                usage = {"id": self.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                         "created": self.created, "model": self.server.cfg.name, "choices": [],
                         "usage": self.usage()}  # fmt: skip
                yield _sse(usage)
            yield "data: [DONE]\n\n"
        finally:
            self.server.loop.release(self.request)


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def create_app(server: Server):
    """The FastAPI app over a running `Server`."""
    from fastapi.exceptions import RequestValidationError

    app = FastAPI(title="thinkscale serve", version="1")

    @app.exception_handler(ApiError)
    async def api_error(_, e: ApiError):
        return JSONResponse(error_body(e.message, e.kind, e.param), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_, e: RequestValidationError):
        message, param = validation_message(e.errors())
        return JSONResponse(error_body(message, param=param), status_code=400)

    async def authorized(request: HTTPRequest) -> None:
        key = server.cfg.api_key
        if key and request.headers.get("authorization", "") != f"Bearer {key}":
            raise ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')",
                           kind="authentication_error")  # fmt: skip

    async def answer(body, request: HTTPRequest):
        result = await server.respond(body, request)
        if isinstance(result, dict):
            return result
        return StreamingResponse(result, media_type="text/event-stream")

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat(body: ChatRequest, request: HTTPRequest):
        return await answer(body, request)

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(body: CompletionRequest, request: HTTPRequest):
        return await answer(body, request)

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models():
        return {"object": "list", "data": [{"id": server.cfg.name, "object": "model", "created": 0,
                                            "owned_by": "thinkscale"}]}  # fmt: skip

    @app.get("/health")
    async def health():
        if server.loop.error is not None:
            return JSONResponse({"status": "error", "error": str(server.loop.error)}, status_code=503)
        return {"status": "ok", "in_flight": server.loop.in_flight(),
                "compiling": getattr(server.loop.engine, "warming_up", False)}  # fmt: skip

    return app


def serve(cfg: ServeConfig) -> None:
    """Load the model, start the engine loop, serve until interrupted."""
    import uvicorn

    if cfg.compiles and cfg.compile_in_background:
        print("thinkscale serve: compiling the decode step in the background; requests are answered meanwhile, "
              "each compiled graph serving once ready (--no-compile skips compiling)")  # fmt: skip
    elif cfg.compiles:
        print("thinkscale serve: loading the model and compiling its decode step (--no-compile skips this)")
    server = Server(cfg, progress=True)
    if server.warm_up_seconds:
        print(f"thinkscale serve: compiled the decode step in {server.warm_up_seconds:.0f} s (--no-compile skips this)")
    print(f"thinkscale serve: {cfg.name} ({cfg.format} format, {cfg.engine} engine) on http://{cfg.host}:{cfg.port}/v1"
          + (" (API key required)" if cfg.api_key else ""))  # fmt: skip
    try:
        uvicorn.run(create_app(server), host=cfg.host, port=cfg.port, log_level="warning")
    finally:
        server.close()
