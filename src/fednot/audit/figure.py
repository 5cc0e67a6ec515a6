"""audit.png: each method's per-example ε distribution against Retrain's own spread."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fednot.benchmark.plots import method_style, pyplot, save_figure
from fednot.benchmark.results import REFERENCE
from fednot.metrics.forgetting_quality import BUCKET, resolvable_epsilon


def epsilon_chart(report: Mapping[str, Any], path: Path, *, subtitle: str) -> None:
    """Two panels of empirical CDFs of the per-example ε (higher curve = better forgetting).

    Left: every method's first N/2 models against the second half of the retrained models, and
    Retrain's first half against that same second half (black, dashed): what a perfect method
    shows at this sample size. Right: the N-vs-N estimates the score uses. ε past a panel's
    last bucket earns no points and is drawn at the edge; light verticals mark the buckets.
    """
    plt = pyplot()
    n, half = report["models"], report["half"]
    panels = (
        ("half", half, f"{half} vs {half} models (with Retrain's own spread)"),
        ("full", n, f"{n} vs {n} models (the score)"),
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for axis, (key, size, title) in zip(axes, panels, strict=True):
        limit = math.ceil(resolvable_epsilon(size))
        for index, row in enumerate(report["rows"]):
            cell = row[key]
            if cell is None:
                continue
            eps = np.sort(np.minimum(np.asarray(cell["epsilons"]), limit + BUCKET))
            share = np.arange(1, len(eps) + 1) / len(eps)
            style = method_style(index, row["method"])
            if row["method"] == REFERENCE:
                style = {"color": "black", "linestyle": "--", "linewidth": 2.0}
            label = f"{row['title']} ({cell['score']:.3f})"
            axis.step(
                np.concatenate([[0], eps]),
                np.concatenate([[0], share]),
                where="post",
                label=label,
                **style,
            )
        for edge in np.arange(BUCKET, limit + BUCKET / 2, BUCKET):
            axis.axvline(edge, color="0.85", linewidth=0.8, zorder=0)
        axis.axvline(resolvable_epsilon(size), color="0.4", linestyle=":", linewidth=1.2)
        axis.set_xlim(0, limit + BUCKET)
        axis.set_ylim(0, 1.01)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(f"per-example ε (dotted: ln({size - 1}); ≥ {limit} drawn at the edge)")
        axis.grid(alpha=0.25, axis="y")
        axis.legend(
            fontsize=8, loc="upper left", title="method (forgetting quality)", title_fontsize=8
        )
    axes[0].set_ylabel("share of forgotten examples with ε ≤ x")
    save_figure(
        fig,
        path,
        "How distinguishable each forgotten example is from Retrain's models (higher and further "
        f"left is better)\n{subtitle}",
    )
