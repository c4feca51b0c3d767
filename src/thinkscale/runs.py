"""Training run directories shared by `train sft` and `dot train`: a run marker holds the settings,
so `--resume` continues only the same run and nothing of another run is ever overwritten."""

from __future__ import annotations

import json
from pathlib import Path

from thinkscale import ThinkscaleError


def latest_checkpoint(out: Path) -> str | None:
    ckpts = [p for p in (out / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return str(max(ckpts, key=lambda p: int(p.name.split("-")[-1]))) if ckpts else None


def check_run_dir(out: Path, marker_name: str, settings: dict, resume: bool, kind: str) -> str | None:
    """A new or empty dir; with `resume`, one holding this same run (same `settings` in its marker,
    not finished). Returns the checkpoint to resume from; None: start fresh."""
    marker = out / marker_name
    if resume:
        if not marker.exists():
            raise ThinkscaleError(f"{out}: no {kind} run to resume (no {marker_name})")
        saved = json.loads(marker.read_text())["config"]
        diff = sorted(k for k in settings if saved.get(k) != settings[k])
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
