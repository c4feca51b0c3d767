"""refine: F_N and the pass@N loss by hand and by autograd, N = 1 is plain SFT (same weights), the
sampling filter (exact keep rule on a scripted model, current weights, resume), bad input."""

from __future__ import annotations

import json
import math
import zlib

import pytest
import torch

from tests.infer.test_engine import Scripted
from tests.train.test_sft import write_traces
from thinkscale import ThinkscaleError
from thinkscale.train import refine
from thinkscale.train.losses import SERIES_BELOW, pass_at_n_loss, pass_at_n_weight, refine_series
from thinkscale.train.refine import CandidateStream, Refine, RefineConfig, pass_rates
from thinkscale.train.sft import SFTRunConfig, train_sft


def closed_form(p: float, n: int) -> float:
    return n * p * (1 - p) ** (n - 1) / (1 - (1 - p) ** n)


@pytest.mark.parametrize("n", [2, 16, 64, 256])
def test_weight_is_the_closed_form_and_agrees_with_refines_series_below_the_switch(n):
    for p in [1e-9, 1e-4, 0.2, 0.5, 0.9, 0.999]:
        got = pass_at_n_weight(torch.tensor(p, dtype=torch.float64), n).item()
        assert got == pytest.approx(closed_form(p, n), rel=1e-6 if n * p < 1e-3 else 1e-12)
    for frac in [0.01, 0.3, 0.99]:  # below the switch: refine's series, to its O((Np)^3) accuracy
        p = torch.tensor(frac * SERIES_BELOW / n, dtype=torch.float64)
        assert pass_at_n_weight(p, n).item() == pytest.approx(refine_series(p, n).item(), abs=2e-4 * frac**2)
    switch = SERIES_BELOW / n  # no jump at refine's switch
    below = pass_at_n_weight(torch.tensor(switch * (1 - 1e-9), dtype=torch.float64), n).item()
    above = pass_at_n_weight(torch.tensor(switch * (1 + 1e-9), dtype=torch.float64), n).item()
    assert below == pytest.approx(above, abs=1e-9)


def test_weight_limits():
    p = torch.tensor([0.0, 1e-12, 0.3, 0.99, 1.0], dtype=torch.float64)
    assert torch.equal(pass_at_n_weight(p, 1), torch.ones(5, dtype=torch.float64))  # N = 1: plain CE
    w = pass_at_n_weight(p, 16)
    assert w[0].item() == 1.0 and w[1].item() == pytest.approx(1.0)
    assert w[-1].item() == 0.0 and w[-2].item() < 1e-20  # confident examples stop pulling
    assert torch.all(w[:-1] > 0) and torch.all(w.diff() <= 0)  # monotone in p


@pytest.mark.parametrize("n", [1, 4, 16])
def test_gradient_is_that_of_minus_log_pass_at_n(n):
    """d/d(log p) of F x (-log p) with F detached == d/d(log p) of -log(1 - (1 - p)^N)."""
    for p0 in [0.001, 0.05, 0.3, 0.8]:
        logp = torch.tensor(math.log(p0), dtype=torch.float64, requires_grad=True)
        (-torch.log(1 - (1 - logp.exp()) ** n)).backward()
        want = logp.grad.item()
        logp2 = torch.tensor(math.log(p0), dtype=torch.float64, requires_grad=True)
        (pass_at_n_weight(logp2.exp(), n) * -logp2).backward()
        assert logp2.grad.item() == pytest.approx(want, rel=1e-6)


def test_loss_weighs_each_example_by_its_own_probability():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 11, (3, 5))
    labels[0, :2] = -100
    labels[2, 4] = -100
    loss, stats = pass_at_n_loss(logits, labels, 8)
    logps = torch.log_softmax(logits, -1).gather(2, labels.clamp(min=0).unsqueeze(2)).squeeze(2) * (labels != -100)
    p = logps.sum(1).exp().detach()
    want = (torch.tensor([closed_form(float(x), 8) for x in p], dtype=torch.float64)
            * -logps.sum(1)).sum() / (labels != -100).sum()  # fmt: skip
    assert loss.item() == pytest.approx(want.item(), rel=1e-4)  # tiny p: F close to 1
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
    assert pass_at_n_loss(logits, labels, 1)[0].item() == pytest.approx(ce.item(), rel=1e-12)
    sure = pass_at_n_loss(logits, labels, 8, p=torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64))[1]
    assert sure["weight"].tolist() == pytest.approx([0.0, 1.0, closed_form(0.5, 8)])


