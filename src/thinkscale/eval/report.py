"""`thinkscale report`: scaling.png, parallel.png (frontier.png, hybrid.png where they apply) and
report.html for a run directory; `thinkscale frontier`: the same over several results files."""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.eval.evaluate import evaluate, results_path, scaled_runs
from thinkscale.plots import annotate_points, figure
from thinkscale.records import load_records, write_json_atomic, write_text_atomic

MAX_SAMPLES = 2000  # shown in the HTML viewer


def _cap(budget) -> str:
    return str(budget) if budget is not None else "∞"


def plot_scaling(metrics: dict, path: Path) -> None:
    """Accuracy vs average thinking tokens, one point per budget, one line per (task, num_ignore)."""
    with figure(path) as (fig, ax):
        labels = []
        for task in sorted({r["task"] for r in metrics["runs"]}, key=str):
            runs = scaled_runs([r for r in metrics["runs"] if r["task"] == task])
            caps = sorted(
                (r for r in runs if r["num_ignore"] == 0), key=lambda r: r["avg_thinking_tokens"]
            )
            line = ax.plot([r["avg_thinking_tokens"] for r in caps], [100 * r["accuracy"] for r in caps], marker="o",
                           label=f"{task}: thinking cap")  # fmt: skip
            labels += [(r["avg_thinking_tokens"], 100 * r["accuracy"], f"cap {_cap(r['budget'])}") for r in caps]
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
                        label=f"{task}: extend at cap {_cap(budget)}")  # fmt: skip
                labels += [(r["avg_thinking_tokens"], 100 * r["accuracy"], f"+{r['num_ignore']} Wait")
                           for r in group if r["num_ignore"]]  # fmt: skip
        ax.set_xlabel("average thinking tokens")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("Sequential scaling: budget forcing (labels: thinking cap)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        annotate_points(ax, labels)


def plot_steps(metrics: dict, path: Path) -> None:
    """DoT's test-time compute curve: accuracy vs denoising steps T (a run's `budget`), one line
    per task; a run without T (the autoregressive baseline) is a dashed level."""
    with figure(path) as (fig, ax):
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


MODE_MARKERS = {"auto": "*", "think": "o", "short": "s"}


def plot_hybrid(metrics: dict, path: Path) -> None:
    """Thinkless' trade-off: accuracy vs average total tokens, one point per (task, requested
    mode, cap); a task's points share a colour, the auto point's label gives its think share."""
    with figure(path) as (fig, ax):
        labels = []
        for i, task in enumerate(sorted({r["task"] for r in metrics["runs"] if "think_share" in r}, key=str)):
            color = f"C{i % 10}"
            runs = [r for r in metrics["runs"] if r["task"] == task and "think_share" in r]
            caps = len({r["budget"] for r in runs}) > 1
            for r in runs:
                mode = r.get("requested_mode") or "auto"
                ax.scatter([r["avg_total_tokens"]], [100 * r["accuracy"]], marker=MODE_MARKERS.get(mode, "o"),
                           s=120 if mode == "auto" else 60, color=color,
                           label=f"{task}: {mode}" + (f" cap {_cap(r['budget'])}" if caps else ""))  # fmt: skip
                text = {"auto": f"auto, thinks {100 * r['think_share']:.0f}%", "think": "think", "short": "short"}[mode]
                labels.append((r["avg_total_tokens"], 100 * r["accuracy"], text))
        ax.set_xlabel("average tokens per sample (thinking + answer)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("Hybrid reasoning: the model chooses (auto) vs always think / always short")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        annotate_points(ax, labels)


FRONTIER_MARKERS = {"sequential": "o", "parallel": "x", "adaptive": "*"}


def plot_frontier(metrics: dict, path: Path) -> None:
    """Accuracy vs average generated tokens per question (thinking + answer + probes; k samples
    cost k times): sequential caps, parallel maj@k, adaptive runs; the Pareto frontier drawn."""
    with figure(path, figsize=(7.2, 4.6)) as (fig, ax):
        labels = []
        for i, (task, pts) in enumerate(metrics["frontier"].items()):
            color = f"C{i % 10}"
            for kind, marker in FRONTIER_MARKERS.items():
                mine = [p for p in pts if p["kind"] == kind]
                if not mine:
                    continue
                if kind == "sequential":  # one line per temperature (greedy caps, sampled caps)
                    for temp in sorted({p["temperature"] or 0 for p in mine}):
                        line = [p for p in mine if (p["temperature"] or 0) == temp]
                        ax.plot([p["tokens"] for p in line], [100 * p["accuracy"] for p in line], marker=marker,
                                color=color, alpha=0.7 if not temp else 0.4, linestyle="-" if not temp else "--",
                                label=f"{task}: sequential (caps" + (f", T={temp:g})" if temp else ")"))  # fmt: skip
                else:
                    ax.scatter([p["tokens"] for p in mine], [100 * p["accuracy"] for p in mine], marker=marker,
                               s=110 if kind == "adaptive" else 40, color=color,
                               label=f"{task}: {kind}" + (" (maj@k)" if kind == "parallel" else ""))  # fmt: skip
                labels += [(p["tokens"], 100 * p["accuracy"], _short(p)) for p in mine
                           if kind != "parallel" or p["pareto"]]  # fmt: skip
            front = [p for p in pts if p["pareto"]]
            ax.step([p["tokens"] for p in front], [100 * p["accuracy"] for p in front], where="post",
                    color=color, linestyle=":", linewidth=2, label=f"{task}: Pareto frontier")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("average generated tokens per question (thinking + answer + probes; x k samples)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("Compute-matched frontier: sequential vs parallel vs adaptive")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        annotate_points(ax, labels)


def _short(point: dict) -> str:
    """A plot label: an adaptive point by its rule (every, agree / threshold), others by cap."""
    if point["kind"] != "adaptive":
        return re.sub(r" T=0(?![.\d])", "", point["label"])
    rule = point["label"].split(" ", 2)[-1].removeprefix("T=0 ").split()
    # consistency every 8 tokens 10 agree 2 -> "consistency /8 agree 2"
    return f"{rule[0]} /{rule[2]} " + " ".join(rule[5:]) if len(rule) > 5 else " ".join(rule)


def has_frontier(metrics: dict) -> bool:
    """Worth a plot: some task has more than the sequential caps (parallel or adaptive points)."""
    return any(p["kind"] != "sequential" for pts in metrics.get("frontier", {}).values() for p in pts)


def plot_parallel(metrics: dict, path: Path) -> None:
    """pass@k and maj@k vs k, for each run with more than one sample per question."""
    with figure(path) as (fig, ax):
        for task in sorted({r["task"] for r in metrics["runs"]}, key=str):
            for r in (r for r in metrics["runs"] if r["task"] == task):
                ks = sorted(int(k) for k in r["pass@k"])
                if len(ks) < 2:
                    continue
                tag = f"{task} cap {_cap(r['budget'])}" + (f" +{r['num_ignore']}W" if r["num_ignore"] else "")
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


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "-" if v is None else str(v)


def render_html(**context) -> str:
    """The report page from its jinja2 template; every value is escaped (autoescape)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("thinkscale.eval", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["cell"] = _cell
    return env.get_template("report.html.j2").render(**context)


def write_report(run_dir: str | Path, metrics: dict | None = None, records: list[dict] | None = None,
                 source: str | None = None) -> dict:  # fmt: skip
    """Write scaling.png (steps.png for DoT), parallel.png, frontier.png and hybrid.png where
    they apply, report.html (and metrics.json if missing) into run_dir. `records` (with
    `source` naming them): records gathered elsewhere, instead of run_dir's results file."""
    if records is None:
        src = results_path(run_dir)
        out_dir, records, source = src.parent, load_records(src), str(src)
    else:
        out_dir = Path(run_dir)
    if metrics is None:
        metrics = evaluate(records)
        write_json_atomic(out_dir / "metrics.json", metrics)
    # DoT records carry `steps`: their compute knob is T, not thinking tokens
    curve = "steps.png" if any(r.get("steps") for r in records) else "scaling.png"
    (plot_steps if curve == "steps.png" else plot_scaling)(metrics, out_dir / curve)
    plot_parallel(metrics, out_dir / "parallel.png")
    hybrid = any("think_share" in r for r in metrics["runs"])
    if hybrid:
        plot_hybrid(metrics, out_dir / "hybrid.png")
    if "frontier" not in metrics:  # metrics.json of an older version
        from thinkscale.eval.frontier import frontier

        metrics["frontier"] = frontier(metrics["runs"])
    with_frontier = has_frontier(metrics)
    if with_frontier:
        plot_frontier(metrics, out_dir / "frontier.png")
    front_rows = [{**p, "task": task, "matched": (p.get("matched") or {}).get("label"),
                   "token_ratio": (p.get("matched") or {}).get("token_ratio")}
                  for task, pts in metrics["frontier"].items() for p in pts]  # fmt: skip
    runs = [{**r, "pass@n": r["pass@k"][str(r["n"])], "maj@n": r["maj@k"][str(r["n"])]}
            for r in metrics["runs"]]  # fmt: skip
    samples = []
    for r in records[:MAX_SAMPLES]:
        key = {k: r.get(k) for k in ("id", "budget", "num_ignore", "sample", "correct", "mode") if k in r}
        filter_key = json.dumps(key).lower().replace('": ', "=").replace('"', "")
        samples.append({**{k: r.get(k) for k in ("id", "budget", "num_ignore", "sample", "pred", "gold",
                                                  "correct", "thinking_tokens", "mode", "requested_mode")},
                        "question": str(r.get("question", "")), "thinking": str(r.get("thinking", "")),
                        "answer": str(r.get("answer", "")), "filter_key": filter_key})  # fmt: skip
    # what a grader or a judge adds (EM/F1, chance, judge), shown where some run has it
    extra_cols = [c for c in ("em", "f1", "chance", "judge_accuracy", "judge_agreement", "think_share",
                              "adaptive", "avg_probes", "avg_probe_tokens") if any(c in r for r in runs)]  # fmt: skip
    mode_cols = ["requested_mode"] if hybrid else []
    page = render_html(
        source=source,
        runs=runs,
        run_cols=["task", *mode_cols, "budget", "num_ignore", "questions", "n", "accuracy", *extra_cols, "pass@n", "maj@n",
                  "avg_thinking_tokens", "avg_answer_tokens", "avg_total_tokens", "min_thinking_tokens",
                  "max_thinking_tokens", "capped", "avg_waits", "no_answer"],
        tasks=[{"task": t, **m} for t, m in metrics["tasks"].items()],
        task_cols=["task", "control", "scaling", "scaling_unit", "performance", *(["think_share"] if hybrid else [])],
        curve_name=curve,
        curve_png=base64.b64encode((out_dir / curve).read_bytes()).decode(),
        parallel_png=base64.b64encode((out_dir / "parallel.png").read_bytes()).decode(),
        hybrid_png=base64.b64encode((out_dir / "hybrid.png").read_bytes()).decode() if hybrid else "",
        frontier_png=base64.b64encode((out_dir / "frontier.png").read_bytes()).decode() if with_frontier else "",
        frontier=front_rows if with_frontier else [],
        frontier_cols=["task", "kind", "label", "tokens", "accuracy", "pareto", "matched", "token_ratio"],
        samples=samples,
        samples_hidden=max(0, len(records) - MAX_SAMPLES),
    )  # fmt: skip
    write_text_atomic(out_dir / "report.html", page)
    return metrics


def record_files(paths: list[str | Path]) -> list[Path]:
    """Results files named directly or found in directories (their *.jsonl), each once."""
    files: dict[Path, None] = {}
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise ThinkscaleError(f"{path}: no *.jsonl results files in this directory")
            files.update(dict.fromkeys(f.resolve() for f in found))
        elif path.is_file():
            files[path.resolve()] = None
        else:
            raise ThinkscaleError(f"{path}: file not found")
    return list(files)


def write_frontier(paths: list[str | Path], out: str | Path | None = None) -> tuple[dict, Path]:
    """`thinkscale frontier`: evaluate the records of every file together (a budget sweep with
    n samples, adaptive runs, ...) and write metrics.json (with the frontier table),
    frontier.png and report.html into `out` (default: the first directory given, else the first
    file's directory)."""
    files = record_files(paths)
    records = [r for f in files for r in load_records(f)]
    if not records:
        raise ThinkscaleError(f"{', '.join(map(str, paths))}: no records")
    metrics = evaluate(records)
    first = Path(paths[0])
    out_dir = Path(out) if out else (first if first.is_dir() else first.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_report(out_dir, metrics, records, source=", ".join(map(str, files)))
    if not has_frontier(metrics):  # the report left it out; the frontier command always draws it
        plot_frontier(metrics, out_dir / "frontier.png")
    return metrics, out_dir
