"""models.py: which dtype `auto` picks, from what the CPU offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkscale import models


@pytest.mark.parametrize("flags,expected", [
    ("fpu sse avx2 avx512f", "float32"),  # AVX-512 without bf16: emulated bf16
    ("fpu avx2 avx512_bf16", "bfloat16"),
    ("fpu avx2 amx_bf16 amx_tile", "bfloat16"),
    (None, "float32"),  # no /proc/cpuinfo (macOS)
])  # fmt: skip
def test_auto_dtype_follows_the_cpu(monkeypatch, flags, expected):
    real = Path.read_text

    def read_text(self, *a, **kw):
        if str(self) == "/proc/cpuinfo":
            if flags is None:
                raise OSError("no such file")
            return f"processor\t: 0\nflags\t\t: {flags}\n"
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert models.resolve_dtype("auto") == expected
    assert models.resolve_dtype("auto", device="cuda") == "bfloat16"
    assert models.resolve_dtype("float32") == "float32" and models.resolve_dtype("bfloat16") == "bfloat16"
