"""``fednot ablate forget-ratio``: how much data leaves (the NoT paper's Figure 6).

1, 5 and 9 of 10 clients (10, 50 and 90 % of the data) ask to be forgotten; each ratio gets its
own Retrain on what remains, and NoT and the chosen baselines are compared with that Retrain.
``--param counts=1,5,9`` and ``--param methods=ft,pgd`` change the ratios and the baselines.
Every method recovers under the common rule (default: a fixed budget of rounds). The paper finds
NoT close to Retrain at every ratio, at a communication cost that falls as the retained data
shrink.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from fednot.analysis.common import Study, pyplot
from fednot.analysis.registry import register_analysis
from fednot.benchmark.report import stop_rule_text
from fednot.benchmark.runner import history_union
from fednot.benchmark.stats import mean_ci
from fednot.errors import ConfigError
from fednot.metrics.gaps import GAP_METRICS, avg_gap
from fednot.unlearning.registry import create_unlearner, unlearner_class


def _counts(study: Study) -> list[int]:
    text = study.option("counts", "1,5,9")
    try:
        counts = [int(c) for c in text.split(",") if c.strip()]
    except ValueError as e:
        raise ConfigError(f"Expected --param counts=1,5,9 (client counts), got {text!r}.") from e
    total = study.config.data.num_clients
    if not counts or any(not 0 < c < total for c in counts):
        raise ConfigError(f"Each forget count must lie in 1..{total - 1}, got {counts}.")
    return counts


@register_analysis("ablate", "forget-ratio")
def ablate_forget_ratio(study: Study) -> Path:
    """NoT and baselines against their own Retrain, for several numbers of leaving clients."""
    counts = _counts(study)
    methods = ["not", *[m for m in study.option("methods", "ft").split(",") if m and m != "not"]]
    for name in methods:
        unlearner_class(name)  # unknown names fail before any training
    results: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for seed in study.seeds:
        for count in counts:
            unlearn = replace(study.config.unlearn, forget_clients=tuple(range(count)))
            exp = study.experiment(seed, replace(study.config, unlearn=unlearn))
            instances = [create_unlearner(n, study.config.options.get(n)) for n in methods]
            trained = exp.pretrain(history=history_union(instances))
            request = exp.scenario.request
            retrain = exp.unlearn(trained, request, "retrain")
            reference = dict(exp.evaluate(retrain.state).values)
            results.setdefault("retrain", {}).setdefault(count, []).append(
                {**reference, "avg_gap": 0.0, "comm_bytes": retrain.costs.comm_bytes}
            )
            for method in instances:
                study.progress.phase(f"seed {seed}: {count} clients forgotten: {method.name}")
                outcome = exp.unlearn(trained, request, method)
                metrics = dict(exp.evaluate(outcome.state).values)
                results.setdefault(method.name, {}).setdefault(count, []).append(
                    {
                        **metrics,
                        "avg_gap": avg_gap(metrics, reference),
                        "comm_bytes": outcome.costs.comm_bytes,
                        "comm_ratio": outcome.costs.comm_bytes / max(retrain.costs.comm_bytes, 1),
                    }
                )
    summary = {
        name: {count: _mean(runs) for count, runs in per.items()} for name, per in results.items()
    }
    study.save_json("ablate_forget_ratio", {"per_seed": results, "summary": summary})
    _plot(study, summary, counts)
    return study.write_markdown(
        "ablate_forget_ratio", "Forget ratio", _report(study, summary, counts)
    )


def _mean(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and 95 % CI half-width (``<key>_hw``, NaN for one seed) of each number."""
    keys = [k for k in runs[0] if isinstance(runs[0][k], int | float)]
    out = {}
    for key in keys:
        interval = mean_ci([float(r[key]) for r in runs])
        out[key], out[f"{key}_hw"] = interval.mean, interval.half_width
    return out


def _plot(study: Study, summary: dict[str, dict[int, dict[str, float]]], counts: list[int]) -> None:
    plt = pyplot()
    total = study.config.data.num_clients
    ratios = [100 * c / total for c in counts]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    for name, per in summary.items():
        title = unlearner_class(name).title or name
        style = {"linestyle": "--", "color": "black"} if name == "retrain" else {"marker": "o"}
        axes[0].plot(ratios, [per[c]["forget_acc"] for c in counts], label=title, **style)
        axes[1].plot(ratios, [per[c]["test_acc"] for c in counts], label=title, **style)
        if name != "retrain":
            gaps, errs = (
                [per[c]["avg_gap"] for c in counts],
                [0.0 if math.isnan(hw := per[c]["avg_gap_hw"]) else hw for c in counts],
            )
            axes[2].errorbar(ratios, gaps, yerr=errs, marker="o", capsize=3, label=title)
    labels = (
        "forget accuracy (%)",
        "test accuracy (%)",
        "average gap to own Retrain (pp, 95 % CI)",
    )
    for axis, label in zip(axes, labels, strict=True):
        axis.set_xlabel("share of clients forgotten (%)")
        axis.set_ylabel(label)
        axis.set_xticks(ratios)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"Forget ratio: each method against its own Retrain\n{study.setting()}", fontsize=10
    )
    study.save_figure(figure, "ablate_forget_ratio")


def _report(
    study: Study, summary: dict[str, dict[int, dict[str, float]]], counts: list[int]
) -> str:
    lines = [
        "Clients 0..m−1 leave (client-wise). Each ratio has its own Retrain; every other method "
        "is compared with it and recovers under the common rule "
        f"({stop_rule_text(study.config)}). Cells: mean over seeds; avg. gap: mean ± 95 % CI "
        "half-width (Student t).",
        "",
        "![metrics against the forget ratio](ablate_forget_ratio.png)",
        "",
        "| method | clients forgotten | "
        + " | ".join(GAP_METRICS)
        + " | avg. gap | comm. / Retrain |",
        "|---|---|" + "---|" * (len(GAP_METRICS) + 2),
    ]
    for name, per in summary.items():
        for count in counts:
            row = per[count]
            cells = " | ".join(f"{row[m]:.2f}" for m in GAP_METRICS)
            ratio = f"{row['comm_ratio']:.2f}" if "comm_ratio" in row else "1.00"
            gap = f"{row['avg_gap']:.2f}"
            if not math.isnan(row["avg_gap_hw"]):
                gap += f" ± {row['avg_gap_hw']:.2f}"
            lines.append(f"| {name} | {count} | {cells} | {gap} | {ratio} |")
    return "\n".join(lines)
