"""Figures, drawn with matplotlib's non-interactive Agg backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fednot.metrics.gaps import GAP_METRICS
from fednot.results import ORIGINAL, REFERENCE

_LABELS = {"retain_acc": "Retain acc.", "forget_acc": "Forget acc.", "test_acc": "Test acc.",
           "mia": "MIA"}  # fmt: skip
_COSTS = (("comm_bytes", "Communication"), ("flops", "Computation"), ("storage_bytes", "Storage"))


def comparison_chart(summary: Sequence[dict[str, Any]], path: Path, *, subtitle: str) -> None:
    """Accuracy metrics and costs per method, next to Retrain (after the NoT paper's Figure 1).

    Top: the four metrics (mean ± std over seeds) per method, Retrain's value as a dashed line.
    Bottom: communication, computation and storage of each method relative to Retrain's
    (log scale; 1 = Retrain's cost; storage relative to the model size is shown in the legend).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in summary if r["method"] != ORIGINAL]
    reference = next((r for r in rows if r["method"] == REFERENCE), None)
    titles = [r["title"] for r in rows]
    x = np.arange(len(GAP_METRICS))
    width = 0.8 / max(len(rows), 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8.0, 1.1 * len(rows) + 4), 8.5))
    colors = plt.get_cmap("tab10")
    for i, row in enumerate(rows):
        means = [row[m]["mean"] for m in GAP_METRICS]
        stds = [row[m]["std"] for m in GAP_METRICS]
        top.bar(x + (i - (len(rows) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
                label=row["title"], color=colors(i % 10))  # fmt: skip
    if reference is not None:
        for j, metric in enumerate(GAP_METRICS):
            value = reference[metric]["mean"]
            top.hlines(value, j - 0.45, j + 0.45, colors="black", linestyles="dashed", linewidth=1)
    top.set_xticks(x, [_LABELS[m] for m in GAP_METRICS])
    top.set_ylabel("percent (%)")
    low = min(r[m]["mean"] - r[m]["std"] for r in rows for m in GAP_METRICS)
    top.set_ylim(max(0.0, low - 5), 101)
    top.set_title(f"Accuracy and MIA per method (dashed: Retrain)\n{subtitle}", fontsize=10)
    top.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))

    if reference is not None:
        ratios = {
            key: [r[key] / reference[key] if reference[key] else np.nan for r in rows]
            for key, _ in _COSTS[:2]
        }
        xs = np.arange(len(rows))
        for k, (key, label) in enumerate(_COSTS[:2]):
            bottom.bar(xs + (k - 0.5) * 0.4, ratios[key], 0.4, label=f"{label} / Retrain's")
        bottom.axhline(1.0, color="black", linestyle="dashed", linewidth=1)
        bottom.set_yscale("log")
        bottom.set_xticks(xs, titles, rotation=30, ha="right")
        bottom.set_ylabel("cost relative to Retrain (log scale)")
        stored = [
            f"{r['title']}: {r['storage_bytes'] / 1e6:.1f} MB" for r in rows if r["storage_bytes"]
        ]
        note = "stored history: " + ", ".join(stored) if stored else "no method stores history"
        bottom.set_title(f"Unlearning + recovery costs ({note})", fontsize=10)
        bottom.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
