"""Diffusion of Thoughts on tiny models: data, noising, sampling rules, overfitting, resume, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkscale import ThinkscaleError
from thinkscale.cli import main
from thinkscale.dot.data import (
    ANSWER_SEP,
    load_task,
    multiplication,
    multiplication_example,
    parse_reversed_number,
)
from thinkscale.dot.model import bidirectional_mask, denoise_logits, encode, load_dot, source_text
from thinkscale.dot.sample import (
    SampleConfig,
    denoise,
    reveal_schedule,
    row_seed,
    sample_dot,
    step_plan,
)
from thinkscale.dot.train import (
    DiffusionCollator,
    DotDataset,
    DotTrainConfig,
    add_noise,
    build,
    diffusion_loss,
    train_dot,
)

TINY = dict(hidden_size=64, layers=2, heads=4, intermediate_size=128, bf16=False, logging_steps=1000)


@settings(deadline=None)  # CPU-loaded CI machines
@given(st.integers(1, 9999), st.integers(0, 9999))
def test_multiplication_chain_and_answer_are_arithmetically_right(a, b):
    ex = multiplication_example(a, b, 4, 4)
    assert int(ex.gold) == a * b
    assert parse_reversed_number(ex.answer) == str(a * b)
    b_digits = [int(d) for d in str(b).zfill(4)[::-1]]
    running = 0
    for i, thought in enumerate(ex.thoughts):  # partial products, then running sums
        parts = thought.replace("(", "").replace(")", "").split()
        width = 5 + i
        partial = int("".join(parts[:width][::-1]))
        assert partial == a * b_digits[i] * 10**i
        running += partial
        if i:
            assert int("".join(parts[width:][::-1])) == running
    assert running == a * b
    assert ex.target().endswith(f"{ANSWER_SEP} {ex.answer}")


def test_test_problems_never_appear_in_training():
    test = {e.question for e in load_task("mul4x4", "test", 300)}
    train = multiplication(4, 5000, seed=0, exclude=test)
    assert len(test) == 300 and not test & {e.question for e in train}
    assert [e.id for e in load_task("mul4x4", "test", 50)] == [e.id for e in load_task("mul4x4", "test", 50)]
    with pytest.raises(ThinkscaleError, match="unknown DoT task"):
        load_task("mul4x5", "test", 1)


def _tiny(task="mul2x2", count=20, **kw):
    examples = load_task(task, "train", count, seed=1)
    cfg = DotTrainConfig(task=task, **{**TINY, **kw})
    model, tok = build(cfg, examples)
    return examples, model.eval(), tok


def test_attention_is_bidirectional_and_padding_is_invisible():
    _, model, tok = _tiny()
    ids = torch.tensor([encode(tok, "1 2 * 3 4 || 5 6 + 7")])
    keys = torch.ones_like(ids, dtype=torch.bool)
    base = denoise_logits(model, ids, keys)[0, 0]
    changed = ids.clone()
    changed[0, -1] = encode(tok, "9")[0]
    assert not torch.allclose(base, denoise_logits(model, changed, keys)[0, 0])  # first sees last
    padded = torch.cat([torch.full((1, 3), tok.pad_token_id), ids], 1)
    pad_keys = torch.cat([torch.zeros(1, 3, dtype=torch.bool), keys], 1)
    assert torch.allclose(denoise_logits(model, padded, pad_keys)[0, 3:], denoise_logits(model, ids, keys)[0], atol=1e-5)
    assert bidirectional_mask(pad_keys, torch.float32)[0, 0, 5, :3].lt(-1e30).all()


def test_noising_never_touches_the_question():
    examples, _, tok = _tiny(count=64)
    ds = DotDataset(examples, tok, 512)
    clean = DiffusionCollator(tok, ds.gen_length)([ds[i] for i in range(64)])
    torch.manual_seed(0)
    batch = add_noise(clean, tok.mask_token_id, prefix_prob=0.5)
    src_len = max(len(r["src"]) for r in ds.rows)
    # rows that kept a clean prefix: nothing masked before their first thought boundary
    cut0 = clean["cuts"][:, 0]
    assert (cut0 > src_len).all()
    kept = [i for i in range(64) if not batch["masked"][i, src_len : cut0[i]].any()]
    assert 0 < len(kept) < 64
    assert not batch["masked"][:, :src_len].any()
    assert (batch["input_ids"][:, :src_len] == batch["labels"][:, :src_len]).all()
    assert batch["masked"].float().mean() > 0.2  # levels spread over (0, 1]: about half masked
    assert (batch["input_ids"][batch["masked"]] == tok.mask_token_id).all()


def test_token_prefixes_end_anywhere_in_the_target_and_leave_the_rest_noisable():
    examples, _, tok = _tiny(count=64)
    ds = DotDataset(examples, tok, 512)
    clean = DiffusionCollator(tok, ds.gen_length)([ds[i] for i in range(64)])
    torch.manual_seed(0)
    batch = add_noise(clean, tok.mask_token_id, prefix_prob=1.0, prefix_unit="token")
    src_len = max(len(r["src"]) for r in ds.rows)
    assert not batch["masked"][:, :src_len].any()
    noisable = batch["target_tokens"]  # per row: target positions at or after its clean prefix
    full = clean["input_ids"].shape[1] - src_len
    assert (noisable <= full).all() and (noisable >= full - (clean["tgt_end"] - src_len) + 1).all()
    starts = clean["input_ids"].shape[1] - noisable
    boundaries = set(clean["cuts"][clean["cuts"] >= 0].tolist())
    assert any(int(s) not in boundaries and int(s) != src_len for s in starts)  # mid-thought prefixes
    assert len(set(starts.tolist())) > 10
    for i, s in enumerate(starts.tolist()):
        assert not batch["masked"][i, :s].any()


def test_loss_weightings_uniform_mean_and_elbo_one_over_t():
    examples, model, tok = _tiny(count=16)
    ds = DotDataset(examples, tok, 512)
    torch.manual_seed(1)
    batch = add_noise(DiffusionCollator(tok, ds.gen_length)([ds[i] for i in range(16)]), tok.mask_token_id)
    logits = denoise_logits(model, batch["input_ids"], batch["key_mask"])
    m = batch["masked"]
    ce = torch.nn.functional.cross_entropy(logits[m], batch["labels"][m], reduction="none")
    rows = m.nonzero()[:, 0]
    elbo = (ce / batch["t"][rows]).sum() / batch["target_tokens"].sum()
    assert torch.allclose(diffusion_loss(model, batch, "uniform"), ce.mean(), atol=1e-5)
    assert torch.allclose(diffusion_loss(model, batch, "elbo"), elbo, atol=1e-5)
    with pytest.raises(ThinkscaleError, match="--weighting"):
        DotTrainConfig(weighting="1/t").validate()


def test_reveal_schedule_spreads_every_position():
    assert reveal_schedule(17, 1) == [17]
    assert reveal_schedule(17, 17) == [1] * 17
    assert reveal_schedule(17, 256) == [1] * 17  # T beyond the length is the length
    assert sum(reveal_schedule(66, 8)) == 66 and max(reveal_schedule(66, 8)) - min(reveal_schedule(66, 8)) <= 1


def _denoise_seen(*args, **kw):
    """`denoise`, plus the token ids the model saw at each pass (through a spy)."""
    import thinkscale.dot.sample as sample_mod

    seen = []

    def spy(m, ids, keys):
        seen.append(ids.clone())
        return denoise_logits(m, ids, keys)

    sample_mod.denoise_logits, saved = spy, sample_mod.denoise_logits
    try:
        return denoise(*args, **kw), seen
    finally:
        sample_mod.denoise_logits = saved


@pytest.mark.parametrize("length,steps,block", [(66, 8, 0), (66, 8, 11), (66, 3, 11), (66, 256, 5), (19, 7, 19)])
def test_step_plan_covers_each_block_in_order(length, steps, block):
    plan = step_plan(length, steps, block)
    blocks = sorted({(lo, hi) for lo, hi, _ in plan})
    assert [lo for lo, _, _ in plan] == sorted(lo for lo, _, _ in plan)  # left to right
    assert blocks[0][0] == 0 and blocks[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    for lo, hi in blocks:
        assert sum(k for a, b, k in plan if (a, b) == (lo, hi)) == hi - lo  # every position once
    assert len(plan) == max(len(blocks), min(steps, length))  # the passes actually run (nfe)


def test_block_sampling_reveals_nothing_beyond_the_current_block():
    examples, model, tok = _tiny()
    src = [encode(tok, source_text(e.question)) for e in examples[:4]]
    gens = [torch.Generator().manual_seed(i) for i in range(len(src))]
    out, seen = _denoise_seen(model, tok, src, 19, 8, "confidence", 0.0, gens, block_length=5)
    assert all(tok.mask_token_id not in row for row in out)
    width = max(map(len, src))
    plan = step_plan(19, 8, 5)
    assert len(seen) == len(plan)
    for ids, (lo, hi, _) in zip(seen, plan):  # what the model sees before each pass
        region = ids[:, width:]
        assert (region[:, :lo] == tok.mask_token_id).sum() == 0  # earlier blocks are complete
        assert (region[:, hi:] != tok.mask_token_id).sum() == 0  # later blocks are untouched


@pytest.mark.parametrize("steps", [1, 5, 999])
def test_sampling_fills_everything_and_never_changes_the_question(steps):
    examples, model, tok = _tiny()
    src = [encode(tok, source_text(e.question)) for e in examples[:6]] + [encode(tok, "1 *")]
    gens = [torch.Generator().manual_seed(i) for i in range(len(src))]
    length = 19
    out = denoise(model, tok, src, length, min(steps, 256), "random", 1.0, gens)
    for row in out:
        assert len(row) == length and tok.mask_token_id not in row  # a full sequence at any T
    # the question positions: run again and look at the whole tensor through a spy
    _, seen = _denoise_seen(model, tok, src, length, min(steps, 256), "confidence", 0.0, gens)
    width = max(map(len, src))
    for ids in seen:
        for i, s in enumerate(src):
            assert ids[i, width - len(s) : width].tolist() == s


def test_same_seed_same_output_and_batch_independent():
    examples, model, tok = _tiny()
    from thinkscale.dot.model import DotMeta

    meta = DotMeta("diffusion", "mul2x2", 19, "+")
    qs = [(e.id, e.question) for e in examples[:5]]
    cfg = SampleConfig(steps=4, temperature=1.0, order="random", n=2, seed=7, batch_size=10)
    a = sample_dot(model, tok, meta, qs, cfg)
    b = sample_dot(model, tok, meta, qs, SampleConfig(**{**cfg.__dict__, "batch_size": 3}))
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b]
    c = sample_dot(model, tok, meta, qs, SampleConfig(**{**cfg.__dict__, "seed": 8}))
    assert [r["tokens"] for r in a] != [r["tokens"] for r in c]
    assert row_seed(0, "x/0") != row_seed(0, "x/1")


def test_tiny_model_overfits_twenty_examples(tmp_path):
    examples = load_task("mul2x2", "train", 20, seed=1)
    out = train_dot(DotTrainConfig(task="mul2x2", out=str(tmp_path / "m"), max_steps=700, batch_size=20,
                                   learning_rate=3e-3, warmup=0.05, prefix_prob=0.0, save_steps=10_000,
                                   seed=0, **{**TINY, "hidden_size": 128, "intermediate_size": 256}),
                    examples=examples)  # fmt: skip
    model, tok, meta = load_dot(out)
    qs = [(e.id, e.question) for e in examples]
    for steps, multipass in ((meta.gen_length, False), (4, False), (meta.gen_length, True)):
        res = sample_dot(model, tok, meta, qs, SampleConfig(steps=steps, multipass=multipass))
        exact = [r["text"].split() == e.target().split() for r, e in zip(res, examples)]
        assert sum(exact) == 20, (steps, multipass, sum(exact))
    assert meta.train_steps == 700 and meta.train_seconds > 0


def _train_cfg(tmp_path, **kw):
    return DotTrainConfig(task="mul2x2", out=str(tmp_path / "run"), max_steps=6, batch_size=8, train_size=64,
                          save_steps=3, seed=0, **{**TINY, **kw})  # fmt: skip


def test_resume_after_a_crash_reaches_the_same_weights(tmp_path):
    from transformers import TrainerCallback

    full = train_dot(_train_cfg(tmp_path / "a"))

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 4:
                raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train_dot(_train_cfg(tmp_path / "b"), callbacks=[Crash()])
    assert not (tmp_path / "b" / "run" / "config.json").exists()
    with pytest.raises(ThinkscaleError, match="--resume"):
        train_dot(_train_cfg(tmp_path / "b"))
    with pytest.raises(ThinkscaleError, match="different settings"):
        train_dot(_train_cfg(tmp_path / "b", resume=True, learning_rate=1.0))
    before_crash = json.loads((tmp_path / "b/run/checkpoints/checkpoint-3/train_seconds.json").read_text())["seconds"]
    assert before_crash > 0
    resumed = train_dot(_train_cfg(tmp_path / "b", resume=True))
    a, _, _ = load_dot(full)
    b, _, meta = load_dot(resumed)
    assert meta.train_seconds >= round(before_crash, 1)  # the whole run's time, not just after the resume
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-5), name
    with pytest.raises(ThinkscaleError, match="already finished"):
        train_dot(_train_cfg(tmp_path / "b", resume=True))


def test_cli_train_eval_report_and_ar_baseline(tmp_path, capsys):
    model = tmp_path / "dot"
    assert main(["dot", "train", "--task", "mul2x2", "--out", str(model), "--max-steps", "3", "--batch-size", "8",
                 "--train-size", "64", "--hidden-size", "32", "--layers", "1", "--heads", "2",
                 "--intermediate-size", "64", "--no-bf16"]) == 0  # fmt: skip
    run = tmp_path / "eval"
    args = ["dot", "eval", "--model", str(model), "--out", str(run), "--limit", "6", "--steps", "1", "4",
            "--n", "2", "--temperature", "1.0"]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert len(records) == 6 * 2 * 2 and {r["budget"] for r in records} == {1, 4}
    assert all(r["method"] == "dot" and r["nfe"] == r["steps"] for r in records)
    metrics = json.loads((run / "metrics.json").read_text())
    assert {r["budget"] for r in metrics["runs"]} == {1, 4} and "2" in metrics["runs"][0]["maj@k"]
    for name in ("steps.png", "parallel.png", "report.html"):
        assert (run / name).stat().st_size > 0
    assert main(args) == 0  # resume: nothing new
    assert len((run / "results.jsonl").read_text().splitlines()) == 24
    assert main([*args[:-2], "--temperature", "0.5"]) == 2  # other settings: refused
    assert "other settings" in capsys.readouterr().err

    ar = tmp_path / "ar"
    assert main(["dot", "train", "--task", "mul2x2", "--objective", "ar", "--out", str(ar), "--max-steps", "2",
                 "--batch-size", "8", "--train-size", "64", "--hidden-size", "32", "--layers", "1", "--heads", "2",
                 "--intermediate-size", "64", "--no-bf16"]) == 0  # fmt: skip
    assert main(["dot", "eval", "--model", str(ar), "--out", str(tmp_path / "ar-eval"), "--limit", "4"]) == 0
    recs = [json.loads(line) for line in (tmp_path / "ar-eval" / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["method"] == "ar" and r["budget"] is None for r in recs)
    capsys.readouterr()
    assert main(["dot", "sample", "--model", str(model), "--question", "1 2 * 3 4", "--steps", "2"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["question"] == "1 2 * 3 4" and line["nfe"] == 2


def test_cli_bad_input(tmp_path, capsys):
    assert main(["dot", "train", "--task", "mul9x", "--out", str(tmp_path / "x")]) == 2
    assert "unknown DoT task" in capsys.readouterr().err
    assert main(["dot", "eval", "--model", str(tmp_path), "--out", str(tmp_path / "e")]) == 2
    assert "not a DoT checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    assert main(["dot", "train", "--task", "mul2x2", "--out", str(tmp_path / "busy"), "--max-steps", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "busy" / "file").read_text() == "x"


def test_gsm8k_pipeline_with_bpe_and_multipass(tmp_path):
    out = train_dot(DotTrainConfig(task="gsm8k", out=str(tmp_path / "g"), train_size=24, max_steps=2, batch_size=4,
                                   vocab_size=400, max_length=384, **{**TINY, "hidden_size": 32}))  # fmt: skip
    model, tok, meta = load_dot(out)
    assert meta.thought_sep == "<thought>" and len(tok) <= 400
    examples = load_task("gsm8k", "train", 24)
    ids = encode(tok, examples[0].target())
    assert tok.decode(ids) == examples[0].target()  # byte-level BPE round-trips
    from thinkscale.dot.evaluate import DotEvalConfig, eval_dot

    results = eval_dot(DotEvalConfig(model=str(out), out=str(tmp_path / "e"), limit=2, steps=[2], multipass=True,
                                     max_passes=3))  # fmt: skip
    recs = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(recs) == 2 and all(r["method"] == "dot-mp" and 1 <= r["passes"] <= 3 for r in recs)
    assert all(r["nfe"] == 2 * r["passes"] for r in recs)


def test_diffusion_from_a_pretrained_causal_checkpoint(tmp_path, tiny_checkpoint):
    out = train_dot(DotTrainConfig(task="mul2x2", init=str(tiny_checkpoint), out=str(tmp_path / "p"),
                                   train_size=16, max_steps=2, batch_size=4, bf16=False))  # fmt: skip
    model, tok, meta = load_dot(out)
    assert tok.mask_token_id is not None and model.get_input_embeddings().weight.shape[0] == len(tok)
    res = sample_dot(model, tok, meta, [("q", "1 2 * 3 4")], SampleConfig(steps=3))
    assert res[0]["nfe"] == 3 and tok.mask_token not in res[0]["text"]


def test_dot_trains_on_a_traces_file_and_evaluates_on_a_task(tmp_path, capsys):
    """`dot train --data` (synth's round data): thinking lines become thoughts; `dot eval --data`
    takes held-out questions from a thinkscale task."""
    traces = tmp_path / "data.jsonl"
    from thinkscale.data.arith import MUL_CONFIG, arith_traces

    rows = arith_traces(MUL_CONFIG)[:24]
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from thinkscale.dot.data import trace_examples

    ex = trace_examples(str(traces))[0]
    assert ex.thoughts == rows[0]["thinking"].splitlines() and ex.gold == rows[0]["answer"]
    assert ex.target().endswith(f"#### {rows[0]['answer']}")
    model = tmp_path / "dot"
    assert main(["dot", "train", "--data", str(traces), "--out", str(model), "--max-steps", "2", "--batch-size", "4",
                 "--vocab-size", "300", "--hidden-size", "32", "--layers", "1", "--heads", "2",
                 "--intermediate-size", "64", "--no-bf16"]) == 0  # fmt: skip
    assert main(["dot", "eval", "--model", str(model), "--out", str(tmp_path / "e")]) == 2  # which questions?
    assert "give its held-out questions with --data" in capsys.readouterr().err
    assert main(["dot", "eval", "--model", str(model), "--data", "arith-mul", "--limit", "3", "--steps", "2",
                 "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    recs = [json.loads(line) for line in (tmp_path / "e" / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and all(r["task"] == "arith-mul" and r["grader"] == "numeric" for r in recs)
    from thinkscale.tasks import get_task

    assert [r["gold"] for r in recs] == [e.gold for e in get_task("arith-mul").load(3)]
    assert main(["dot", "train", "--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "x")]) == 2
    assert "no such traces file" in capsys.readouterr().err
