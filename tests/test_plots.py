"""Point labels that coincide do not overprint (the demo's 'cap 64' over 'cap 128')."""

from __future__ import annotations

from thinkscale.eval.report import plot_scaling
from thinkscale.plots import annotate_points, figure


def test_coinciding_labels_are_stacked(tmp_path):
    with figure(tmp_path / "p.png") as (fig, ax):
        ax.plot([0, 100], [0, 100])
        used = annotate_points(ax, [(52.2, 77.1, "cap 64"), (52.8, 75.0, "cap 128"), (10, 10, "cap 8")])
    (_, y64), (_, y128), (_, y8) = used
    assert y64 != y128  # moved apart
    assert y8 == y64  # a label far away keeps the default place
    assert (tmp_path / "p.png").stat().st_size > 0


def test_scaling_plot_of_runs_with_equal_points(tmp_path):
    run = {"task": "t", "num_ignore": 0, "avg_thinking_tokens": 50.0, "accuracy": 0.5, "n": 1,
           "pass@k": {"1": 0.5}, "maj@k": {"1": 0.5}}  # fmt: skip
    metrics = {"runs": [{**run, "budget": 64}, {**run, "budget": 128}, {**run, "budget": 128, "num_ignore": 1}]}
    plot_scaling(metrics, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no temp file left
