"""What ``fednot analyze sensitivity`` reads from its cells: best rates, tests, figure, report.

Everything here reads ``sensitivity.json``'s layout (`fednot.analysis.sensitivity`): ``runs``
(method → rate → seed → gap, metrics, error), ``floor`` (seed → Retrain′'s reading) and the
methods, rates and seeds of the study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fednot.analysis.common import Study, pyplot
from fednot.benchmark.stats import LEVEL, Interval, holm, mean_ci, paired_ci, t_test_p
from fednot.benchmark.tables import format_interval
from fednot.unlearning.registry import unlearner_class

ALPHA = 1 - LEVEL


@dataclass(frozen=True)
class Point:
    """One method at one rate: the gaps of the seeds that finished, and those that diverged."""

    lr: float
    gaps: dict[str, float]
    diverged: tuple[str, ...]

    @property
    def interval(self) -> Interval | None:
        """Mean gap and 95 % CI over the finished seeds; ``None`` if one diverged or none ran."""
        if self.diverged or not self.gaps:
            return None
        return mean_ci(list(self.gaps.values()))


@dataclass(frozen=True)
class Test:
    """A method against the reference method, each at its best rate, paired over seeds."""

    method: str
    difference: Interval
    p: float
    p_holm: float
    seeds: int


def points(data: Mapping[str, Any], method: str) -> list[Point]:
    """``method``'s readings at every rate of the study, in rate order (seeds done so far)."""
    runs = data["runs"].get(method, {})
    out = []
    for lr in data["lrs"]:
        cells = runs.get(repr(float(lr)), {})
        seeds = [s for s in map(str, data["seeds"]) if s in cells]
        gaps = {s: cells[s]["gap"] for s in seeds if cells[s]["gap"] is not None}
        diverged = tuple(s for s in seeds if cells[s]["gap"] is None)
        out.append(Point(float(lr), gaps, diverged))
    return out


def floor(data: Mapping[str, Any]) -> Interval | None:
    """Retrain′'s average gap to Retrain over the seeds done (``None``: none yet)."""
    gaps = [e["gap"] for s, e in data["floor"].items() if int(s) in data["seeds"]]
    return mean_ci(gaps) if gaps else None


def complete(data: Mapping[str, Any]) -> list[str]:
    """The seeds every method has at every rate (the seeds a comparison may use)."""
    return [
        s
        for s in map(str, data["seeds"])
        if all(
            s in data["runs"].get(m, {}).get(repr(float(lr)), {})
            for m in data["methods"]
            for lr in data["lrs"]
        )
    ]


def best_rates(data: Mapping[str, Any]) -> dict[str, Point | None]:
    """Per method, the rate of lowest mean gap among those where no seed diverged."""
    seeds = set(complete(data))
    best: dict[str, Point | None] = {}
    for method in data["methods"]:
        usable = []
        for point in points(data, method):
            kept = Point(
                point.lr,
                {s: g for s, g in point.gaps.items() if s in seeds},
                tuple(s for s in point.diverged if s in seeds),
            )
            if kept.interval is not None:
                usable.append(kept)
        best[method] = min(usable, key=lambda p: p.interval.mean) if usable else None  # type: ignore[union-attr]
    return best


def reference_method(methods: Sequence[str]) -> str:
    """The method others are compared with: NoT if studied, else the first."""
    return "not" if "not" in methods else methods[0]


def comparisons(best: Mapping[str, Point | None], reference: str) -> list[Test]:
    """Every method against ``reference`` at each one's best rate; Holm over the comparisons."""
    ref = best.get(reference)
    if ref is None:
        return []
    raw = []
    for method, point in best.items():
        if method == reference or point is None:
            continue
        seeds = sorted(set(point.gaps) & set(ref.gaps))
        if len(seeds) < 2:
            continue
        mine, theirs = [point.gaps[s] for s in seeds], [ref.gaps[s] for s in seeds]
        differences = [a - b for a, b in zip(mine, theirs, strict=True)]
        raw.append((method, paired_ci(mine, theirs), t_test_p(differences), len(seeds)))
    adjusted = holm([p for _, _, p, _ in raw])
    return [Test(m, d, p, q, n) for (m, d, p, n), q in zip(raw, adjusted, strict=True)]


def good_range(data: Mapping[str, Any], method: str, at: Point) -> list[float]:
    """The rates not distinguishable from the best one (paired t-test over seeds, p >= 0.05)."""
    out = []
    for point in points(data, method):
        seeds = sorted(set(point.gaps) & set(at.gaps))
        if point.diverged or len(seeds) < 2:
            continue
        diff = [point.gaps[s] - at.gaps[s] for s in seeds]
        if point.lr == at.lr or t_test_p(diff) >= ALPHA:
            out.append(point.lr)
    return out


def _title(method: str) -> str:
    return unlearner_class(method).title or method


