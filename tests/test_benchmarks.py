"""Benchmarks cannot rot: each one's --quick run finishes and prints only JSON with --json.
(They measure speed; these runs only check that they still work end to end.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize("name,extra,keys", [
    ("bench_budget_forcing.py", [], ["p1", "p2", "p3", "p3_paired", "p9", "p12"]),
    ("bench_budget_forcing.py", ["--p3-only"], ["p3", "p3_paired", "p3_detail"]),
    ("bench_attention.py", [], ["speedup_batch16_fp32", "speedup_batch1_fp32", "speedup_batch16_fp32_detail"]),
    ("bench_compile.py", [], ["cold_ratio", "restart_ratio", "same_tokens", "stock", "thinkscale"]),
    ("bench_serve_warm_up.py", [], ["ratio", "eager", "ready"]),
    ("bench_decontaminate.py", [], ["p6_seconds", "baseline_dropped", "dropped"]),
    ("bench_sft.py", [], ["p4"]),
    ("bench_grpo.py", [], ["completions_per_s", "tokens_per_s", "generate_share"]),
    ("bench_serve.py", [], ["p11", "latency_s", "staggered"]),
    ("bench_dot.py", ["--out", "{tmp}/dot"], ["accuracy_4x4", "train_seconds"]),
    ("bench_refine.py", ["--out", "{tmp}/refine"], ["objectives"]),
])  # fmt: skip
def test_quick_benchmark_prints_json(tmp_path, name, extra, keys):
    cmd = [sys.executable, str(BENCH / name), "--quick", "--json", *(e.format(tmp=tmp_path) for e in extra)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=tmp_path)  # a hang, not a slow CPU
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)  # stdout is one JSON document, nothing else
    for key in keys:
        assert key in result, (key, sorted(result))
    if "--p3-only" in extra:
        assert "p1" not in result and "p9" not in result
    if name == "bench_compile.py":  # the baseline restarts its analysis, thinkscale's compile does not
        assert result["stock"]["restarts"] > 0 and result["thinkscale"]["restarts"] == 0
        assert result["same_tokens"]
    if name == "bench_serve_warm_up.py":  # both settings answered requests during the warm-up
        assert result["eager"]["requests"] > 0 and result["ready"]["requests"] > 0
        assert all(result[s]["warm_up_s"] > 0 for s in ("eager", "ready"))  # the engine's own figure


@pytest.mark.vllm
def test_vllm_benchmark_json_is_pure(tmp_path):
    """`--engine vllm --json`: vLLM logs INFO lines to stdout; they must not precede the JSON."""
    pytest.importorskip("vllm")
    cmd = [sys.executable, str(BENCH / "bench_budget_forcing.py"), "--engine", "vllm", "--quick", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=tmp_path)  # a hang, not a slow CPU
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert {"p1", "p1_matched_lengths", "p2", "hf_vs_vllm", "p10"} <= set(result)
