"""One HF checkpoint from FSDP sharded weights (fs1's recipe, done fully): accelerate's
`merge_fsdp_weights` gathers the torch.distributed.checkpoint shards, the weights are loaded into
the base model's architecture and saved as safetensors, and the tokenizer and chat template are
copied too (fs1's merge forgot them, so its merged checkpoints could not be prompted as trained)."""

from __future__ import annotations

import shutil
from pathlib import Path

from thinkscale import ThinkscaleError


def merge_shards(checkpoint_dir: str | Path, base: str, out: str | Path) -> Path:
    """`checkpoint_dir`: a DCP directory of a SHARDED_STATE_DICT (e.g. `pytorch_model_fsdp_0`);
    `base`: the model that was trained (its config, tokenizer and chat template)."""
    from accelerate.utils import merge_fsdp_weights
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from thinkscale.models import resolve_model_path

    checkpoint_dir, out = Path(checkpoint_dir), Path(out)
    if not (checkpoint_dir / ".metadata").exists():
        hint = (
            [p.name for p in checkpoint_dir.glob("pytorch_model_fsdp_*")]
            if checkpoint_dir.is_dir()
            else []
        )
        raise ThinkscaleError(
            f"{checkpoint_dir}: not a sharded (torch.distributed.checkpoint) directory"
            + (f"; try {checkpoint_dir / hint[0]}" if hint else "")
        )
    base_path = str(resolve_model_path(base))
    work = out.with_name(f".{out.name}.merging")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    merge_fsdp_weights(str(checkpoint_dir), str(work / "weights"), safe_serialization=True)
    AutoConfig.from_pretrained(base_path).save_pretrained(work / "weights")
    model = AutoModelForCausalLM.from_pretrained(work / "weights")
    model.save_pretrained(work / "model", safe_serialization=True)
    AutoTokenizer.from_pretrained(base_path).save_pretrained(work / "model")
    if out.exists():
        shutil.rmtree(out)
    (work / "model").rename(out)
    shutil.rmtree(work)
    return out
