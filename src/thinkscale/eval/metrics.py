"""Metrics over result records; eval imports no engine and no trainer.

- pass@k: unbiased estimator (Chen et al. 2021), 1 - prod_{i=n-c+1}^{n} (1 - k/i), averaged.
- cov@k: any of the first k samples correct (s1's agg64).
- maj@k: the most frequent answer among the first k, answers grouped by equivalence; a tie goes
  to the group seen first; samples with no answer do not vote.
- s1 scaling metrics over a sweep (per task): Control, Scaling, Performance.
- hybrid models (Thinkless): think share (samples that chose `<think>`), and accuracy and tokens
  per chosen mode.
- adaptive thinking: probes and probe tokens per sample, and how often thinking ended early. Probe
  tokens are compute: `avg_total_tokens` counts them (thinking + answer + probes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

EqualFn = Callable[[str, str], bool]


def pass_at_k(n: int, c: int, k: int) -> float:
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def group_answers(preds: Sequence[str | None], equal: EqualFn) -> list[int | None]:
    """Group index per prediction (None for no answer); groups numbered in order of first sight."""
    reps: list[str] = []
    groups: list[int | None] = []
    for p in preds:
        if p is None:
            groups.append(None)
            continue
        for g, rep in enumerate(reps):
            if p == rep or equal(rep, p):
                groups.append(g)
                break
        else:
            reps.append(p)
            groups.append(len(reps) - 1)
    return groups


def majority_correct(groups: Sequence[int | None], correct: Sequence[bool]) -> bool:
    """Is the majority group correct? Ties go to the group seen first."""
    counts: dict[int, int] = defaultdict(int)
    for g in groups:
        if g is not None:
            counts[g] += 1
    if not counts:
        return False
    best = max(counts.values())
    winner = min(g for g, c in counts.items() if c == best)
    return bool(correct[list(groups).index(winner)])


def ks_for(n: int) -> list[int]:
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if k <= n]
    return ks + ([n] if n not in ks else [])


def run_metrics(records: list[dict], equal: EqualFn) -> dict:
    """Metrics of one run (one task, budget, num_ignore)."""
    by_q: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_q[str(r["id"])].append(r)
    for rs in by_q.values():
        rs.sort(key=lambda r: r.get("sample", 0))
    n = min(len(rs) for rs in by_q.values())
    think = [int(r.get("thinking_tokens") or 0) for r in records]
    m = {
        "questions": len(by_q),
        "n": n,
        "samples": len(records),
        "accuracy": sum(bool(r.get("correct")) for r in records) / len(records),
        "avg_thinking_tokens": sum(think) / len(think),
        "avg_answer_tokens": sum(int(r.get("answer_tokens") or 0) for r in records) / len(records),
        "avg_total_tokens": sum(_tokens(r) for r in records) / len(records),
        "avg_probe_tokens": sum(int(r.get("probe_tokens") or 0) for r in records) / len(records),
        "min_thinking_tokens": min(think),
        "max_thinking_tokens": max(think),
        "avg_waits": sum(int(r.get("waits") or 0) for r in records) / len(records),
        "capped": sum(bool(r.get("capped")) for r in records),
        "over_context": sum(r.get("finish_reason") == "context" for r in records),
        "answer_truncated": sum(r.get("finish_reason") == "length" for r in records),
        "no_answer": sum(not _has_answer(r) for r in records),
        "no_thinking": sum(not (r.get("thinking") or "").strip() for r in records),
    }
    m["pass@k"], m["maj@k"], m["cov@k"] = {}, {}, {}
    for k in ks_for(n):
        p = c = v = 0.0
        for rs in by_q.values():
            corr = [bool(r.get("correct")) for r in rs[:n]]
            p += pass_at_k(n, sum(corr), k)
            first = rs[:k]
            c += any(bool(r.get("correct")) for r in first)
            groups = group_answers([r.get("pred") for r in first], equal)
            v += majority_correct(groups, [bool(r.get("correct")) for r in first])
        q = len(by_q)
        m["pass@k"][str(k)], m["cov@k"][str(k)], m["maj@k"][str(k)] = p / q, c / q, v / q
    m["accuracy_by_thinking_length"] = _accuracy_by_length(records)
    m.update(_grader_metrics(records))
    m.update(hybrid_metrics(records))
    if any("probes" in r for r in records):
        m["avg_probes"] = sum(int(r.get("probes") or 0) for r in records) / len(records)
        m["stopped_by"] = {k: sum(r.get("stopped_by") == k for r in records) for k in ("model", "cap", "adaptive")}
    return m


def _tokens(r: dict) -> int:
    """A sample's generated compute: thinking + answer + adaptive probes."""
    return sum(int(r.get(k) or 0) for k in ("thinking_tokens", "answer_tokens", "probe_tokens"))


