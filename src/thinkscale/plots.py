"""Plot setup once: a headless figure saved atomically, and point labels that never overprint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from thinkscale.records import write_atomic


@contextmanager
def figure(path: str | Path, figsize: tuple[float, float] = (6.4, 4.2)) -> Iterator:
    """`with figure(path) as (fig, ax): ...` draws on a fresh Agg figure, then writes the PNG
    through a temp file and closes the figure (also when drawing fails)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield fig, ax
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def annotate_points(
    ax, points: list[tuple[float, float, str]], offset: tuple[float, float] = (4, 4),
    fontsize: int = 7, line_height: float = 9.0,
) -> list[tuple[float, float]]:  # fmt: skip
    """Label each (x, y, text); a label that would land on one already placed moves down a
    line. Call after all data is drawn (it reads the final axis limits). Returns the offsets
    (points) used, for tests."""
    ax.autoscale_view()
    scale = 72.0 / ax.figure.dpi  # display pixels -> points
    placed: list[tuple[float, float, float]] = []  # (x, y, width) of placed labels, in points
    used = []
    for x, y, text in points:
        px, py = (v * scale for v in ax.transData.transform((x, y)))
        dx, dy = offset
        width = 0.6 * fontsize * len(text)
        while any(abs(py + dy - qy) < line_height and px + dx < qx + qw and qx < px + dx + width
                  for qx, qy, qw in placed):  # fmt: skip
            dy -= line_height
        placed.append((px + dx, py + dy, width))
        used.append((dx, dy))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize)
    return used
