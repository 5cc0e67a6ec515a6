"""Figures of a run, drawn with matplotlib's non-interactive Agg backend.

Both show differences, not absolute values: each metric's Δ to Retrain with its 95 % CI
(`delta_chart`), and the average gap against communication relative to Retrain, one curve per
method with a band over seeds (`tradeoff_chart`). Each figure is written twice: as the PNG
named, and as an SVG beside it (same name, ``.svg``) for papers and slides.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fednot.benchmark.results import ORIGINAL, REFERENCE
from fednot.benchmark.stats import Interval
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tradeoff import CurvePoint
from fednot.benchmark.trajectory import COST_POINTS
from fednot.metrics.gaps import GAP_METRICS
from fednot.metrics.registry import get_metric

_HIGHLIGHT = ("not", "not_wb", "ft")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_TITLE_POINTS = 10
_CHAR_WIDTH = 0.6
"""A title character's mean width, in ems of its font size (DejaVu Sans, with a margin)."""


def save_figure(fig: Any, path: Path, title: str, *, dpi: int = 110) -> list[Path]:
    """Title ``fig`` (what, then the setup), lay it out, write it as PNG and SVG, and close it.

    Each line of ``title`` is wrapped to the figure's width, so that a narrow figure (a trade-off
    chart of two methods) does not clip it. Returns the PNG's and the SVG's paths.
    """
    fig.suptitle(wrap_title(title, fig.get_figwidth()), fontsize=_TITLE_POINTS)
    fig.set_layout_engine("constrained")
    svg = path.with_suffix(".svg")
    fig.savefig(path, dpi=dpi)
    fig.savefig(svg)
    pyplot().close(fig)
    return [path, svg]


def wrap_title(title: str, width_inches: float, points: float = _TITLE_POINTS) -> str:
    """``title`` with each line wrapped to fit ``width_inches`` at ``points`` (72 per inch)."""
    chars = max(20, int(width_inches * 72 / (points * _CHAR_WIDTH)))
    return "\n".join(
        "\n".join(textwrap.wrap(line, chars, break_on_hyphens=False)) or line
        for line in title.split("\n")
    )


def method_style(index: int, method: str) -> dict[str, Any]:
    """The line style of the ``index``-th method of a figure: NoT black, NoT and FT thicker."""
    plt = pyplot()
    color = plt.get_cmap("tab20")((2 * index) % 20 + (index // 10) % 2)
    if method == "not":
        color = "black"
    return {"color": color, "linewidth": 2.4 if method in _HIGHLIGHT else 1.3}


def delta_chart(
    summary: Sequence[MethodSummary], path: Path, *, subtitle: str, floor: float | None
) -> None:
    """One panel per gap metric, plus the average gap: each method's Δ to Retrain with its 95 % CI.

    Δ is the mean over seeds of (method − Retrain) on the same seed; 0 is Retrain. The MIA panel
    shades the attack's noise floor. The last panel is the per-seed average gap (≥ 0). A method
    far off the others' scale (a diverged baseline) would flatten every other interval, so each
    panel's axis ends at `_axis_limit` and such a method is drawn clipped at the edge, with its
    numbers written beside it. A method that diverged on every seed has no numbers and is left
    out; one that diverged on some seeds shows the others, its label saying how many diverged.
    """
    plt = pyplot()
    rows = [r for r in summary if r.method != REFERENCE and r.seeds]
    panels = [*GAP_METRICS, "avg_gap"]
    height = max(3.2, 0.42 * len(rows) + 1.6)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), height), sharey=True)
    ys = list(range(len(rows)))[::-1]
    for axis, panel in zip(axes, panels, strict=True):
        stats = [row.avg_gap if panel == "avg_gap" else _delta(row, panel) for row in rows]
        limit = _axis_limit([s for s in stats if s is not None])
        for y, (i, row), stat in zip(ys, enumerate(rows), stats, strict=True):
            if stat is None:
                continue
            mean, low, high = stat.mean, stat.low, stat.high
            if math.isnan(low):
                low = high = mean
            style = method_style(i, row.method)
            shown = [min(max(v, -limit), limit) for v in (mean, low, high)]
            marker = "s" if row.method == ORIGINAL else "o"
            axis.errorbar(
                shown[0],
                y,
                xerr=[[shown[0] - shown[1]], [shown[2] - shown[0]]],
                fmt=marker,
                color=style["color"],
                capsize=3,
                markersize=6 if row.method in _HIGHLIGHT else 4,
            )
            if shown != [mean, low, high]:
                side = 1 if mean > 0 else -1
                axis.annotate(
                    f"off scale: {mean:+.1f} [{low:+.1f}, {high:+.1f}]",
                    (side * limit, y),
                    xytext=(0, 6),
                    textcoords="offset points",
                    ha="right" if side > 0 else "left",
                    fontsize=7,
                    color=style["color"],
                )
        axis.set_xlim(-0.02 * limit if panel == "avg_gap" else -limit * 1.05, limit * 1.05)
        axis.axvline(0, color="0.3", linewidth=1)
        if panel == "mia" and floor is not None:
            axis.axvspan(-floor, floor, color="0.85", zorder=0, label="noise floor")
            axis.legend(fontsize=7, loc="lower right")
        title = "Average gap (per seed)" if panel == "avg_gap" else f"Δ {get_metric(panel).display}"
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("points" if panel == "avg_gap" else "method − Retrain (points)")
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys, [_label(r) for r in rows])
    title = f"Difference to Retrain, mean and 95 % CI over seeds\n{subtitle}"
    save_figure(fig, path, title, dpi=120)