def hybrid_metrics(records: list[dict]) -> dict:
    """A hybrid model's choice: the share of samples that thought, and per chosen mode (think,
    short, none: no control token) the samples, accuracy and average tokens (thinking + answer).
    Empty for records without a `mode`."""
    with_mode = [r for r in records if r.get("mode") is not None]
    if not with_mode:
        return {}
    by_mode = {}
    for mode in ("think", "short", "none"):
        rs = [r for r in with_mode if r["mode"] == mode]
        if rs:
            by_mode[mode] = {
                "samples": len(rs),
                "accuracy": sum(bool(r.get("correct")) for r in rs) / len(rs),
                "avg_thinking_tokens": sum(int(r.get("thinking_tokens") or 0) for r in rs) / len(rs),
                "avg_total_tokens": sum(_tokens(r) for r in rs) / len(rs),
            }
    return {"think_share": sum(r["mode"] == "think" for r in with_mode) / len(with_mode), "by_mode": by_mode}


def _grader_metrics(records: list[dict]) -> dict:
    """What a grader adds: exact match and token F1 for short answers (fs1), the chance level
    for multiple choice, and a judge's accuracy and its agreement with the rule-based verdict."""
    m: dict = {}
    if any(r.get("grader") == "qa" for r in records):
        m["em"] = sum(bool(r.get("correct")) for r in records) / len(records)
        m["f1"] = sum(float(r.get("f1") or 0.0) for r in records) / len(records)
    with_choices = [r for r in records if r.get("choices")]
    if with_choices:
        m["chance"] = sum(1 / len(r["choices"]) for r in with_choices) / len(with_choices)
    judged = [r for r in records if r.get("judge_correct") is not None]
    if judged:
        m["judged"] = len(judged)
        m["judge_accuracy"] = sum(r["judge_correct"] for r in judged) / len(judged)
        m["judge_agreement"] = sum(r["judge_correct"] == bool(r.get("correct")) for r in judged) / len(judged)
    return m


def _has_answer(r: dict) -> bool:
    """s1's check: an answer has a \\boxed or an `Answer:`; we also count any extracted pred."""
    a = r.get("answer") or ""
    return "\\boxed" in a or "answer:" in a.lower() or r.get("pred") is not None


def _accuracy_by_length(records: list[dict], bins: int = 4) -> list[dict]:
    """Accuracy of samples sorted by thinking length, in equal-count bins (s1's analysis)."""
    rs = sorted(records, key=lambda r: int(r.get("thinking_tokens") or 0))
    out = []
    for b in range(bins):
        part = rs[b * len(rs) // bins : (b + 1) * len(rs) // bins]
        if part:
            out.append({
                "min_tokens": int(part[0].get("thinking_tokens") or 0),
                "max_tokens": int(part[-1].get("thinking_tokens") or 0),
                "samples": len(part),
                "accuracy": sum(bool(r.get("correct")) for r in part) / len(part),
            })  # fmt: skip
    return out


def scaling_metrics(runs: list[dict], records_by_run: dict[tuple, list[dict]]) -> dict:
    """s1's Control / Scaling / Performance for one task's sweep.

    Control: share of samples with a requested budget whose thinking stayed within it.
    Scaling: mean slope over all pairs of runs b > a (by average thinking tokens) of
    (acc(b) - acc(a)) / (tokens(b) - tokens(a)), in accuracy points per 1,000 thinking tokens.
    Performance: the best accuracy of any run.
    """
    budgeted = [r for key, rs in records_by_run.items() for r in rs if key[1] is not None]
    control = (
        sum(int(r.get("thinking_tokens") or 0) <= int(r["budget"]) for r in budgeted)
        / len(budgeted)
        if budgeted
        else None
    )
    pts = sorted((run["avg_thinking_tokens"], run["accuracy"]) for run in runs)
    slopes = [
        (fb - fa) / (xb - xa) * 1000 * 100
        for i, (xa, fa) in enumerate(pts)
        for xb, fb in pts[i + 1 :]
        if xb > xa
    ]
    return {
        "control": control,
        "scaling": sum(slopes) / len(slopes) if slopes else None,
        "scaling_unit": "accuracy points per 1k thinking tokens",
        "performance": max(run["accuracy"] for run in runs) if runs else None,
    }
