"""SFT with TRL on a tiny random model: labels, a real smoke run, bad input."""

from __future__ import annotations

import json

import pytest

from thinkscale import ThinkscaleError
from thinkscale.cli import main
from thinkscale.data.arith import ArithConfig, arith_traces
from thinkscale.train.sft import SFTRunConfig, prepare, to_conversations, train_sft


def test_labels_are_minus_100_exactly_on_the_prompt(tiny_model, tokenizer, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = to_conversations(arith_traces(ArithConfig(count=6, seed=3)), "s1")
    args = SFTConfig(output_dir=str(tmp_path), max_length=512, completion_only_loss=True, bf16=False,
                     report_to=[], use_cpu=True, gradient_checkpointing=False)  # fmt: skip
    trainer = SFTTrainer(
        model=tiny_model.float(),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    examples = [trainer.train_dataset[i] for i in range(len(rows))]
    batch = trainer.data_collator(examples)
    for i, row in enumerate(rows):
        prompt = tokenizer.apply_chat_template(
            row["prompt"], tokenize=True, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
        prompt = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
        full = full["input_ids"] if hasattr(full, "keys") else full
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        n, p = len(full), len(prompt)
        assert ids[:n] == full
        assert labels[:p] == [-100] * p  # every prompt token masked
        assert labels[p:n] == full[p:]  # every completion token trained, through <|im_end|>
        assert all(x == -100 for x in labels[n:])  # padding masked
        assert tokenizer.decode(full[p:]).startswith("<|im_start|>think\n")
        assert "<|im_end|>" in tokenizer.decode(full[p:])
    tiny_model.double()


def write_traces(path, n=24):
    path.write_text(
        "".join(
            json.dumps(r) + "\n" for r in arith_traces(ArithConfig(count=n, max_digits=2, seed=0))
        )
    )
    return path


def test_smoke_sft_writes_a_checkpoint_that_generate_loads(tmp_path, tiny_checkpoint):
    data = write_traces(tmp_path / "traces.jsonl")
    out = tmp_path / "sft"
    cfg = SFTRunConfig(data=str(data), out=str(out), model=str(tiny_checkpoint), max_steps=3, batch_size=4,
                       micro_batch_size=2, learning_rate=1e-3, max_length=256, save_steps=1, logging_steps=1)  # fmt: skip
    train_sft(cfg)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "thinkscale_sft.json"):
        assert (out / name).exists(), name
    # a checkpoint every step, the newest --save-total-limit 2 kept
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]  # the log beside the model
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3]
    q = tmp_path / "q.jsonl"
    q.write_text('{"question": "What is 2 + 3?", "answer": "5"}\n')
    res = tmp_path / "res.jsonl"
    assert main(["generate", "--data", str(q), "--model", str(out), "--budget", "8", "--max-answer-tokens", "4",
                 "--out", str(res)]) == 0  # fmt: skip
    rec = json.loads(res.read_text())
    assert rec["thinking_tokens"] <= 8
    # the same output dir holds a run now: refused, nothing overwritten
    with pytest.raises(ThinkscaleError, match="SFT run; pass --resume"):
        train_sft(cfg)


def test_save_total_limit_0_writes_no_checkpoint(tmp_path, tiny_checkpoint):
    out = tmp_path / "sft"
    train_sft(SFTRunConfig(data=str(write_traces(tmp_path / "traces.jsonl")), out=str(out), model=str(tiny_checkpoint),
                           max_steps=2, batch_size=2, micro_batch_size=2, max_length=256, save_steps=1,
                           save_total_limit=0))  # fmt: skip
    assert (out / "config.json").exists() and (out / "trainer_state.json").exists()
    assert not list(out.glob("checkpoints/checkpoint-*"))


def test_bad_traces_and_lengths(tmp_path, tokenizer):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"question": "q", "thinking": "t", "answer": "1"}\n{"question": "q", "answer": "1"}\n'
    )
    with pytest.raises(ThinkscaleError, match=r"bad.jsonl:2: missing field 'thinking'"):
        prepare(SFTRunConfig(data=str(bad)), tokenizer)
    bad.write_text('{"question": "q", "thinking": "  ", "answer": "1"}\n')
    with pytest.raises(ThinkscaleError, match=r"bad.jsonl:1: empty field 'thinking'"):
        prepare(SFTRunConfig(data=str(bad)), tokenizer)
    data = write_traces(tmp_path / "traces.jsonl")
    with pytest.raises(ThinkscaleError, match="shorter than every prompt"):
        prepare(SFTRunConfig(data=str(data), max_length=10), tokenizer)
    with pytest.raises(ThinkscaleError, match="--allow-truncation"):
        prepare(SFTRunConfig(data=str(data), max_length=60), tokenizer)
    rows, report = prepare(
        SFTRunConfig(data=str(data), max_length=60, allow_truncation=True), tokenizer
    )
    assert len(rows) == 24 and report["over_max_length"] > 0
    # --fsdp outside a launcher: one clear error before anything is written
    with pytest.raises(ThinkscaleError, match="--fsdp shards across launched processes"):
        train_sft(SFTRunConfig(data=str(data), out=str(tmp_path / "fsdp"), fsdp=True))
    assert not (tmp_path / "fsdp").exists()


