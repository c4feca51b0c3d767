"""End to end on the real embedded model (SmolLM2-135M): minutes on 2 cores, so marked slow."""

from __future__ import annotations

import json

import pytest

from thinkscale.cli import main


@pytest.mark.slow
def test_demo_quick_on_the_embedded_model(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "control" in printed and "performance" in printed
    for name in ("results.jsonl", "metrics.json", "scaling.png", "parallel.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "model" / "model.safetensors").exists()  # the fine-tuned checkpoint
    metrics = json.loads((out / "metrics.json").read_text())
    runs = {(r["task"], r["budget"], r["num_ignore"]): r for r in metrics["runs"]}
    assert set(runs) == {
        ("arith", 8, 0),
        ("arith", 64, 0),
        ("gsm8k", 16, 0),
        ("gsm8k", 64, 0),
        ("gsm8k", 64, 1),
    }
    assert set(metrics["tasks"]) == {"arith", "gsm8k"}
    g16, g64 = runs[("gsm8k", 16, 0)], runs[("gsm8k", 64, 0)]
    assert g16["max_thinking_tokens"] <= 16 and g64["max_thinking_tokens"] <= 64
    assert runs[("arith", 8, 0)]["max_thinking_tokens"] <= 8
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 12 * 2 + 4 * 2 * 3
    assert all(
        r["pred"] is not None for r in records if r["capped"]
    )  # the cap always yields an answer
    # re-running reuses the model and resumes: nothing new is generated, nothing duplicated
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == len(records)
