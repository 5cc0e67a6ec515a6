"""``fednot ablate layers``: which layer to negate (the NoT paper's Figure 4).

NoT is run with each named layer negated alone, with the first two conv/linear layers together,
and with every layer, each followed by the same recovery: FedAvg on the retained clients until
Retrain's retained-validation accuracy is reached or the recovery budget runs out. Stopping at
Retrain's accuracy is what makes the communication axis meaningful: a layer whose negation
recovers quickly costs fewer rounds. The paper's finding: early layers forget most for the
least communication; later layers forget less (co-adaptation breaks only downstream).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from fednot.analysis.common import Study, pyplot
from fednot.analysis.registry import register_analysis
from fednot.errors import NegationWarning
from fednot.metrics.gaps import GAP_METRICS, avg_gap, mean_std
from fednot.models.layers import LayerGraph, layer_graph
from fednot.unlearning.negation import NoT


def layer_variants(graph: LayerGraph) -> dict[str, tuple[str, ...]]:
    """Each layer alone, the first two conv/linear layers together, and all layers."""
    variants: dict[str, tuple[str, ...]] = {layer.name: (layer.name,) for layer in graph.layers}
    compute = [layer.name for layer in graph.layers if layer.kind in ("conv", "linear")]
    if len(compute) >= 2:
        variants[f"{compute[0]} + {compute[1]}"] = (compute[0], compute[1])
    variants["all layers"] = tuple(graph.names)
    return variants


@register_analysis("ablate", "layers")
def ablate_layers(study: Study) -> Path:
    """Run NoT per layer choice; plot the average gap against communication."""
    config = replace(study.config, unlearn=replace(study.config.unlearn, target_val_acc="retrain"))
    rows: dict[str, list[dict[str, Any]]] = {}
    for seed in study.seeds:
        exp = study.experiment(seed, config)
        trained = exp.pretrain()
        request = exp.scenario.request
        retrain = exp.unlearn(trained, request, "retrain")
        reference = exp.evaluate(retrain.state).values()
        rows.setdefault("Retrain", []).append(
            {
                **reference,
                "avg_gap": 0.0,
                "comm_bytes": retrain.costs.comm_bytes,
                "rounds": len(retrain.log.rounds),
            }  # fmt: skip
        )
        for label, layers in layer_variants(layer_graph(exp.model)).items():
            study.progress.phase(f"seed {seed}: NoT negating {label}")
            method = NoT(layers=layers, strict=False)
            with warnings.catch_warnings():  # outside NoT's theory on purpose; kept in the notes
                warnings.simplefilter("ignore", NegationWarning)
                outcome = exp.unlearn(
                    trained, request, method, reference_val_acc=reference["val_acc"]
                )
            metrics = exp.evaluate(outcome.state).values()
            rows.setdefault(label, []).append({
                **metrics, "avg_gap": avg_gap(metrics, reference),
                "comm_bytes": outcome.costs.comm_bytes, "rounds": len(outcome.log.rounds),
                "warnings": outcome.notes.get("warnings", []),
            })  # fmt: skip
    summary = _summarize(rows)
    study.save_json("ablate_layers", {"per_seed": rows, "summary": summary})
    _plot(study, summary)
    return study.write_markdown("ablate_layers", "Which layer to negate", _report(summary))


def _summarize(rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    keys = (*GAP_METRICS, "avg_gap", "comm_bytes", "rounds")
    out: dict[str, dict[str, float]] = {}
    for label, runs in rows.items():
        out[label] = {}
        for key in keys:
            mean, std = mean_std([float(r[key]) for r in runs])
            out[label][key], out[label][f"{key}_std"] = mean, std
    return out


def _plot(study: Study, summary: dict[str, dict[str, float]]) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 5.5))
    retrain_comm = summary["Retrain"]["comm_bytes"]
    for i, (label, row) in enumerate(summary.items()):
        if label == "Retrain":
            continue
        x, y = row["comm_bytes"] / retrain_comm, row["avg_gap"]
        axis.errorbar(x, y, yerr=row["avg_gap_std"], fmt="o", color=plt.get_cmap("tab10")(i % 10),
                      capsize=3, label=f"{label} ({row['rounds']:.0f} rounds)")  # fmt: skip
        axis.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axis.set_xlabel("communication relative to Retrain (bytes / Retrain's bytes)")
    axis.set_ylabel("average gap to Retrain (percentage points)")
    axis.set_title(f"NoT: negated layer vs average gap and communication\n{study.setting()}",
                   fontsize=10)  # fmt: skip
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    axis.grid(alpha=0.3)
    study.save_figure(figure, "ablate_layers")


def _report(summary: dict[str, dict[str, float]]) -> str:
    lines = [
        "Each point is NoT with one choice of negated layers, recovered by FedAvg on the retained "
        "clients until it reaches Retrain's retained-validation accuracy (or the recovery budget "
        "ends). Lower and further left is better: closer to Retrain for less communication.",
        "",
        "![average gap against communication per negated layer](ablate_layers.png)",
        "",
        "| negated | retain | forget | test | MIA | avg. gap | comm. / Retrain | rounds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    retrain_comm = summary["Retrain"]["comm_bytes"]
    for label, row in summary.items():
        cells = [f"{row[m]:.2f}" for m in GAP_METRICS]
        lines.append(
            f"| {label} | {' | '.join(cells)} | {row['avg_gap']:.2f} ± {row['avg_gap_std']:.2f} "
            f"| {row['comm_bytes'] / retrain_comm:.2f} | {row['rounds']:.0f} |"
        )
    lines += [
        "",
        "The NoT paper (Figure 4, ViT) finds the first layer best. Negating the output layer or "
        "several layers on one path is outside NoT's theory (Thm 4); they run here with "
        "`strict=False`, and their warnings are in the JSON.",
    ]
    return "\n".join(lines)
