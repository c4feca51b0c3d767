"""Run by tests/train/test_merge.py under torchrun: FSDP2 on CPU (gloo) over a tiny Llama,
one optimizer step, then a sharded (DCP) checkpoint and each rank's view of the full weights."""

import os
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM


def main(base: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    shard = next(model.model.layers[0].parameters())
    assert shard.to_local().numel() * world == shard.numel(), "parameters are not sharded"
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = torch.randint(3, 50, (2, 12), generator=torch.Generator().manual_seed(rank))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    state = model.state_dict()
    dcp.save(state, checkpoint_id=f"{out}/pytorch_model_fsdp_0")
    full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in state.items()}
    if rank == 0:
        torch.save(full, f"{out}/expected.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    # as thinkscale.train's entry point does: skip the C++ teardown that sometimes aborts a
    # finished gloo process (SIGABRT, "terminate called without an active exception")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