def sft(tmp_path, tiny_checkpoint, name, **kw):
    data = write_traces(tmp_path / "traces.jsonl", n=16)
    cfg = SFTRunConfig(data=str(data), out=str(tmp_path / name), model=str(tiny_checkpoint), max_steps=3,
                       batch_size=4, micro_batch_size=2, learning_rate=1e-3, max_length=256, save_steps=1,
                       save_total_limit=3, logging_steps=1, **kw)  # every step's checkpoint stays  # fmt: skip
    return train_sft(cfg)


def weights(path):
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_pass_at_1_trains_exactly_as_plain_sft(tmp_path, tiny_checkpoint):
    a = weights(sft(tmp_path, tiny_checkpoint, "ce"))
    b = weights(sft(tmp_path, tiny_checkpoint, "n1", objective="pass-at-n", pass_n=1))
    sft(tmp_path, tiny_checkpoint, "n16", objective="pass-at-n", pass_n=16)
    for k in a:
        assert (a[k] - b[k]).abs().max() <= 1e-6, k
    log = json.loads((tmp_path / "n16" / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert all(0 < e["refine/weight"] <= 1 for e in log["log_history"] if "refine/weight" in e)


def test_candidate_stream_is_a_permutation_per_pass_and_resumes():
    s = CandidateStream(5, seed=3)
    first, second = s.take(5), s.take(5)
    assert sorted(first) == sorted(second) == list(range(5)) and first != second
    resumed = CandidateStream(5, seed=3, cursor=3)
    assert resumed.take(4) == first[3:] + second[:2]


def seven_sayer(tiny_model, tokenizer):
    """Every token -> '7', '7' -> end: thinks '7', answers '7' (its weights decide: scripted)."""
    seven = tokenizer.convert_tokens_to_ids("7")
    script = {i: seven for i in range(len(tokenizer))}
    return Scripted(tiny_model.float(), {**script, seven: tokenizer.eos_token_id})


def test_pass_rates_grade_samples_of_the_given_weights(tiny_model, tokenizer):
    cfg = RefineConfig(filter_samples=4, filter_budget=8, filter_max_answer_tokens=4, grader="numeric")
    try:
        model = seven_sayer(tiny_model, tokenizer)
        assert pass_rates(model, tokenizer, ["1+6?", "2+2?", "3+4?"], ["7", "4", "7"], ["a", "b", "c"], cfg,
                          "s1", 0) == [1.0, 0.0, 1.0]  # fmt: skip
        assert model.training is False
        model.table.fill_(-1)  # other weights, other samples: the random tiny model never says 7
        assert pass_rates(model, tokenizer, ["1+6?"], ["7"], ["a"], cfg, "s1", 0) == [0.0]
    finally:
        tiny_model.double()


def test_filter_keeps_exactly_the_hard_examples_and_refills(tiny_model, tokenizer):
    golds = ["7", "1", "7", "2", "7", "3", "4", "7"]
    cfg = RefineConfig(filter="sampled", filter_samples=2, filter_budget=8, filter_max_answer_tokens=4,
                       filter_threshold=0.5, filter_warmup_steps=0, grader="numeric")  # fmt: skip
    r = Refine(cfg, [f"q{i}?" for i in range(8)], golds, "s1", seed=0, batch_size=3)
    order = CandidateStream(8, 0).take(12)
    try:
        kept, rates, log = r.draw(seven_sayer(tiny_model, tokenizer), tokenizer, want=3, step=0)
    finally:
        tiny_model.double()
    hard = [i for i in order if golds[i] != "7"]
    assert kept == hard[:3] and rates == [0.0, 0.0, 0.0]
    assert log["refine/kept"] == 3 and log["refine/candidates"] == order.index(hard[2]) + 1
    assert log["refine/mean_p_hat"] == pytest.approx(sum(golds[i] == "7" for i in order[: log["refine/candidates"]])
                                                     / log["refine/candidates"])  # fmt: skip
    assert log["refine/sampling_seconds"] > 0


def test_filter_run_samples_current_weights_and_resumes_to_the_same_weights(tmp_path, tiny_checkpoint, monkeypatch):
    """p-hat here is a function of the weights handed to the sampler: every draw sees the weights
    the checkpoint of that step holds (not a stale copy); a run resumed from a middle checkpoint
    draws the same candidates and ends with the same weights."""
    from safetensors.torch import load_file

    seen = []

    def fake_rates(model, tokenizer, questions, golds, ids, cfg, fmt, seed):
        w = float(model.model.embed_tokens.weight.detach().double().sum())
        seen.append((w, tuple(ids)))
        return [((zlib.crc32(i.encode()) % 7) / 7 + w * 1e3) % 1 for i in ids]  # depends on the weights

    monkeypatch.setattr(refine, "pass_rates", fake_rates)
    kw = dict(filter="sampled", filter_warmup_steps=1, filter_threshold=0.6, filter_samples=2, grader="numeric")
    straight = sft(tmp_path, tiny_checkpoint, "straight", **kw)
    draws = list(seen)
    assert draws  # the filter ran from step 1
    for step in (1, 2):  # the weights the sampler saw at step s are the checkpoint of step s
        ck = load_file(straight / "checkpoints" / f"checkpoint-{step}" / "model.safetensors")
        assert any(abs(w - float(ck["model.embed_tokens.weight"].double().sum())) < 1e-6 for w, _ in draws)
    state = json.loads((straight / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    logged = [e for e in state["log_history"] if "refine/kept" in e]
    assert len(logged) == 2 and all(e["refine/kept"] <= 4 for e in logged)
    # resume from checkpoint-1: same draws after it, same final weights
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(straight, out)
    for extra in ("checkpoint-2", "checkpoint-3"):
        shutil.rmtree(out / "checkpoints" / extra)
    for final in ("model.safetensors", "config.json"):
        (out / final).unlink()
    run = json.loads((out / "thinkscale_sft.json").read_text())
    run["config"]["out"] = str(out)  # as if this run had crashed after checkpoint-1
    (out / "thinkscale_sft.json").write_text(json.dumps(run))
    seen.clear()
    data = tmp_path / "traces.jsonl"
    cfg = SFTRunConfig(data=str(data), out=str(out), model=str(tiny_checkpoint), max_steps=3, batch_size=4,
                       micro_batch_size=2, learning_rate=1e-3, max_length=256, save_steps=1, logging_steps=1,
                       resume=True, **kw)  # fmt: skip
    train_sft(cfg)
    assert [ids for _, ids in seen] == [ids for _, ids in draws[-len(seen):]]
    a, b = weights(straight), weights(out)
    for k in a:
        assert (a[k] - b[k]).abs().max() <= 1e-6, k


@pytest.mark.parametrize("kw,msg", [
    (dict(objective="pass-at-n", pass_n=0), "--pass-n must be >= 1"),
    (dict(filter="sampled", filter_threshold=0.0), r"--filter-threshold must be in \(0, 1\]"),
    (dict(filter="sampled", filter_threshold=1.5), r"--filter-threshold must be in \(0, 1\]"),
    (dict(filter="sampled", filter_samples=0), "--filter-samples must be >= 1"),
    (dict(objective="pass-at-n", packing=True), "not with --packing"),
    (dict(filter="sampled", grader="nope"), "--grader must be one of"),
])  # fmt: skip
def test_bad_settings(kw, msg):
    with pytest.raises(ThinkscaleError, match=msg):
        SFTRunConfig(**kw).validate()


def test_sampled_p_needs_gradeable_answers(tmp_path, tiny_checkpoint):
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"id": "x1", "question": "q?", "thinking": "t", "answer": "seven-ish"}) + "\n")
    cfg = SFTRunConfig(data=str(data), out=str(tmp_path / "o"), model=str(tiny_checkpoint), max_steps=1,
                       objective="pass-at-n", p_source="sampled", grader="numeric")  # fmt: skip
    with pytest.raises(ThinkscaleError, match="trace x1: answer 'seven-ish' cannot be graded"):
        train_sft(cfg)
    assert not (tmp_path / "o").exists()
