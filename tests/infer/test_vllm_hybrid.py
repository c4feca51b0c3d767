"""A hybrid model on the vLLM engine: the mode phase inside the logits processor gives the HF
engine's records (mode, thinking tokens, cap) in auto, think and short mode.

The checkpoint is the embedded SmolLM2 with the three control tokens added; `<think>`'s (tied)
row is pointed along the model's last hidden state after the assistant header, so that, untrained,
it still chooses `<think>` in auto mode and the control-token path is exercised."""

import json

import pytest

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

from thinkscale.formats import get_format  # noqa: E402
from thinkscale.infer.generate import GenerateConfig, generate  # noqa: E402

HYBRID = get_format("hybrid")


@pytest.fixture(scope="module")
def hybrid_checkpoint(tmp_path_factory):
    import torch

    from thinkscale.models import add_format_tokens, init_new_embeddings, load_model

    model, tok = load_model("smollm2-135m", dtype="float32")
    init_new_embeddings(model, tok, add_format_tokens(tok, HYBRID.added_tokens))
    prompt = HYBRID.render_prompt(tok, "What is 2 + 3?")
    with torch.no_grad():
        out = model(torch.tensor([tok.encode(prompt, add_special_tokens=False)]), output_hidden_states=True)
        h = out.hidden_states[-1][0, -1]
        target = float(out.logits[0, -1].max()) + 8.0
        model.get_input_embeddings().weight[tok.convert_tokens_to_ids("<think>")] = h * (target / h.dot(h))
    path = tmp_path_factory.mktemp("hybrid-smollm2")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def records(path, tmp_path, engine, name, **kw):
    cfg = GenerateConfig(task="arith-easy", limit=6, model=str(path), format="hybrid", engine=engine,
                         dtype="float32", max_answer_tokens=8, **kw)  # fmt: skip
    out = generate(cfg, tmp_path / name, progress=False)
    return {(r["id"], r["requested_mode"]): r for r in map(json.loads, open(out))}


def test_vllm_gives_the_hf_engines_modes_and_counts(hybrid_checkpoint, tmp_path):
    kw = dict(modes=["auto", "think", "short"], budgets=[16])
    hf = records(hybrid_checkpoint, tmp_path, "hf", "h.jsonl", **kw)
    vl = records(hybrid_checkpoint, tmp_path, "vllm", "v.jsonl", **kw)
    assert hf.keys() == vl.keys() and len(hf) == 18
    assert sum(r["mode"] == "think" for k, r in hf.items() if k[1] == "auto") >= 4  # the control path runs
    for key, r in vl.items():
        h = hf[key]
        assert r["mode"] == h["mode"], key
        if r["mode"] == "think":
            assert r["thinking_tokens"] == h["thinking_tokens"] == 16 and r["capped"]  # the cap, exactly
            assert r["answer"].startswith("Final Answer:")
        else:
            assert r["thinking_tokens"] == 0 and not r["capped"] and r["answer_tokens"] <= 8
    assert {r["mode"] for k, r in vl.items() if k[1] == "short"} == {"short"}
    same = sum(vl[k]["thinking"] == hf[k]["thinking"] and vl[k]["answer"] == hf[k]["answer"] for k in hf)
    assert same >= 14, same  # greedy on both; float differences may flip a token