def _delta(row: MethodSummary, metric: str) -> Interval | None:
    """``metric``'s paired difference to Retrain in ``row`` (``None``: none)."""
    compared = row.compared.get(metric)
    return None if compared is None else compared.delta


def _label(row: MethodSummary) -> str:
    diverged = len(row.diverged)
    return f"{row.title} ({diverged} diverged)" if diverged else row.title


def _axis_limit(stats: Sequence[Interval]) -> float:
    """Half-range of a panel: the largest extent, at most 6 × the median extent (≥ 1 point)."""
    extents = sorted(
        max(abs(v) for v in (s.mean, s.low, s.high) if not math.isnan(v)) for s in stats
    )
    if not extents:
        return 1.0
    median = extents[len(extents) // 2]
    return max(1.0, min(extents[-1], 6 * median))


def tradeoff_chart(
    curves: Mapping[str, Sequence[CurvePoint]],
    titles: Mapping[str, str],
    path: Path,
    *,
    subtitle: str,
    references: Sequence[str] = ("not", "ft"),
) -> None:
    """Average gap against communication relative to Retrain: one panel per method.

    Each panel shows the method's mean curve over seeds with its 95 % CI band, and the mean
    curves of the ``references`` (NoT, FT) as thin lines for comparison; panels share both
    axes. Dotted verticals mark the cost points the table reads (25, 50 and 100 % of Retrain's
    communication). The y axis is logarithmic when the mean gaps span more than a factor of 20.
    """
    plt = pyplot()
    labels = [m for m, curve in curves.items() if curve]
    if not labels:
        return
    columns = min(4, len(labels))
    rows = math.ceil(len(labels) / columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(3.6 * columns, 2.9 * rows + 0.9),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    means = [p.gap for m in labels for p in curves[m]]
    positive = [g for g in means if g > 0]
    log = bool(positive) and max(positive) / min(positive) > 20
    floor = min(positive) / 2 if positive else 0.0
    ref_styles = {"not": {"color": "black", "linestyle": "--"}, "ft": {"color": "0.45"}}
    for index, method in enumerate(labels):
        axis = axes[index // columns][index % columns]
        for ref in references:
            if ref != method and ref in curves and curves[ref]:
                style = ref_styles.get(ref, {"color": "0.6"})
                axis.plot(
                    [p.x for p in curves[ref]],
                    [p.gap for p in curves[ref]],
                    linewidth=1,
                    label=titles.get(ref, ref),
                    **style,
                )
        curve = curves[method]
        xs = [p.x for p in curve]
        color = "black" if method == "not" else "tab:blue"
        axis.plot(
            xs,
            [p.gap for p in curve],
            color=color,
            linewidth=2,
            label=f"{titles.get(method, method)} (95 % CI)",
        )
        lows, highs = [p.low for p in curve], [p.high for p in curve]
        if not any(math.isnan(v) for v in lows):
            lows = [max(v, floor) for v in lows] if log else lows
            axis.fill_between(xs, lows, highs, color=color, alpha=0.2, linewidth=0)
        for fraction in COST_POINTS:
            axis.axvline(fraction, color="0.6", linestyle=":", linewidth=1)
        axis.set_title(titles.get(method, method), fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper right")
        if log:
            axis.set_yscale("log")
    for index in range(len(labels), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("communication / Retrain's")
    for row in axes:
        row[0].set_ylabel("average gap (points)")
    save_figure(
        fig,
        path,
        "Average gap to Retrain against communication relative to Retrain (lower is better), "
        f"mean and 95 % CI over seeds\n{subtitle}",
    )
