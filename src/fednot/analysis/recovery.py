"""``fednot analyze recovery``: the four metrics per fine-tuning round for NoT, FT and Retrain.

Every method's curve starts at round 0 (right after its own step; Retrain: its initial weights)
and has a point after every round, measured as in the final table (docs/metrics.md,
"Trajectories"; full sets unless ``eval.curve_subset`` is set). The report
also gives the rounds NoT needs to come within ``--param within=1.0`` percentage points of
Retrain's final test accuracy, and what those rounds cost, next to FT and Retrain itself.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from fednot.analysis.common import Study, pyplot
from fednot.analysis.registry import register_analysis
from fednot.errors import ConfigError
from fednot.federation.outcome import UnlearnOutcome
from fednot.metrics.gaps import GAP_METRICS, mean_std

METHODS = ("not", "ft", "retrain")
TITLES = {"not": "NoT", "ft": "FT", "retrain": "Retrain"}
LABELS = {
    "retain_acc": "retain accuracy (%)",
    "forget_acc": "forget accuracy (%)",
    "test_acc": "test accuracy (%)",
    "mia": "MIA (%, 50 = indistinguishable)",
}


def curve(outcome: UnlearnOutcome) -> list[dict[str, float]]:
    """(round, metrics) points: round 0, then every round that has a curve point."""
    points = [
        {
            "round": 0.0,
            "comm_bytes": float(outcome.step_costs.comm_bytes),
            "flops": float(outcome.step_costs.flops),
            **outcome.start,
        }
    ]
    comm, flops = outcome.step_costs.comm_bytes, outcome.step_costs.flops
    for record in outcome.log.rounds:
        comm, flops = comm + record.comm_bytes, flops + record.flops
        if record.extra:
            points.append(
                {
                    "round": float(record.round),
                    "comm_bytes": float(comm),
                    "flops": float(flops),
                    **record.extra,
                }
            )
    return points


def rounds_within(points: list[dict[str, float]], target: float, within: float) -> dict[str, Any]:
    """The first point whose test accuracy is within ``within`` pp of ``target``, and its cost."""
    for point in points:
        if point.get("test_acc", -1.0) >= target - within:
            return {
                "round": int(point["round"]),
                "comm_bytes": point["comm_bytes"],
                "flops": point["flops"],
            }
    return {"round": None, "comm_bytes": None, "flops": None}


@register_analysis("analyze", "recovery")
def analyze_recovery(study: Study) -> Path:
    """Curves of NoT, FT and Retrain; rounds and cost to come close to Retrain's test accuracy."""
    try:
        within = float(study.option("within", "1.0"))
    except ValueError as e:
        raise ConfigError("Expected --param within=<percentage points>, e.g. 1.0.") from e
    config = replace(study.config, eval=replace(study.config.eval, curve_every=1))
    curves: dict[str, list[list[dict[str, float]]]] = {m: [] for m in METHODS}
    reached: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    for seed in study.seeds:
        exp = study.experiment(seed, config)
        trained = exp.pretrain()
        request = exp.scenario.request
        outcomes = {m: exp.unlearn(trained, request, m) for m in reversed(METHODS)}
        target = exp.evaluate(outcomes["retrain"].state).test_acc
        for method, outcome in outcomes.items():
            points = curve(outcome)
            curves[method].append(points)
            reached[method].append(
                {"seed": seed, "target_test_acc": target, **rounds_within(points, target, within)}
            )
    study.save_json("analyze_recovery", {"within_pp": within, "curves": curves, "reached": reached})
    _plot(study, curves)
    return study.write_markdown("analyze_recovery", "Recovery curves", _report(reached, within))


def _plot(study: Study, curves: dict[str, list[list[dict[str, float]]]]) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    for axis, metric in zip(axes.flat, GAP_METRICS, strict=True):
        for method, runs in curves.items():
            rounds = [p["round"] for p in runs[0] if metric in p]
            values = [[p[metric] for p in run if metric in p] for run in runs]
            length = min(len(v) for v in values)
            means = [mean_std([v[i] for v in values])[0] for i in range(length)]
            axis.plot(
                rounds[:length],
                means,
                label=TITLES[method],
                linestyle="--" if method == "retrain" else "-",
            )
        axis.set_xlabel("round (fine-tuning for NoT and FT; training for Retrain)")
        axis.set_ylabel(LABELS[metric])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"Recovery: metrics per round (subsets; mean over seeds)\n{study.setting()}", fontsize=10
    )
    study.save_figure(figure, "analyze_recovery")


def _report(reached: dict[str, list[dict[str, Any]]], within: float) -> str:
    lines = [
        "Retain, forget and test accuracy and the MIA after every round, on seeded subsets "
        "(at most `eval.curve_subset` samples per set). Round 0 is the model right after the "
        "method's step: NoT's negated model, FT's unchanged original, Retrain's initial weights.",
        "",
        "![metrics per round](analyze_recovery.png)",
        "",
        f"Rounds to come within {within} pp of Retrain's final test accuracy, and their cost:",
        "",
        "| method | seed | target test acc. | rounds | comm. (bytes) | FLOPs |",
        "|---|---|---|---|---|---|",
    ]
    for method, rows in reached.items():
        for row in rows:
            comm = "—" if row["comm_bytes"] is None else f"{row['comm_bytes']:.2e}"
            flops = "—" if row["flops"] is None else f"{row['flops']:.2e}"
            rounds = "not reached" if row["round"] is None else str(row["round"])
            lines.append(
                f"| {TITLES[method]} | {row['seed']} | {row['target_test_acc']:.2f} | {rounds} "
                f"| {comm} | {flops} |"
            )
    return "\n".join(lines)
