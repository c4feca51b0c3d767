"""Training run directories shared by `train sft` and `dot train`: a run marker holds the settings,
so `--resume` continues only the same run and nothing of another run is ever overwritten."""

from __future__ import annotations

import json
from pathlib import Path

from thinkscale import ThinkscaleError


def latest_checkpoint(out: Path) -> str | None:
    """The Trainer's newest `checkpoint-N` under out/checkpoints (transformers' own rule)."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def save_final(trainer, tokenizer, out: Path, main_process: bool = True, extra=None) -> None:
    """The finished model and its trainer_state.json (the log) into `out`: saved to a temp dir, then
    moved in file by file with config.json last, so its presence means the model is complete.
    `extra(tmp)` adds files (DoT's dot.json)."""
    import os
    import shutil

    tmp = out / ".final.tmp"
    if main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # every process calls it; the main process writes
    if not main_process:
        return
    tokenizer.save_pretrained(str(tmp))
    trainer.state.save_to_json(str(tmp / "trainer_state.json"))  # the log history, kept when checkpoints are not
    if extra is not None:
        extra(tmp)
    names = sorted(p.name for p in tmp.iterdir())
    for name in [n for n in names if n != "config.json"] + ["config.json"]:
        os.replace(tmp / name, out / name)
    tmp.rmdir()


# settings a resumed run may change: they decide what is kept on disk, not what is trained (a
# run from before a setting existed resumes too)
FREE_ON_RESUME = frozenset({"save_total_limit"})


def check_run_dir(out: Path, marker_name: str, settings: dict, resume: bool, kind: str) -> str | None:
    """A new or empty dir; with `resume`, one holding this same run (same `settings` in its marker,
    not finished). Returns the checkpoint to resume from; None: start fresh."""
    marker = out / marker_name
    if resume:
        if not marker.exists():
            raise ThinkscaleError(f"{out}: no {kind} run to resume (no {marker_name})")
        saved = json.loads(marker.read_text())["config"]
        diff = sorted(k for k in settings if saved.get(k) != settings[k] and k not in FREE_ON_RESUME)
        if diff:
            raise ThinkscaleError(f"{out}: holds a run with different settings ({', '.join(diff)}); cannot resume it")
        if (out / "config.json").exists():
            raise ThinkscaleError(f"{out}: this run already finished")
        return latest_checkpoint(out)
    if not out.exists() or not any(out.iterdir()):
        return None
    if marker.exists():
        raise ThinkscaleError(f"{out}: holds a {kind} run; pass --resume to continue it, or choose another --out")
    raise ThinkscaleError(f"{out}: not empty and not a {kind} run; choose another --out")
