"""The hybrid warm-up (Thinkless' Reasoning-SFT) on a tiny model: the control token is inside the
loss and the prompt is not, pairs stay adjacent when shuffled, the checkpoint carries the tokens."""

from __future__ import annotations

import json

import torch

from tests.conftest import make_model, make_tokenizer
from thinkscale.cli import main
from thinkscale.data.hybrid import HybridPairsConfig, build_pairs
from thinkscale.formats import get_format
from thinkscale.models import add_format_tokens, init_new_embeddings
from thinkscale.train.sft import pair_groups, to_conversations
from thinkscale.train.trainer import PairedSampler

HYBRID = get_format("hybrid")


def pairs(tmp_path, limit=6):
    build_pairs(HybridPairsConfig(data="arith-mixed", out=str(tmp_path / "pairs"), limit=limit))
    return tmp_path / "pairs" / "data.jsonl"


def test_labels_cover_the_control_token_and_nothing_of_the_prompt(tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tok = make_tokenizer()
    model = make_model(len(tok), dtype=torch.float32)
    init_new_embeddings(model, tok, add_format_tokens(tok, HYBRID.added_tokens))
    traces = [json.loads(line) for line in pairs(tmp_path).read_text().splitlines()]
    rows = to_conversations(traces, "hybrid")
    args = SFTConfig(output_dir=str(tmp_path / "o"), max_length=512, completion_only_loss=True, bf16=False,
                     report_to=[], use_cpu=True, gradient_checkpointing=False)  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    controls = {tok.convert_tokens_to_ids(t): t for t in ("<think>", "<short>")}
    for i, (row, trace) in enumerate(zip(rows, traces)):
        prompt = tok.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True)
        full = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
        prompt = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
        full = full["input_ids"] if hasattr(full, "keys") else full
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        n, p = len(full), len(prompt)
        assert ids[:n] == full
        assert labels[:p] == [-100] * p  # the prompt, assistant header included: masked
        assert controls[labels[p]] == f"<{trace['mode']}>"  # the first supervised token: the mode's own
        assert labels[p:n] == full[p:]  # the whole turn through <|im_end|>
        assert all(x == -100 for x in labels[n:])
    assert [t["mode"] for t in traces] == ["think", "short"] * 6  # both modes were checked


def test_paired_sampler_keeps_pairs_adjacent_and_is_seeded_per_epoch():
    traces = [{"pair": f"q{i // 2}"} for i in range(10)] + [{"pair": None}, {}]
    groups = pair_groups(traces)
    assert groups[:2] == [[0, 1], [2, 3]] and groups[-2:] == [[10], [11]]
    sampler = PairedSampler(groups, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(12)) and len(sampler) == 12
    for i in range(0, 10, 2):  # a pair's rows are consecutive, long then short
        assert order.index(i + 1) == order.index(i) + 1
    assert list(sampler) == order  # same epoch, same order (a resumed run sees it again)
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_warm_up_writes_a_checkpoint_with_the_control_tokens(tmp_path, tiny_checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = pairs(tmp_path, limit=8)
    out = tmp_path / "warm"
    assert main(["train", "sft", "--data", str(data), "--format", "hybrid", "--model", str(tiny_checkpoint),
                 "--out", str(out), "--max-steps", "2", "--batch-size", "4", "--micro-batch-size", "2",
                 "--learning-rate", "1e-2", "--max-length", "256", "--logging-steps", "1"]) == 0  # fmt: skip
    tok = AutoTokenizer.from_pretrained(out)
    ids = [tok.encode(t, add_special_tokens=False) for t in HYBRID.added_tokens]
    assert all(len(i) == 1 for i in ids)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    assert not torch.equal(model.get_input_embeddings().weight[:-3], base.get_input_embeddings().weight)  # trained
    assert HYBRID.render_prompt(tok, "q").endswith("<|im_start|>assistant\n")  # no pre-filled mode
    # generate loads it with --format hybrid and records a mode per sample
    res = tmp_path / "r.jsonl"
    assert main(["generate", "--task", "arith-easy", "--limit", "2", "--model", str(out), "--format", "hybrid",
                 "--mode", "auto", "--budget", "6", "--max-answer-tokens", "3", "--out", str(res)]) == 0  # fmt: skip
    recs = [json.loads(line) for line in res.read_text().splitlines()]
    assert len(recs) == 2 and all(r["mode"] in ("think", "short", "none") and r["requested_mode"] == "auto"
                                  for r in recs)  # fmt: skip


def test_packing_says_pairs_do_not_stay_adjacent(tmp_path, tiny_checkpoint, capsys):
    data = pairs(tmp_path, limit=4)
    args = ["train", "sft", "--data", str(data), "--format", "hybrid", "--model", str(tiny_checkpoint), "--max-steps",
            "1", "--batch-size", "2", "--micro-batch-size", "2", "--max-length", "256"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "unpacked")]) == 0
    assert "do not stay adjacent" not in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "packed"), "--packing"]) == 0
    assert "the two rows of a pair do not stay adjacent" in capsys.readouterr().out