def plot(study: Study, data: Mapping[str, Any], best: Mapping[str, Point | None]) -> None:
    """The average gap against the rate, one curve per method with its 95 % band."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    means: list[float] = []
    flagged = False
    for row, method in enumerate(data["methods"]):
        readings = points(data, method)
        fine = [(p.lr, p.interval) for p in readings if p.interval is not None]
        color = None
        if fine:
            lrs = [lr for lr, _ in fine]
            centre = [i.mean for _, i in fine]
            lows = [i.mean if math.isnan(i.low) else i.low for _, i in fine]
            highs = [i.mean if math.isnan(i.high) else i.high for _, i in fine]
            (line,) = axis.plot(lrs, centre, marker="o", label=_title(method))
            color = line.get_color()
            axis.fill_between(lrs, lows, highs, color=color, alpha=0.18)
            means += centre
            chosen = best.get(method)
            if chosen is not None and chosen.interval is not None:
                axis.plot(
                    [chosen.lr],
                    [chosen.interval.mean],
                    marker="*",
                    markersize=16,
                    color=color,
                    markeredgecolor="black",
                    linestyle="none",
                )
        diverged = [p.lr for p in readings if p.diverged]
        if diverged:  # along the top edge, one row per method, in its colour
            axis.plot(
                diverged,
                [0.96 - 0.05 * row] * len(diverged),
                marker="x",
                markersize=9,
                linestyle="none",
                color=color or "black",
                transform=axis.get_xaxis_transform(),
            )
            flagged = True
    if flagged:
        axis.plot([], [], marker="x", linestyle="none", color="black", label="a seed diverged")
    reference = floor(data)
    if reference is not None:
        low = reference.mean if math.isnan(reference.low) else reference.low
        high = reference.mean if math.isnan(reference.high) else reference.high
        axis.axhspan(low, high, color="grey", alpha=0.25, label="Retrain′ (95 % CI)")
        axis.axhline(reference.mean, color="grey", linewidth=1)
    axis.set_xscale("log", base=2)
    axis.set_xticks(data["lrs"], [f"{lr:.3g}" for lr in data["lrs"]])
    axis.minorticks_off()
    # the bands of a few seeds can be wide: the axis shows the means, and the floor
    top = max([*means, 0.0 if reference is None else reference.mean, 0.25]) * 1.5
    axis.set_ylim(bottom=0, top=top)
    axis.set_xlabel("recovery learning rate (log scale)")
    axis.set_ylabel("average gap to Retrain (pp; mean, 95 % CI band)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, title="★ best rate", title_fontsize=8)
    seeds = complete(data)
    axis.set_title(
        f"Recovery learning-rate sensitivity, {len(seeds)} seeds (bands: 95 % CI, cut at the "
        f"top edge)\n{study.setting()}",
        fontsize=9,
    )
    study.save_figure(figure, "sensitivity")


def report(study: Study, data: Mapping[str, Any], best: Mapping[str, Point | None]) -> str:
    """The Markdown body: the curve table, best rates and good ranges, the paired tests."""
    methods, rates = data["methods"], data["lrs"]
    lines = [
        "Each method's own recovery learning rate varies; everything else is the configuration's. "
        "Cells: average gap to the same seed's Retrain at the end of the recovery budget, mean ± "
        f"95 % CI half-width over the seeds ({len(complete(data))} complete: "
        f"{', '.join(complete(data))}); *k/n div.*: k of n seeds diverged (no interval; the "
        "others' mean beside it).",
        "",
        "![average gap against the recovery learning rate](sensitivity.png)",
        "",
        "| method | " + " | ".join(f"{lr:.4g}" for lr in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for method in methods:
        cells = []
        for p in points(data, method):
            n = len(p.gaps) + len(p.diverged)
            if not p.diverged:
                cells.append(format_interval(p.interval))
                continue
            others = f" (the others: {sum(p.gaps.values()) / len(p.gaps):.2f})" if p.gaps else ""
            cells.append(f"*{len(p.diverged)}/{n} div.*{others}")
        lines.append(f"| {_title(method)} | " + " | ".join(cells) + " |")
    reference = floor(data)
    lines += ["", f"Retrain′ (Retrain from another training seed): {format_interval(reference)}."]
    lines += ["", "| method | best rate | avg. gap there | rates not distinguishable from it |"]
    lines.append("|---|---|---|---|")
    for method in methods:
        at = best.get(method)
        if at is None:
            lines.append(f"| {_title(method)} | — | — | — |")
            continue
        span = ", ".join(f"{lr:.4g}" for lr in good_range(data, method, at))
        lines.append(
            f"| {_title(method)} | {at.lr:.4g} | {format_interval(at.interval)} | {span} |"
        )
    ref = reference_method(methods)
    found = comparisons(best, ref)
    lines += [
        "",
        "Best rates: the lowest mean gap among rates where no seed diverged. Rates not "
        "distinguishable: a paired t-test over seeds against the best rate, p >= 0.05, "
        "unadjusted (a description of the good range, not a claim).",
        "",
        f"**Each method against {_title(ref)}, each at its best rate** (paired over seeds; "
        "Holm over these comparisons):",
        "",
        f"| method | − {_title(ref)} (95 % CI) | p | Holm p | reading |",
        "|---|---|---|---|---|",
    ]
    for test in found:
        diff = test.difference
        if test.p_holm < ALPHA:
            side = "closer to" if diff.mean < 0 else "farther from"
            reading = f"{side} Retrain than {_title(ref)}"
        else:
            reading = "not distinguishable"
        lines.append(
            f"| {_title(test.method)} | {diff.mean:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}] | "
            f"{test.p:.3g} | {test.p_holm:.3g} | {reading} |"
        )
    lines += [
        "",
        "Each best rate is chosen on the seeds that then test it: every method's best point is "
        "optimistic (more so the more rates are tried), and so is a comparison between them.",
    ]
    return "\n".join(lines)
