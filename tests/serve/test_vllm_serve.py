"""thinkscale's forcing inside `vllm serve` (plugins), with the official client (make test-vllm)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    pytest.importorskip("vllm")
    from thinkscale.serve.vllm_plugin import vllm_serve_command

    port = 8957
    argv, env = vllm_serve_command("smollm2-135m", tmp_path_factory.mktemp("vllm-serve"), "s1", port)
    argv = [sys.executable, *argv[1:], "--max-num-seqs", "4",
            "--max-model-len", "2048", "--enforce-eager"]  # fmt: skip
    env = {**os.environ, **env, "VLLM_CPU_KVCACHE_SPACE": "2"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited: {proc.stderr.read()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            pytest.fail("vllm serve did not start in 10 minutes")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_vllm_serve_forces_the_cap_and_the_waits_and_splits_reasoning(vllm_server):
    import openai

    from thinkscale.infer.generate import GenerateConfig, generate_records
    from thinkscale.models import load_model
    from thinkscale.tasks import QuestionsTask

    c = openai.OpenAI(base_url=vllm_server, api_key="-", max_retries=0, timeout=300)
    model_name = c.models.list().data[0].id
    question = "What is 12 + 30?"

    def ask(skip_special_tokens=False, **xargs):
        return c.chat.completions.create(model=model_name, messages=[{"role": "user", "content": question}],
                                         temperature=0, max_completion_tokens=96,
                                         extra_body={"vllm_xargs": xargs, "skip_special_tokens": skip_special_tokens})  # fmt: skip

    r = ask(thinking_budget=16, min_thinking=16)  # this model would end thinking at once: think 16
    msg = r.choices[0].message
    assert r.usage.completion_tokens_details.reasoning_tokens == 16  # exactly the cap
    assert msg.content.startswith("Final Answer:")
    plain = ask(skip_special_tokens=True, thinking_budget=16, min_thinking=16).choices[0].message  # vLLM's default
    assert (plain.reasoning, plain.content) == (msg.reasoning, msg.content)
    model, tok = load_model("smollm2-135m", dtype="float32")
    rec = next(generate_records(GenerateConfig(budgets=[16], min_thinking=16, max_answer_tokens=64, dtype="float32"),
                                QuestionsTask([question], None), model=model, tokenizer=tok, progress=False))  # fmt: skip
    assert msg.reasoning == rec["thinking"]  # the same thinking as thinkscale's own engine
    r = ask(thinking_budget=48, num_ignore=1)  # it ends thinking at once: the Wait is forced there
    assert r.choices[0].message.reasoning.startswith("Wait")
    chunks = c.chat.completions.create(model=model_name, messages=[{"role": "user", "content": question}],
                                       temperature=0, max_completion_tokens=96, stream=True,
                                       extra_body={"vllm_xargs": {"thinking_budget": 16, "min_thinking": 16},
                                                   "skip_special_tokens": False})  # fmt: skip
    streamed_r = streamed_c = ""
    for ch in chunks:
        for choice in ch.choices:
            streamed_r += getattr(choice.delta, "reasoning", None) or ""
            streamed_c += choice.delta.content or ""
    assert (streamed_r.strip(), streamed_c.strip()) == (msg.reasoning, msg.content)
    bad = httpx.post(f"{vllm_server}/chat/completions", json={"model": model_name, "messages": [
        {"role": "user", "content": "hi"}], "vllm_xargs": {"thinking_budget": -7}})  # fmt: skip
    assert bad.status_code == 400 and "thinking_budget" in bad.text


def test_thinkscale_serve_with_the_vllm_engine_serves_in_rounds(free_port):
    """`thinkscale serve --engine vllm`: vLLM's generate in rounds, the same response shape."""
    pytest.importorskip("vllm")
    import openai

    from tests.serve.test_server import running
    from thinkscale.serve.app import Server
    from thinkscale.serve.config import ServeConfig

    server = Server(ServeConfig(model="smollm2-135m", served_model_name="m", engine="vllm", dtype="float32", max_batch=4))
    with running(server, free_port()) as base:
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="-", max_retries=0, timeout=300)
        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "What is 12 + 30?"}],
                                      temperature=0, max_completion_tokens=96,
                                      extra_body={"thinking_budget": 16, "min_thinking": 16})  # fmt: skip
        assert r.usage.completion_tokens_details.reasoning_tokens == 16
        assert r.choices[0].message.content.startswith("Final Answer:") and r.choices[0].message.reasoning
