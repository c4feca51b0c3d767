"""GRPO / DeGRPO: the reward per format and mode, the decoupled loss on hand-made tensors, a few
steps on a tiny model (weights move, a checkpoint is written, a crashed run resumes), bad input."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import make_model, make_tokenizer
from thinkscale import ThinkscaleError
from thinkscale.formats import get_format
from thinkscale.models import add_format_tokens
from thinkscale.tasks import QuestionsTask
from thinkscale.train.grpo import GRPORunConfig, Rewards, batch_stats, train_grpo
from thinkscale.train.losses import clipped_surrogate, degrpo_loss

REWARDS = {"correct": 1.0, "short": 1.0, "think": 0.5, "wrong": -1.0, "malformed": -2.0}


def rewards_for(fmt_name: str, tok=None):
    tok = tok or make_tokenizer()
    fmt = get_format(fmt_name)
    if fmt.added_tokens:
        add_format_tokens(tok, fmt.added_tokens)
    task = QuestionsTask(["What is 1 + 2?"], golds=["3"], name="t", grader="numeric")
    return Rewards(task, task.load(), fmt, tok, REWARDS), tok


def score(rw, tok, texts: list[str]) -> list[float]:
    ids = [tok.encode(t, add_special_tokens=False) + [tok.eos_token_id] for t in texts]
    return rw(completion_ids=ids, index=[0] * len(ids))


@pytest.mark.parametrize("fmt, right, wrong, malformed", [
    ("s1", "1+2=3\n<|im_start|>answer\nAnswer: 3", "1+2=4\n<|im_start|>answer\nAnswer: 4", "1+2=3 and on and on"),
    ("r1", "1+2=3\n</think>\n\n3", "1+2=4\n</think>\n\n4", "1+2=3 and on"),
    ("plain", "3", "4", ""),
])  # fmt: skip
def test_rewards_per_format(fmt, right, wrong, malformed):
    rw, tok = rewards_for(fmt)
    try:
        assert score(rw, tok, [right, wrong, malformed]) == [1.0, -1.0, -2.0]
    finally:
        rw.pool.close()


def test_hybrid_rewards_per_mode_exactly_as_configured():
    rw, tok = rewards_for("hybrid")
    logged = {}
    try:
        texts = ["<think>\n1+2=3\n</think>\n\n3", "<short>\n3", "<short>\n4", "<think>\n1+2=4\n</think>\n\n4",
                 "3", "<think>\n1+2 never ends"]  # fmt: skip
        ids = [tok.encode(t, add_special_tokens=False) + [tok.eos_token_id] for t in texts]
        got = rw(completion_ids=ids, index=[0] * 6, log_metric=lambda k, v: logged.__setitem__(k, v))
        assert got == [0.5, 1.0, -1.0, -1.0, -2.0, -2.0]  # think, short, wrong x2, no control token, never ends
        assert logged["think_share"] == 3 / 6 and logged["accuracy"] == 2 / 6
        assert logged["accuracy_think"] == 1 / 3 and logged["accuracy_short"] == 1 / 2
        assert logged["malformed"] == 2 / 6
    finally:
        rw.pool.close()


def test_short_max_tokens_makes_a_long_short_answer_malformed():
    """The DeGRPO reward hack on arith: the column trace written after <short> earned the short
    reward. With the bound, a short response longer than N tokens gets the malformed reward; one
    within it, and think mode of any length, are graded as before."""
    tok = make_tokenizer()
    fmt = get_format("hybrid")
    add_format_tokens(tok, fmt.added_tokens)
    task = QuestionsTask(["What is 1 + 2?"], golds=["3"], name="t", grader="numeric")
    texts = ["<short>\n3", "<short>\n" + "1+2=3 " * 10 + "\n3", "<think>\n" + "1+2=3 " * 10 + "\n</think>\n\n3"]
    ids = [tok.encode(t, add_special_tokens=False) + [tok.eos_token_id] for t in texts]
    short_len = len(ids[0]) - 2  # without the control token and the stop token
    logged = {}
    for bound, expected in ((None, [1.0, 1.0, 0.5]), (short_len, [1.0, -2.0, 0.5])):
        rw = Rewards(task, task.load(), fmt, tok, REWARDS, short_max_tokens=bound)
        try:
            assert rw(completion_ids=ids, index=[0] * 3, log_metric=logged.__setitem__) == expected
        finally:
            rw.pool.close()
    assert logged["short_overlong"] == 1 / 3 and logged["malformed"] == 1 / 3


def test_batch_stats_without_modes_has_no_think_share():
    stats = batch_stats([{"mode": None, "correct": True, "malformed": False}, {"mode": None, "correct": False,
                                                                               "malformed": True}])  # fmt: skip
    assert stats == {"accuracy": 0.5, "malformed": 0.5}


def hand_made():
    torch.manual_seed(0)
    logps = (torch.randn(4, 5) * 0.1 - 1.0).requires_grad_()
    old = (logps.detach() + torch.randn(4, 5) * 0.05)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.float)
    return logps, old, adv, mask


def test_degrpo_loss_equals_the_formula():
    logps, old, adv, mask = hand_made()
    loss, stats = degrpo_loss(logps, old, adv, mask, alpha=0.3)
    per_token = clipped_surrogate(logps, old, adv)
    control = per_token[:, 0].mean()  # position 0 of every response
    response = (per_token[:, 1:] * mask[:, 1:]).sum() / mask[:, 1:].sum()  # token mean of the rest
    assert torch.allclose(loss, 0.3 * control + response)
    assert stats["control_loss"] == pytest.approx(float(control)) and stats["response_loss"] == pytest.approx(float(response))
    # by hand for one token: ratio r, clipped to [0.8, 1.2]
    r = torch.exp(logps[0, 1] - old[0, 1])
    assert torch.allclose(per_token[0, 1], -torch.min(r * 1.0, r.clamp(0.8, 1.2) * 1.0))


def test_control_token_gradient_comes_only_from_the_control_term():
    logps, old, adv, mask = hand_made()
    for alpha in (0.001, 1.0):
        logps.grad = None
        loss, _ = degrpo_loss(logps, old, adv, mask, alpha=alpha)
        loss.backward()
        g = logps.grad.clone()
        logps.grad = None
        control_only = alpha * clipped_surrogate(logps, old, adv)[:, 0].mean()
        control_only.backward()
        assert torch.allclose(g[:, 0], logps.grad[:, 0])  # the response term does not touch position 0
        assert torch.count_nonzero(g[:, 1:][mask[:, 1:] == 0]) == 0  # padding gets nothing


def test_alpha_one_with_one_token_responses_is_token_mean_grpo():
    logps, old, adv, _ = hand_made()
    one = torch.zeros(4, 5)
    one[:, 0] = 1
    loss, _ = degrpo_loss(logps, old, adv, one, alpha=1.0)
    assert torch.allclose(loss, clipped_surrogate(logps, old, adv)[:, 0].mean())


def test_equal_reward_groups_contribute_nothing():
    logps, old, adv, mask = hand_made()
    live = torch.tensor([1.0, 1.0, 0.0, 0.0])  # the second group's rewards were all equal
    loss, _ = degrpo_loss(logps, old, adv, mask, live=live, alpha=0.5)
    ref, _ = degrpo_loss(logps[:2], old[:2], adv[:2], mask[:2], alpha=0.5)
    assert torch.allclose(loss, ref)
    loss.backward()
    assert torch.count_nonzero(logps.grad[2:]) == 0


def tiny_policy(tok, eos_bias: float = 3.0):
    """A tiny random Llama that ends its answer early about half the time, so a group's rewards
    differ (an empty answer is malformed, any other is wrong) and GRPO has a gradient."""
    from transformers import LlamaForCausalLM

    class EndsOften(LlamaForCausalLM):
        def forward(self, *args, **kw):
            out = super().forward(*args, **kw)
            out.logits[..., tok.eos_token_id] += eos_bias
            return out

    base = make_model(len(tok), dtype=torch.float32)
    model = EndsOften(base.config)
    model.load_state_dict(base.state_dict())
    return model


def config(tmp_path, **kw):
    base = dict(data=None, task=None, out=str(tmp_path / "g"), format="plain", max_steps=3, num_generations=4,
                batch_size=8, micro_batch_size=4, max_completion_length=4, learning_rate=1e-2, temperature=1.0,
                save_steps=1, logging_steps=1, reward_wrong=0.0, reward_malformed=-1.0)  # fmt: skip
    return GRPORunConfig(**{**base, **kw})


def task_file(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(f'{{"question": "What is {i} + 1?", "answer": "{i + 1}"}}\n' for i in range(8)))
    return str(path)


def test_a_few_steps_move_the_weights_write_a_checkpoint_and_resume(tmp_path, monkeypatch):
    tok = make_tokenizer()
    model = tiny_policy(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = config(tmp_path, data=task_file(tmp_path), grader="numeric")
    calls = {"n": 0}
    real = Rewards.__call__

    def crash_on_third(self, *a, **kw):  # the run dies in step 3, after checkpoints 1 and 2
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(self, *a, **kw)

    monkeypatch.setattr(Rewards, "__call__", crash_on_third)
    with pytest.raises(RuntimeError, match="killed"):
        train_grpo(cfg, model=model, tokenizer=tok)
    out = tmp_path / "g"
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert not (out / "config.json").exists()
    moved = max(float((model.state_dict()[k] - v).abs().max()) for k, v in before.items())
    assert moved > 0  # the policy changed
    monkeypatch.setattr(Rewards, "__call__", real)
    with pytest.raises(ThinkscaleError, match="pass --resume"):
        train_grpo(cfg, model=tiny_policy(tok), tokenizer=tok)
    cfg.resume = True
    train_grpo(cfg, model=tiny_policy(tok), tokenizer=tok)
    assert (out / "config.json").exists() and (out / "checkpoints" / "checkpoint-3").exists()


def test_degrpo_runs_on_a_hybrid_model(tmp_path):
    tok = make_tokenizer()
    add_format_tokens(tok, get_format("hybrid").added_tokens)
    model = tiny_policy(tok)
    model.resize_token_embeddings(len(tok))
    cfg = config(tmp_path, data=task_file(tmp_path), grader="numeric", format="hybrid", objective="degrpo",
                 max_steps=1, reward_wrong=None, reward_malformed=None)  # fmt: skip
    train_grpo(cfg, model=model, tokenizer=tok)
    assert (tmp_path / "g" / "config.json").exists()


@pytest.mark.parametrize("kw, message", [
    (dict(objective="degrpo"), "--objective degrpo decouples the control token"),
    (dict(num_generations=1), "--num-generations must be >= 2"),
    (dict(batch_size=6, micro_batch_size=2), "must be a multiple of --num-generations 4"),
    (dict(temperature=0.0), "--temperature must be > 0"),
    (dict(short_max_tokens=8), "--short-max-tokens bounds hybrid short-mode answers"),
    (dict(format="hybrid", short_max_tokens=0), "--short-max-tokens must be >= 1"),
])  # fmt: skip
def test_bad_settings_fail_before_anything_is_written(tmp_path, kw, message):
    cfg = config(tmp_path, task="arith", **kw)
    with pytest.raises(ThinkscaleError, match=message):
        train_grpo(cfg)
    assert not (tmp_path / "g").exists()


def test_a_task_without_gold_answers_is_refused(tmp_path, tiny_checkpoint):
    cfg = config(tmp_path, model=str(tiny_checkpoint))
    with pytest.raises(ThinkscaleError, match="1 question\\(s\\) without a gold answer"):
        train_grpo(cfg, task=QuestionsTask(["What is 1 + 1?"]))  # the API's questions, no golds given
    assert not (tmp_path / "g").exists()


def test_fsdp_across_two_launched_processes(tmp_path, tiny_checkpoint, free_port):
    """`accelerate launch --config_file configs/accelerate/fsdp_cpu_2.yaml -m thinkscale.train grpo`:
    the same launch configs as `train sft`; FSDP2 shards across 2 CPU processes (TRL's trainer
    resets the shared state to MULTI_CPU after __init__, so the promotion is redone before the model
    is wrapped: without it the model came out DDP and generation failed), one checkpoint out."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    accelerate = Path(sys.executable).with_name("accelerate")
    config = Path(__file__).parents[2] / "configs" / "accelerate" / "fsdp_cpu_2.yaml"
    cmd = [str(accelerate), "launch", "--config_file", str(config), "--main_process_port", str(free_port()),
           "-m", "thinkscale.train", "grpo", "--data", task_file(tmp_path), "--grader", "numeric", "--format", "plain",
           "--model", str(tiny_checkpoint), "--out", str(tmp_path / "g"), "--max-steps", "2", "--num-generations", "4",
           "--batch-size", "8", "--micro-batch-size", "2", "--max-completion-length", "6", "--temperature", "1.0",
           "--learning-rate", "1e-2", "--save-steps", "1", "--fsdp"]  # fmt: skip
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "g" / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    shards = tmp_path / "g" / "checkpoints" / "checkpoint-2" / "pytorch_model_fsdp_0"
    assert sorted(p.name for p in shards.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]  # sharded
    AutoModelForCausalLM.from_pretrained(tmp_path / "g")  # one normal checkpoint
