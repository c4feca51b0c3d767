"""A 2-process FSDP run writes real shards; `thinkscale train merge` turns them into one HF
checkpoint with the trained weights, the tokenizer and the chat template."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from thinkscale.cli import main


def test_fsdp_shards_merge_into_one_checkpoint(tmp_path, tiny_checkpoint, free_port):
    worker = Path(__file__).with_name("fsdp_worker.py")
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()), str(worker), str(tiny_checkpoint), str(tmp_path)],
                   check=True, env=env, timeout=300)  # fmt: skip
    shards = sorted(p.name for p in (tmp_path / "pytorch_model_fsdp_0").glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]  # one shard file per rank

    out = tmp_path / "merged"
    assert main(["train", "merge", str(tmp_path / "pytorch_model_fsdp_0"), "--base",
                 str(tiny_checkpoint), "--out", str(out)]) == 0  # fmt: skip
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).state_dict()
    expected = torch.load(tmp_path / "expected.pt")
    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32).state_dict()
    for name, tensor in expected.items():
        assert torch.equal(merged[name], tensor), name
    assert any(not torch.equal(base[k], expected[k]) for k in expected)  # the step changed weights
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and (out / "model.safetensors").exists()
    assert not list(tmp_path.glob(".merged*"))  # no work dir left behind


def test_merge_refuses_a_directory_without_shards(tmp_path, capsys):
    (tmp_path / "pytorch_model_fsdp_0").mkdir()
    assert main(["train", "merge", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "not a sharded" in err and "pytorch_model_fsdp_0" in err
