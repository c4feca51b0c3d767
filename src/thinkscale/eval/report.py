"""`thinkscale report`: scaling.png, parallel.png and report.html for a run directory."""

from __future__ import annotations

import base64
import html
import json
import os
from collections import defaultdict
from pathlib import Path

from thinkscale.eval.evaluate import evaluate, results_path
from thinkscale.infer.records import load_records, write_json_atomic


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)


def plot_scaling(metrics: dict, path: Path) -> None:
    """Accuracy vs average thinking tokens, one point per budget, one line per (task, num_ignore)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for task in sorted({r["task"] for r in metrics["runs"]}, key=str):
        runs = [r for r in metrics["runs"] if r["task"] == task]
        caps = sorted(
            (r for r in runs if r["num_ignore"] == 0), key=lambda r: r["avg_thinking_tokens"]
        )
        line = ax.plot([r["avg_thinking_tokens"] for r in caps], [100 * r["accuracy"] for r in caps], marker="o",
                       label=f"{task}: thinking cap")  # fmt: skip
        for r in caps:
            ax.annotate(f"cap {r['budget'] if r['budget'] is not None else '∞'}", (r["avg_thinking_tokens"],
                        100 * r["accuracy"]), textcoords="offset points", xytext=(4, 4), fontsize=7)  # fmt: skip
        # extend: a dashed path from each cap's point through its runs with 1, 2, ... Waits
        by_budget = defaultdict(list)
        for r in runs:
            by_budget[r["budget"]].append(r)
        for budget, group in by_budget.items():
            group.sort(key=lambda r: r["num_ignore"])
            if len(group) < 2 or all(r["num_ignore"] == 0 for r in group):
                continue
            ax.plot([r["avg_thinking_tokens"] for r in group], [100 * r["accuracy"] for r in group], marker="s",
                    linestyle="--", color=line[0].get_color(), alpha=0.6,
                    label=f"{task}: extend at cap {budget if budget is not None else '∞'}")  # fmt: skip
            for r in group:
                if r["num_ignore"]:
                    ax.annotate(f"+{r['num_ignore']} Wait", (r["avg_thinking_tokens"], 100 * r["accuracy"]),
                                textcoords="offset points", xytext=(4, -10), fontsize=7)  # fmt: skip
    ax.set_xlabel("average thinking tokens")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Sequential scaling: budget forcing (labels: thinking cap)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_steps(metrics: dict, path: Path) -> None:
    """DoT's test-time compute curve: accuracy vs denoising steps T (a run's `budget`), one line
    per task; a run without T (the autoregressive baseline) is a dashed level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for task in sorted({r["task"] for r in metrics["runs"]}, key=str):
        runs = sorted((r for r in metrics["runs"] if r["task"] == task and r["budget"] is not None),
                      key=lambda r: r["budget"])  # fmt: skip
        line = ax.plot([r["budget"] for r in runs], [100 * r["accuracy"] for r in runs], marker="o",
                       label=f"{task}: DoT")  # fmt: skip
        for r in runs:
            n = str(r["n"])
            if r["n"] > 1:
                ax.scatter([r["budget"]], [100 * r["maj@k"][n]], marker="x", color=line[0].get_color())
        for r in metrics["runs"]:
            if r["task"] == task and r["budget"] is None:
                ax.axhline(100 * r["accuracy"], linestyle="--", color=line[0].get_color(), alpha=0.6,
                           label=f"{task}: autoregressive")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("denoising steps T (forward passes per sample)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Diffusion of Thoughts: accuracy vs sampling steps (x: maj@n)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_parallel(metrics: dict, path: Path) -> None:
    """pass@k and maj@k vs k, for each task's run with the largest budget and no Wait."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for task in sorted({r["task"] for r in metrics["runs"]}, key=str):
        runs = [r for r in metrics["runs"] if r["task"] == task]
        for r in runs:
            ks = sorted(int(k) for k in r["pass@k"])
            if len(ks) < 2:
                continue
            tag = f"{task} cap {r['budget'] if r['budget'] is not None else '∞'}" + (
                f" +{r['num_ignore']}W" if r["num_ignore"] else ""
            )
            line = ax.plot(
                ks, [100 * r["pass@k"][str(k)] for k in ks], marker="o", label=f"pass@k {tag}"
            )
            ax.plot(ks, [100 * r["maj@k"][str(k)] for k in ks], marker="x", linestyle="--",
                    color=line[0].get_color(), label=f"maj@k {tag}")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per question)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Parallel scaling")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.text(0.5, 0.5, "n = 1: no parallel samples", ha="center", transform=ax.transAxes)
    _save(fig, path)
    plt.close(fig)


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>thinkscale report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}th{{background:#f3f3f3}}td.l{{text-align:left}}
img{{max-width:48%;margin:4px}}details{{border:1px solid #ddd;margin:4px 0;padding:4px}}pre{{white-space:pre-wrap;background:#fafafa;padding:6px}}
.ok{{color:#070}}.bad{{color:#a00}}</style></head><body>
<h1>thinkscale report</h1><p>{source}</p>
<h2>Runs</h2>{runs}<h2>s1 scaling metrics</h2>{tasks}
<h2>Plots</h2><img src="data:image/png;base64,{scaling}" alt="scaling"><img src="data:image/png;base64,{parallel}" alt="parallel">
<h2>Samples</h2><p>Filter: <input id="q" placeholder="id, budget=128, correct=false ..." size="40"></p><div id="samples">{samples}</div>
<script>document.getElementById('q').oninput=function(e){{var t=e.target.value.toLowerCase();
document.querySelectorAll('#samples details').forEach(function(d){{d.style.display=d.dataset.k.indexOf(t)>=0?'':'none';}});}};</script>
</body></html>"""


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f'<div style="overflow-x:auto"><table><tr>{head}</tr>{body}</table></div>'


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "-" if v is None else str(v)


def write_report(run_dir: str | Path, metrics: dict | None = None) -> dict:
    """Write scaling.png (steps.png for DoT), parallel.png, report.html (and metrics.json if
    missing) into run_dir."""
    src = results_path(run_dir)
    out_dir = src.parent
    records = load_records(src)
    if metrics is None:
        metrics = evaluate(records)
        write_json_atomic(out_dir / "metrics.json", metrics)
    # DoT records carry `steps`: their compute knob is T, not thinking tokens
    curve = "steps.png" if any(r.get("steps") for r in records) else "scaling.png"
    (plot_steps if curve == "steps.png" else plot_scaling)(metrics, out_dir / curve)
    plot_parallel(metrics, out_dir / "parallel.png")
    runs = []
    for r in metrics["runs"]:
        n = str(r["n"])
        runs.append({**r, "pass@n": r["pass@k"][n], "maj@n": r["maj@k"][n]})
    cols = ["task", "budget", "num_ignore", "questions", "n", "accuracy", "pass@n", "maj@n", "avg_thinking_tokens",
            "avg_answer_tokens", "min_thinking_tokens", "max_thinking_tokens", "capped", "avg_waits", "no_answer"]  # fmt: skip
    tasks = [{"task": t, **m} for t, m in metrics["tasks"].items()]
    samples = []
    for r in records[:2000]:
        key = html.escape(json.dumps({k: r.get(k) for k in ("id", "budget", "num_ignore", "sample", "correct")}).lower()
                          .replace('": ', "=").replace('"', ""))  # fmt: skip
        cls = "ok" if r.get("correct") else "bad"
        samples.append(
            f'<details data-k="{key}"><summary class="{cls}">{html.escape(str(r.get("id")))} · budget {r.get("budget")} · '
            f"ignore {r.get('num_ignore')} · sample {r.get('sample')} · pred {html.escape(str(r.get('pred')))} · "
            f"gold {html.escape(str(r.get('gold')))} · {'correct' if r.get('correct') else 'wrong'} · "
            f"{r.get('thinking_tokens')} thinking tokens</summary>"
            f"<b>Question</b><pre>{html.escape(str(r.get('question', '')))}</pre>"
            f"<b>Thinking</b><pre>{html.escape(str(r.get('thinking', '')))}</pre>"
            f"<b>Answer</b><pre>{html.escape(str(r.get('answer', '')))}</pre></details>"
        )
    page = _PAGE.format(
        source=html.escape(str(src)),
        runs=_table(runs, cols),
        tasks=_table(tasks, ["task", "control", "scaling", "scaling_unit", "performance"]),
        scaling=base64.b64encode((out_dir / curve).read_bytes()).decode(),
        parallel=base64.b64encode((out_dir / "parallel.png").read_bytes()).decode(),
        samples="\n".join(samples),
    )
    tmp = out_dir / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out_dir / "report.html")
    return metrics
