"""`thinkscale serve` against the official `openai` client, on a live server on 127.0.0.1.

A tiny Llama whose next token is scripted (tests/infer/test_engine.py) makes the thinking and
the answer predictable: the responses must equal `generate`'s records for the same settings,
stream or not; the free random model (float64) makes every prompt's greedy output its own, so
concurrent answers can be checked against answers of the same prompt sent alone.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
import torch

from tests.infer.test_engine import Scripted
from thinkscale.infer.generate import GenerateConfig, generate_records
from thinkscale.serve.app import Server, create_app
from thinkscale.serve.config import ServeConfig
from thinkscale.tasks import QuestionsTask

openai = pytest.importorskip("openai")

X, Y, COLON, FOUR, EOS, END, T = 36, 37, 80, 7, 2, 1, 32  # 'x' 'y' ':' '4' <|im_end|> <|im_start|> 't'
# thinks 'x' forever; the answer is '4' after the forced 'Final Answer:', then it stops
NEVER_END = {**{i: X for i in range(103)}, COLON: FOUR, FOUR: EOS}
# 'x' 'y' then tries to end thinking; after the forced 'Wait' ('t' last) it goes on with 'x'
TRIES_TO_END = {**NEVER_END, X: Y, Y: END, T: X}


@contextmanager
def running(server: Server, port: int):
    import uvicorn

    srv = uvicorn.Server(uvicorn.Config(create_app(server), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        server.close()


class Slow(torch.nn.Module):
    """A model that takes 10 ms a step: long requests stay in flight long enough to be seen."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config = model, model.config

    def forward(self, *a, **kw):
        time.sleep(0.01)
        return self.inner(*a, **kw)


@pytest.fixture(scope="module")
def scripted(tokenizer):
    from tests.conftest import make_model

    return {name: Scripted(make_model(len(tokenizer)), script) for name, script in
            (("never_end", NEVER_END), ("tries", TRIES_TO_END))}  # fmt: skip


def client(base: str, key: str = "k") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)


def record(model, tokenizer, question: str, **kw) -> dict:
    cfg = GenerateConfig(format="s1", max_answer_tokens=200, **kw)
    return next(generate_records(cfg, QuestionsTask([question], None), model=model, tokenizer=tokenizer,
                                 progress=False))  # fmt: skip


def chat(c, question: str, stream: bool = False, **extra):
    body = {k: extra.pop(k) for k in ("thinking_budget", "num_ignore", "min_thinking", "wait") if k in extra}
    kw = {"model": "tiny", "messages": [{"role": "user", "content": question}], "temperature": 0, **extra}
    return c.chat.completions.create(**kw, stream=stream, extra_body=body)


def streamed(chunks) -> tuple[str, str, str | None, dict]:
    reasoning, content, finish, usage = "", "", None, None
    for ch in chunks:
        if ch.usage is not None:
            usage = ch.usage
        for choice in ch.choices:
            d = choice.delta
            reasoning += getattr(d, "reasoning", None) or ""
            content += d.content or ""
            finish = choice.finish_reason or finish
    return reasoning, content, finish, usage


