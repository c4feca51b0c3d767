"""Coverage curves, refine's evaluation: with n samples per question at temperature 1,

- the unbiased pass@k (Chen et al.) for every k <= n, averaged over questions, and
- disjoint-chunk coverage: the n samples (in sample order) cut into n // k chunks of k; a
  question is covered by a chunk if any of its samples there is right; the mean over chunks of
  the covered share, with its standard error (refine reports this, not the estimator).

Both on records from anywhere (one file per model); metrics.json holds one entry per model and
coverage.png draws one line per model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.eval.metrics import ks_for, pass_at_k
from thinkscale.records import load_records, write_json_atomic


def correct_by_question(records: list[dict]) -> dict[str, list[bool]]:
    """Each question's samples' verdicts in sample order (ungraded records are an error)."""
    by_q: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for r in records:
        if r.get("correct") is None:
            raise ThinkscaleError(f"{r.get('task')}/{r['id']} sample {r.get('sample', 0)}: not graded "
                                  "(no gold answer): coverage needs graded samples")  # fmt: skip
        by_q[str(r["id"])].append((int(r.get("sample", 0)), bool(r["correct"])))
    return {q: [c for _, c in sorted(v)] for q, v in by_q.items()}


def chunk_coverage(correct: dict[str, list[bool]], k: int, n: int) -> dict:
    """{mean, se, chunks}: the covered share per disjoint chunk of k of the first n samples."""
    chunks = n // k
    if chunks < 1:
        raise ValueError(f"k={k} > n={n}")
    shares = [
        sum(any(c[j * k : (j + 1) * k]) for c in correct.values()) / len(correct) for j in range(chunks)
    ]
    mean = sum(shares) / chunks
    se = math.sqrt(sum((s - mean) ** 2 for s in shares) / (chunks - 1) / chunks) if chunks > 1 else 0.0
    return {"mean": mean, "se": se, "chunks": chunks}


def coverage_metrics(records: list[dict], ks: list[int] | None = None) -> dict:
    """pass@k for every k <= n, chunk coverage at `ks` (default: powers of two and n)."""
    if not records:
        raise ThinkscaleError("no records")
    correct = correct_by_question(records)
    n = min(len(c) for c in correct.values())
    ks = sorted({k for k in (ks or ks_for(n)) if k <= n})
    if not ks:
        raise ThinkscaleError(f"every --ks value is above n = {n} samples per question")
    return {
        "questions": len(correct),
        "n": n,
        "pass_at_1": sum(pass_at_k(n, sum(c[:n]), 1) for c in correct.values()) / len(correct),
        "pass@k": {str(k): sum(pass_at_k(n, sum(c[:n]), k) for c in correct.values()) / len(correct)
                   for k in range(1, n + 1)},  # fmt: skip
        "chunk_coverage": {str(k): chunk_coverage(correct, k, n) for k in ks},
    }


def plot_coverage(metrics: dict[str, dict], path: str | Path) -> None:
    """pass@k vs k (log2 axis), one line per model; chunk coverage as points with error bars."""
    from thinkscale.plots import figure

    with figure(path) as (fig, ax):
        for i, (label, m) in enumerate(metrics.items()):
            color = f"C{i}"
            ks = sorted(int(k) for k in m["pass@k"])
            ax.plot(ks, [m["pass@k"][str(k)] for k in ks], color=color, label=f"{label}: pass@k")
            cks = sorted(int(k) for k in m["chunk_coverage"])
            cc = [m["chunk_coverage"][str(k)] for k in cks]
            ax.errorbar(cks, [c["mean"] for c in cc], yerr=[c["se"] for c in cc], fmt="o", color=color,
                        ms=3, capsize=2, label=f"{label}: chunk coverage ± s.e.")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (samples per question)")
        ax.set_ylabel("share of questions solved")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"coverage ({next(iter(metrics.values()))['questions']} questions)")


def coverage_table(metrics: dict[str, dict], ks: list[int] | None = None) -> str:
    """A plain-text table: one row per model, pass@k at `ks` (default: the chunk ks)."""
    first = next(iter(metrics.values()))
    ks = ks or sorted(int(k) for k in first["chunk_coverage"])
    head = f"{'model':<28}" + "".join(f"{'pass@' + str(k):>10}" for k in ks)
    rows = [head]
    for label, m in metrics.items():
        rows.append(f"{label:<28}" + "".join(
            f"{m['pass@k'][str(k)]:>10.3f}" if str(k) in m["pass@k"] else f"{'-':>10}" for k in ks))  # fmt: skip
    return "\n".join(rows)


def write_coverage(runs: dict[str, str | Path], out: str | Path, ks: list[int] | None = None) -> dict:
    """metrics.json ({label: coverage metrics}) and coverage.png in `out` for each labelled
    results file."""
    metrics = {label: coverage_metrics(load_records(path), ks) for label, path in runs.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    plot_coverage(metrics, out / "coverage.png")
    return metrics