def test_cli_refuses_a_foreign_output_dir(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something.txt").write_text("x")
    assert main(["train", "sft", "--out", str(out), "--max-steps", "1"]) != 0
    assert "not empty" in capsys.readouterr().err


def test_sigkill_then_resume_reaches_the_same_weights(tmp_path, tiny_checkpoint):
    """Kill training mid-way with SIGKILL, resume: the final weights equal an uninterrupted run's
    (fp32 on CPU is deterministic here; tolerance 1e-6 absolute)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    data = write_traces(tmp_path / "traces.jsonl", n=48)
    flags = ["--data", str(data), "--model", str(tiny_checkpoint), "--max-steps", "12", "--batch-size", "4",
             "--micro-batch-size", "2", "--learning-rate", "1e-3", "--max-length", "256", "--save-steps", "3",
             "--logging-steps", "1"]  # fmt: skip
    cmd = [sys.executable, "-m", "thinkscale.cli", "train", "sft", *flags]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(
        [*cmd, "--out", str(tmp_path / "straight")], env=env, check=True, capture_output=True
    )

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [*cmd, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and not (out / "checkpoints" / "checkpoint-6" / "trainer_state.json").exists()
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "config.json").exists()  # it really died before finishing
    done = subprocess.run(
        [*cmd, "--out", str(out), "--resume"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stdout
    a, b = (
        load_file(tmp_path / "straight" / "model.safetensors"),
        load_file(out / "model.safetensors"),
    )
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() <= 1e-6, k
    # resuming a finished run, or with other settings, is refused
    again = subprocess.run(
        [*cmd, "--out", str(out), "--resume"], env=env, capture_output=True, text=True
    )
    assert again.returncode != 0 and "already finished" in again.stderr


def test_two_processes_data_parallel(tmp_path, tiny_checkpoint, free_port):
    """`torchrun --nproc_per_node 2 -m thinkscale.train sft` on CPU (gloo, data parallel): one
    process decides and writes; the result is one normal checkpoint."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = write_traces(tmp_path / "traces.jsonl", n=32)
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "thinkscale.train", "sft", "--data", str(data), "--model",
           str(tiny_checkpoint), "--max-steps", "2", "--batch-size", "4", "--micro-batch-size", "2", "--max-length",
           "256", "--save-steps", "2", "--out", str(out)]  # fmt: skip
    done = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    ranks = sorted(p.name for p in (out / "checkpoints" / "checkpoint-2").glob("rng_state_*.pth"))
    assert ranks == ["rng_state_0.pth", "rng_state_1.pth"]  # really two processes
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)


def _max_weight_diff(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)


def test_fsdp_two_processes_shard_merge_resume_and_match_one_process(tmp_path, tiny_checkpoint, free_port):
    """`accelerate launch --config_file configs/accelerate/fsdp_cpu_2.yaml -m thinkscale.train sft`:
    FSDP2 across 2 CPU processes (gloo) with sharded checkpoints. The sharded checkpoint merges into
    the same weights as the final model; a run killed after step 1 and resumed ends identical; and
    the result matches one process on the same effective batch (max weight difference <= 1e-6 while
    training moved the weights by >= 1e-4; loss on the traces within 1e-5)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_traces(tmp_path / "traces.jsonl", n=32)
    config = Path(__file__).parents[2] / "configs" / "accelerate" / "fsdp_cpu_2.yaml"
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    flags = ["--data", str(data), "--model", str(tiny_checkpoint), "--max-steps", "2", "--batch-size", "8",
             "--micro-batch-size", "2", "--max-length", "256", "--save-steps", "1", "--learning-rate", "1e-3"]  # fmt: skip

    def launch(out, *extra):
        cmd = [str(accelerate), "launch", "--config_file", str(config), "--main_process_port", str(free_port()), "-m", "thinkscale.train", "sft",
               *flags, "--out", str(out), *extra]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    out = tmp_path / "fsdp"
    launch(out)
    shards = out / "checkpoints" / "checkpoint-2" / "pytorch_model_fsdp_0"
    assert sorted(p.name for p in shards.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]  # sharded
    fsdp = AutoModelForCausalLM.from_pretrained(out)  # the final model is one normal checkpoint

    merged = main(["train", "merge", str(shards), "--base", str(tiny_checkpoint), "--out", str(tmp_path / "merged")])
    assert merged == 0
    assert _max_weight_diff(fsdp, AutoModelForCausalLM.from_pretrained(tmp_path / "merged")) == 0.0

    # crash after step 1: drop step 2 and the final model, resume from the sharded checkpoint-1
    shutil.rmtree(out / "checkpoints" / "checkpoint-2")
    for name in ("config.json", "model.safetensors"):
        (out / name).unlink()
    resumed = launch(out, "--resume")
    assert "resuming from" in resumed.stdout and "checkpoint-1" in resumed.stdout
    assert _max_weight_diff(fsdp, AutoModelForCausalLM.from_pretrained(out)) <= 1e-6

    single_out = tmp_path / "single"
    train_sft(SFTRunConfig(data=str(data), out=str(single_out), model=str(tiny_checkpoint), max_steps=2,
                           batch_size=8, micro_batch_size=2, max_length=256, save_steps=1, learning_rate=1e-3))  # fmt: skip
    single = AutoModelForCausalLM.from_pretrained(single_out)
    start = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    assert _max_weight_diff(single, start) >= 1e-4  # training really moved the weights
    assert _max_weight_diff(fsdp, single) <= 1e-6

    # torchrun with --fsdp and gathered (FULL_STATE_DICT) checkpoints: each checkpoint loads as is
    full_out = tmp_path / "full"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "thinkscale.train", "sft",
           *flags, "--out", str(full_out), "--fsdp", "--fsdp-state-dict", "FULL_STATE_DICT"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _max_weight_diff(fsdp, AutoModelForCausalLM.from_pretrained(full_out / "checkpoints" / "checkpoint-2")) <= 1e-6
    assert _max_weight_diff(fsdp, AutoModelForCausalLM.from_pretrained(full_out)) <= 1e-6

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    batch = tok([line for line in data.read_text().splitlines()[:4]], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        losses = [m(**batch, labels=labels).loss.item() for m in (fsdp, single)]
    assert abs(losses[0] - losses[1]) <= 1e-5