@pytest.mark.parametrize("script,settings", [
    ("never_end", dict(thinking_budget=12)),
    ("tries", dict(thinking_budget=40, num_ignore=2)),
    ("tries", dict(num_ignore=1, wait="Hmm, wait")),
])  # fmt: skip
def test_responses_equal_the_engines_records_stream_or_not(tokenizer, scripted, free_port, script, settings):
    model = scripted[script]
    question = "What is 2+2?"
    cfg = {"budgets": [settings.get("thinking_budget")], "num_ignores": [settings.get("num_ignore", 0)]}
    if "wait" in settings:
        cfg["wait"] = settings["wait"]
    rec = record(model, tokenizer, question, **cfg)
    server = Server(ServeConfig(model="tiny", served_model_name="tiny", api_key="k", compile=False), model=model, tokenizer=tokenizer)
    with running(server, free_port()) as base:
        c = client(base)
        r = chat(c, question, **settings)
        msg = r.choices[0].message
        assert (msg.reasoning, msg.content) == (rec["thinking"], rec["answer"])
        assert msg.reasoning_content == msg.reasoning and r.choices[0].finish_reason == "stop"
        assert r.usage.completion_tokens_details.reasoning_tokens == rec["thinking_tokens"]
        if "thinking_budget" in settings and script == "never_end":  # capped: exactly the cap
            assert rec["capped"] and r.usage.completion_tokens_details.reasoning_tokens == 12
        if settings.get("num_ignore"):
            wait = settings.get("wait", "Wait")
            assert msg.reasoning.count(wait) == settings["num_ignore"] == rec["waits"]
        reasoning, content, finish, usage = streamed(chat(c, question, stream=True, stream_options={"include_usage": True},
                                                          **settings))  # fmt: skip
        assert (reasoning, content, finish) == (rec["thinking"], rec["answer"], "stop")
        assert usage.completion_tokens_details.reasoning_tokens == rec["thinking_tokens"]
        assert usage.completion_tokens == r.usage.completion_tokens


def test_a_server_that_compiles_first_answers_like_the_eager_engine(tokenizer, scripted, free_port):
    """--compile is on by default for the HF engine; with --no-compile-in-background every
    decode graph (batch 1, each small batch, larger) compiles before the server listens, so
    requests, alone or with n=2, compile nothing new and get the eager engine's tokens."""
    from thinkscale.infer.hf_engine import SMALL_BATCH, compiled_graphs

    assert ServeConfig(engine="hf").compiles and not ServeConfig(engine="vllm").compiles
    assert not ServeConfig(engine="hf", compile=False).compiles
    model, question = scripted["tries"], "What is 2+2?"
    rec = record(model, tokenizer, question, budgets=[40], num_ignores=[1])
    cfg = ServeConfig(model="tiny", served_model_name="tiny", api_key="k", compile_in_background=False)
    server = Server(cfg, model=model, tokenizer=tokenizer)
    engine = server.loop.engine
    assert engine.compiled and engine.stats.compiles == SMALL_BATCH + 1 and server.warm_up_seconds > 0
    graphs = compiled_graphs()
    with running(server, free_port()) as base:
        c = client(base)
        one = chat(c, question, thinking_budget=40, num_ignore=1)
        two = chat(c, question, thinking_budget=40, num_ignore=1, n=2)
    assert compiled_graphs() == graphs
    for choice in [*one.choices, *two.choices]:
        assert (choice.message.reasoning, choice.message.content) == (rec["thinking"], rec["answer"])


