"""models.py: which dtype `auto` picks, from what the CPU offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkscale import models


@pytest.mark.parametrize("flags,expected", [
    ("fpu sse avx2 avx512f", "float32"),  # AVX-512 without bf16: emulated bf16
    ("fpu avx2 avx512_bf16", "bfloat16"),
    ("fpu avx2 amx_bf16 amx_tile", "bfloat16"),
    (None, "float32"),  # no /proc/cpuinfo (macOS)
])  # fmt: skip
def test_auto_dtype_follows_the_cpu(monkeypatch, flags, expected):
    real = Path.read_text

    def read_text(self, *a, **kw):
        if str(self) == "/proc/cpuinfo":
            if flags is None:
                raise OSError("no such file")
            return f"processor\t: 0\nflags\t\t: {flags}\n"
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert models.resolve_dtype("auto") == expected
    assert models.resolve_dtype("auto", device="cuda") == "bfloat16"
    assert models.resolve_dtype("float32") == "float32" and models.resolve_dtype("bfloat16") == "bfloat16"


def _padded_batch(vocab: int):
    import torch

    torch.manual_seed(1)
    ids = torch.randint(3, vocab, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding: transformers then builds a 4D mask (the masked path)
    mask[2, :2] = 0
    return ids, mask


def test_loaded_model_skips_the_kv_head_copy_and_matches_transformers_sdpa(tiny_checkpoint, monkeypatch):
    """A model from `load_model` attends with grouped KV heads as they are (`repeat_kv`, the
    copy, never runs), and gives transformers' SDPA results: prefill bitwise, decode steps to
    float rounding, with the same greedy tokens."""
    import torch
    import transformers.integrations.sdpa_attention as sdpa
    from transformers import AutoModelForCausalLM, DynamicCache

    grouped, _ = models.load_model(str(tiny_checkpoint), dtype="float32")
    stock = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()
    assert grouped.config._attn_implementation == models.GROUPED_SDPA
    assert stock.config._attn_implementation == "sdpa" and grouped.config.num_key_value_heads < grouped.config.num_attention_heads
    ids, mask = _padded_batch(grouped.config.vocab_size)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)

    def run(model, copy_allowed: bool):
        if not copy_allowed:
            monkeypatch.setattr(sdpa, "repeat_kv", lambda *a: pytest.fail("repeat_kv ran"))
        cache, m, logits, steps = DynamicCache(config=model.config), mask, [], []
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=m, position_ids=positions, past_key_values=cache)
            logits.append(out.logits)
            pos = positions[:, -1:]
            for _ in range(6):  # greedy decode steps: one query token each
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                steps.append(nxt)
                m, pos = torch.cat([m, torch.ones_like(nxt)], 1), pos + 1
                out = model(input_ids=nxt, attention_mask=m, position_ids=pos, past_key_values=cache)
                logits.append(out.logits)
        monkeypatch.undo()
        return logits, torch.cat(steps, 1)

    stock_logits, stock_tokens = run(stock, copy_allowed=True)
    grouped_logits, grouped_tokens = run(grouped, copy_allowed=False)
    assert torch.equal(grouped_logits[0], stock_logits[0])  # prefill: the same kernel on the same numbers
    for a, b in zip(grouped_logits[1:], stock_logits[1:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert torch.equal(grouped_tokens, stock_tokens)


def test_grouped_attention_stays_transformers_sdpa_while_training(tiny_checkpoint):
    """Training (dropout, gradients) goes through transformers' own SDPA untouched."""
    import torch
    from transformers import AutoModelForCausalLM

    grouped, _ = models.load_model(str(tiny_checkpoint), dtype="float32")
    stock = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    ids, mask = _padded_batch(grouped.config.vocab_size)
    losses = []
    for model in (grouped.train(), stock.train()):
        loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        losses.append((loss.detach(), model.model.layers[0].self_attn.q_proj.weight.grad.clone()))
    assert torch.equal(losses[0][0], losses[1][0]) and torch.equal(losses[0][1], losses[1][1])
