"""GRPO with `--use-vllm` on vLLM's CPU backend: TRL's colocated weight sync goes through vLLM's
in-place reload (the backend keeps no loadable linear weights), and a run completes. Runs where
vLLM is installed (`make test-vllm`); the embedded SmolLM2, as vLLM's CPU kernels need."""

from __future__ import annotations

import types

import pytest

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

import torch  # noqa: E402

from thinkscale.models import load_model, resolve_model_path  # noqa: E402
from thinkscale.train import grpo  # noqa: E402


def test_synced_weights_are_the_ones_vllm_generates_with():
    from vllm import SamplingParams

    from thinkscale.infer.vllm_engine import load_llm

    llm = load_llm(str(resolve_model_path("smollm2-135m")), "float32", 4, max_model_len=256)
    model, tok = load_model(dtype="float32")
    generation = types.SimpleNamespace(
        mode="colocate", llm=llm, _iter_named_params=lambda: ((n, p.data) for n, p in model.named_parameters())
    )
    assert grpo.sync_by_reload(generation)
    prompt = "The capital of France is"
    params = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)

    def vllm_text() -> str:
        return llm.generate([prompt], params, use_tqdm=False)[0].outputs[0].text

    def hf_text() -> str:
        ids = tok(prompt, return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        return tok.decode(out[0, ids.shape[1] :])

    before = vllm_text()
    assert before == hf_text()
    with torch.no_grad():  # a policy update vLLM must see: every MLP's output projection zeroed
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.zero_()
    changed = hf_text()
    assert changed != before
    generation.sync_weights()
    assert vllm_text() == changed


def test_a_grpo_step_with_use_vllm_runs_and_syncs_by_reload(tmp_path, monkeypatch):
    switched = []
    real = grpo.sync_by_reload
    monkeypatch.setattr(grpo, "sync_by_reload", lambda g: switched.append(real(g)) or switched[-1])
    cfg = grpo.GRPORunConfig(task="arith", limit=4, out=str(tmp_path / "g"), max_steps=1, batch_size=4,
                             micro_batch_size=4, num_generations=4, max_completion_length=8, use_vllm=True)  # fmt: skip
    grpo.train_grpo(cfg)
    assert switched == [True]
    assert (tmp_path / "g" / "config.json").exists()