def test_the_default_server_listens_at_once_and_compiles_in_the_background(tokenizer, scripted, free_port,
                                                                            monkeypatch):  # fmt: skip
    """By default the server listens before its decode step is compiled: while the warm-up runs
    in its thread (held back here until the test lets it go), /health says so and a request is
    answered by the eager step; once the warm-up ends, the serving thread decodes with the
    compiled step, compiles nothing new, and the answers stay the same."""
    from thinkscale.infer.hf_engine import HFEngine, compiled_graphs

    gate, warm_up = threading.Event(), HFEngine.warm_up
    monkeypatch.setattr(HFEngine, "warm_up", lambda self, *a, **kw: gate.wait(120) and warm_up(self, *a, **kw))
    model, question = scripted["tries"], "What is 2+2?"
    rec = record(model, tokenizer, question, budgets=[40], num_ignores=[1])
    server = Server(ServeConfig(model="tiny", served_model_name="tiny", api_key="k"), model=model, tokenizer=tokenizer)
    engine = server.loop.engine
    assert engine.compiled and server.warm_up_seconds == 0 and engine.compiling.is_alive()
    assert engine.warm_up_seconds is None  # not ended yet
    compiled_steps: list[str] = []  # the thread of every call of a compiled step
    for name in ("_decode", "_decode_small"):
        step = getattr(engine, name)
        setattr(engine, name, lambda *a, _step=step: compiled_steps.append(threading.current_thread().name) or _step(*a))
    with running(server, free_port()) as base:
        c = client(base)
        assert httpx.get(f"{base}/health").json()["compiling"] is True
        early = chat(c, question, thinking_budget=40, num_ignore=1)
        assert compiled_steps == []  # the eager step answered
        gate.set()
        engine.compiling.join(timeout=600)
        assert engine.compile_error is None and set(compiled_steps) == {"thinkscale-compile"}
        assert engine.warm_up_seconds > 0  # what the warm-up took, kept for whoever asks
        assert httpx.get(f"{base}/health").json()["compiling"] is False
        graphs, warm_steps = compiled_graphs(), len(compiled_steps)
        late = chat(c, question, thinking_budget=40, num_ignore=1, n=2)
    assert compiled_graphs() == graphs
    assert compiled_steps[warm_steps:] and set(compiled_steps[warm_steps:]) == {"thinkscale-engine"}
    for choice in [*early.choices, *late.choices]:
        assert (choice.message.reasoning, choice.message.content) == (rec["thinking"], rec["answer"])


def test_n_choices_completions_models_health_and_the_token_bound(tokenizer, scripted, free_port):
    server = Server(ServeConfig(model="tiny", served_model_name="tiny", api_key="k", compile=False), model=scripted["never_end"],
                    tokenizer=tokenizer)  # fmt: skip
    with running(server, free_port()) as base:
        c = client(base)
        r = chat(c, "hi", n=3, temperature=1.0, seed=1, thinking_budget=6)
        assert [ch.index for ch in r.choices] == [0, 1, 2]
        assert r.usage.completion_tokens_details.reasoning_tokens == 3 * 6
        # max_completion_tokens bounds thinking + answer: thinking takes it all, finish 'length'
        r = chat(c, "hi", max_completion_tokens=5)
        assert r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"
        assert r.choices[0].message.content == ""
        # stop strings cut the answer
        r = chat(c, "hi", thinking_budget=4, stop=["Answer"])
        assert r.choices[0].message.content == "Final " and r.choices[0].finish_reason == "stop"
        comp = c.completions.create(model="tiny", prompt="<|im_start|>user\nhi<|im_end|>\n", temperature=0,
                                    max_tokens=30, extra_body={"thinking_budget": 5})  # fmt: skip
        assert comp.choices[0].text.startswith("x" * 5) and comp.choices[0].reasoning == "x" * 5
        assert [m.id for m in c.models.list().data] == ["tiny"]
        assert httpx.get(f"{base}/health").json()["status"] == "ok"


