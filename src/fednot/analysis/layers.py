"""``fednot ablate layers``: which layer to negate (the NoT paper's Figure 4).

NoT is run with each named layer negated alone, with the first two conv/linear layers together,
and with every layer, each followed by the same recovery as every method (the configured rule;
default: a fixed budget of rounds). Every round is evaluated, so each choice is a curve of the
average gap to Retrain against communication (docs/protocol.md): a layer whose negation
recovers quickly reaches a small gap early. The paper's finding: early layers forget most for
the least communication; later layers forget less (co-adaptation breaks only downstream).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from fednot.analysis.common import (
    Study,
    finals_table,
    gaps_at_cost,
    outcome_points,
    summarize_finals,
    with_trajectories,
)
from fednot.analysis.registry import register_analysis
from fednot.benchmark.plots import tradeoff_chart
from fednot.benchmark.report import stop_rule_text
from fednot.benchmark.tradeoff import CurveRun, curves_json, pool_curves
from fednot.config import RunConfig
from fednot.errors import NegationWarning
from fednot.metrics.gaps import avg_gap
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
    """Run NoT per layer choice; plot the average gap against communication, per round."""
    config = with_trajectories(study.config)
    runs: list[CurveRun] = []
    finals: dict[str, list[dict[str, Any]]] = {}
    for seed in study.seeds:
        exp = study.experiment(seed, config)
        trained = exp.pretrain()
        request = exp.scenario.request
        retrain = exp.unlearn(trained, request, "retrain")
        reference = dict(exp.evaluate(retrain.state).values)
        ref_comm = retrain.costs.comm_bytes
        for label, layers in layer_variants(layer_graph(exp.model)).items():
            study.progress.phase(f"seed {seed}: NoT negating {label}")
            method = NoT(layers=layers, strict=False)
            with warnings.catch_warnings():  # outside NoT's theory on purpose; kept in the notes
                warnings.simplefilter("ignore", NegationWarning)
                outcome = exp.unlearn(trained, request, method, reference_costs=retrain.costs)
            metrics = dict(exp.evaluate(outcome.state).values)
            points = outcome_points(outcome)
            runs.append(CurveRun(label, points, reference, ref_comm))
            finals.setdefault(label, []).append(
                {
                    **metrics,
                    "avg_gap": avg_gap(metrics, reference),
                    "seed": seed,
                    "comm_bytes": outcome.costs.comm_bytes,
                    "comm_ratio": outcome.costs.comm_bytes / max(ref_comm, 1),
                    "rounds": len(outcome.log.rounds),
                    "gap_at": gaps_at_cost(points, reference, retrain.costs),
                    "warnings": outcome.notes.get("warnings", []),
                }
            )
    curves = pool_curves(runs)
    summary = {label: summarize_finals(rows) for label, rows in finals.items()}
    data = {"per_seed": finals, "summary": summary, "curves": curves_json(curves)}
    study.save_json("ablate_layers", data)
    tradeoff_chart(
        curves,
        {k: k for k in curves},
        study.path("ablate_layers.png"),
        subtitle=f"NoT per negated layer; {study.setting()}",
    )
    return study.write_markdown("ablate_layers", "Which layer to negate", _report(summary, config))


def _report(summary: dict[str, dict[str, Any]], config: RunConfig) -> str:
    lines = [
        "Each curve is NoT with one choice of negated layers, recovered by FedAvg on the retained "
        f"clients under the common rule ({stop_rule_text(config)}), evaluated after every "
        "round: the average gap to the same seed's Retrain against the communication spent "
        "(relative to Retrain's), mean and 95 % CI band over seeds. Lower and further left is "
        "better: closer to Retrain for less communication.",
        "",
        "![average gap against communication per negated layer](ablate_layers.png)",
        "",
        finals_table(summary, "negated"),
        "",
        "The NoT paper (Figure 4, ViT) finds the first layer best. Negating the output layer or "
        "several layers on one path is outside NoT's theory (Thm 4); they run here with "
        "`strict=False`, and their warnings are in the JSON.",
    ]
    return "\n".join(lines)
