"""The compute-matched frontier: accuracy vs generated tokens per question, three ways to spend them.

- sequential: one sample per question at each thinking cap (a run's mean accuracy);
- parallel: k samples at a cap, majority vote (maj@k), costing k times a sample's tokens;
- adaptive: one sample that stops thinking when its probes settle (probe tokens included).
Cost is the average generated tokens per question: thinking + answer + probes. A point is on the
Pareto frontier when no other point of its task is at least as accurate for at most as many
tokens (and better in one). Each adaptive point is also matched with the cheapest sequential
point that is at least as accurate: the saving the adaptive rule buys at equal accuracy.
Works on `evaluate`'s runs (the metrics of records from anywhere).
"""

from __future__ import annotations

from thinkscale.records import MODE_KEY


def _cap(budget) -> str:
    return str(budget) if budget is not None else "none"


def points(runs: list[dict]) -> list[dict]:
    """Every (kind, run, k) point of every task (runs at several temperatures: T in the label)."""
    out = []
    temperatures = len({r.get("temperature") for r in runs}) > 1
    for r in runs:
        tag = f"cap {_cap(r['budget'])}" + (f" +{r['num_ignore']} Wait" if r["num_ignore"] else "")
        tag += f" {r[MODE_KEY]}" if r.get(MODE_KEY) else ""
        tag += f" T={r.get('temperature') or 0:g}" if temperatures else ""
        base = {"task": r["task"], "budget": r["budget"], "num_ignore": r["num_ignore"],
                "temperature": r.get("temperature")}  # fmt: skip
        if "adaptive" in r:
            out.append({**base, "kind": "adaptive", "label": f"{tag} {r['adaptive']}", "k": 1,
                        "accuracy": r["accuracy"], "tokens": r["avg_total_tokens"]})  # fmt: skip
            continue
        out.append({**base, "kind": "sequential", "label": tag, "k": 1, "accuracy": r["accuracy"],
                    "tokens": r["avg_total_tokens"]})  # fmt: skip
        for k, acc in r["maj@k"].items():
            if int(k) > 1:
                out.append({**base, "kind": "parallel", "label": f"{tag} maj@{k}", "k": int(k), "accuracy": acc,
                            "tokens": int(k) * r["avg_total_tokens"]})  # fmt: skip
    return out


def pareto(pts: list[dict]) -> list[dict]:
    """The points no other point dominates (as accurate or more for as few tokens or fewer,
    strictly better in one), cheapest first."""
    keep = [p for p in pts if not any(_dominates(q, p) for q in pts)]
    return sorted(keep, key=lambda p: (p["tokens"], -p["accuracy"]))


def _dominates(q: dict, p: dict) -> bool:
    return (q["tokens"] <= p["tokens"] and q["accuracy"] >= p["accuracy"]
            and (q["tokens"] < p["tokens"] or q["accuracy"] > p["accuracy"]))  # fmt: skip


def matched(adaptive: dict, sequential: list[dict]) -> dict | None:
    """The cheapest sequential point at least as accurate as `adaptive`, and the token ratio."""
    good = [s for s in sequential if s["accuracy"] >= adaptive["accuracy"]]
    if not good:
        return None
    best = min(good, key=lambda s: s["tokens"])
    ratio = adaptive["tokens"] / best["tokens"] if best["tokens"] else None
    return {"label": best["label"], "budget": best["budget"], "accuracy": best["accuracy"],
            "tokens": best["tokens"], "token_ratio": ratio}  # fmt: skip


def frontier(runs: list[dict]) -> dict:
    """Per task: every point (with `pareto` marked, adaptive ones with `matched`), cheapest first."""
    out = {}
    for task in sorted({r["task"] for r in runs}, key=str):
        pts = points([r for r in runs if r["task"] == task])
        front = {id(p) for p in pareto(pts)}
        seq = [p for p in pts if p["kind"] == "sequential"]
        for p in pts:
            p["pareto"] = id(p) in front
            if p["kind"] == "adaptive":
                p["matched"] = matched(p, seq)
        out[str(task)] = sorted(pts, key=lambda p: (p["tokens"], -p["accuracy"]))
    return out


def frontier_table(front: dict) -> str:
    """Plain text: one line per point, the frontier's points starred."""
    lines = [f"{'task':<10} {'kind':<10} {'tokens':>8} {'acc':>6}  point"]
    for task, pts in front.items():
        for p in pts:
            line = f"{task:<10} {p['kind']:<10} {p['tokens']:>8.1f} {100 * p['accuracy']:>5.1f}% {'*' if p['pareto'] else ' '}{p['label']}"
            m = p.get("matched")
            if m and m["token_ratio"] is not None:
                line += f"  (= {m['label']} at {100 * m['token_ratio']:.0f}% of its tokens)"
            elif p["kind"] == "adaptive":
                line += "  (no cap reaches its accuracy)"
            lines.append(line)
    return "\n".join(lines)