def test_concurrent_clients_get_their_own_answers_and_short_requests_overtake(tokenizer, tiny_model, free_port):
    # 10 ms a step: the long request below lasts seconds on any machine
    server = Server(ServeConfig(model="tiny", served_model_name="tiny", api_key="k", max_batch=8, compile=False),
                    model=Slow(tiny_model), tokenizer=tokenizer)  # fmt: skip
    questions = [f"question {i}: {i * 7 % 13}?" for i in range(32)]
    with running(server, free_port()) as base:
        c = client(base)
        alone = {q: chat(c, q, thinking_budget=6, max_completion_tokens=24).choices[0].message for q in questions[:6]}
        with ThreadPoolExecutor(32) as pool:
            together = list(pool.map(lambda q: chat(c, q, thinking_budget=6, max_completion_tokens=24), questions))
        assert len(together) == 32 and all(r.choices for r in together)  # none lost
        for q, r in zip(questions, together):
            if q in alone:  # the same answer as when it was alone: no mix-up between requests
                assert (r.choices[0].message.reasoning, r.choices[0].message.content) == (alone[q].reasoning,
                                                                                         alone[q].content)  # fmt: skip
        # a short request sent while a long one decodes joins the batch and finishes first
        finished = {}

        def send(name, **kw):
            chat(c, "long or short?", **kw)
            finished[name] = time.perf_counter()

        long = threading.Thread(target=send, args=("long",), kwargs=dict(thinking_budget=400, max_completion_tokens=420))
        long.start()
        while httpx.get(f"{base}/health").json()["in_flight"] < 1:
            time.sleep(0.01)
        time.sleep(0.3)
        send("short", max_completion_tokens=4)
        long.join()
        assert finished["short"] < finished["long"]


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(tokenizer, scripted, free_port):
    server = Server(ServeConfig(model="tiny", served_model_name="tiny", api_key="k", compile=False), model=scripted["never_end"],
                    tokenizer=tokenizer)  # fmt: skip
    url_of = lambda base: f"{base}/v1/chat/completions"  # noqa: E731
    ok = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "thinking_budget": 3}
    auth = {"Authorization": "Bearer k"}
    with running(server, free_port()) as base:
        cases = [
            ({**ok, "n": "many"}, 400, "n:"),
            ({**ok, "thinking_budget": -5}, 400, "thinking_budget"),
            ({**ok, "messages": [{"role": "user", "content": "x" * 600}]}, 400, "context"),
            ({**ok, "max_completion_tokens": 10_000}, 400, "max_completion_tokens"),
            ({**ok, "logprobs": True}, 400, "logprobs"),
            ({**ok, "model": "other"}, 404, "not served here"),
        ]
        for body, status, words in cases:
            r = httpx.post(url_of(base), json=body, headers=auth)
            assert r.status_code == status and words in r.json()["error"]["message"], (body, r.text)
        r = httpx.post(url_of(base), content=b'{"messages": [', headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"]
        r = httpx.post(url_of(base), json=ok, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        with pytest.raises(openai.AuthenticationError):
            chat(client(base, key="wrong"), "hi")
        r = httpx.post(url_of(base), json=ok, headers=auth)  # still serving
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3
        # a client that leaves mid-stream frees its rows
        with httpx.stream("POST", url_of(base), json={**ok, "thinking_budget": 400, "max_completion_tokens": 450,
                                                      "stream": True}, headers=auth) as s:  # fmt: skip
            for i, _ in enumerate(s.iter_lines()):
                if i > 5:
                    break
        deadline = time.time() + 20
        while httpx.get(f"{base}/health").json()["in_flight"] and time.time() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{base}/health").json()["in_flight"] == 0


def test_budget_on_a_plain_model_and_a_full_queue(tokenizer, scripted, free_port):
    server = Server(ServeConfig(model="tiny", served_model_name="tiny", format="plain", max_queue=1, compile=False),
                    model=Slow(scripted["never_end"]), tokenizer=tokenizer)  # fmt: skip
    url = lambda base: f"{base}/v1/chat/completions"  # noqa: E731
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    with running(server, free_port()) as base:
        r = httpx.post(url(base), json={**body, "thinking_budget": 8})
        assert r.status_code == 400 and "does not think" in r.json()["error"]["message"]
        assert r.json()["error"]["param"] == "thinking_budget"
        with httpx.stream("POST", url(base), json={**body, "max_tokens": 300, "stream": True}) as s:
            it = s.iter_lines()
            next(it)  # the first one is in flight
            assert httpx.get(f"{base}/health").json()["in_flight"] == 1
            r = httpx.post(url(base), json={**body, "max_tokens": 3})
            assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
        deadline = time.time() + 20
        while httpx.get(f"{base}/health").json()["in_flight"] and time.time() < deadline:
            time.sleep(0.05)
        r = httpx.post(url(base), json={**body, "max_tokens": 3})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None
        assert "reasoning" not in r.json()["choices"][0]["message"]
