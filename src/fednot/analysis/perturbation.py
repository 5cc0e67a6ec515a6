"""``fednot ablate perturbation``: negation against other perturbations (the NoT paper's Fig. 5).

Each perturbation of `fednot.unlearning.perturbations` is applied to the same layer (NoT's
selection: the first conv/linear layer, or ``options.not.layers``) of the pre-trained model,
then FedAvg fine-tunes on the retained clients for the run's full recovery budget (no early stop,
so every curve spans the same rounds; ``--param early_stop=true`` keeps the run's stop rule).
The average gap to Retrain is taken at round 0 and every ``max(1, budget // 15)`` rounds, on the
curve subsets (Retrain evaluated on the same subsets); the table's final values use the full sets.
The paper's finding: negation has the lowest gap; re-initialisation and noise behave like FT (no
perturbation); flips and rotations improve slightly on FT but stay behind negation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from fednot.analysis.common import Study, pyplot
from fednot.analysis.registry import register_analysis
from fednot.benchmark.evaluation import curve_point
from fednot.benchmark.stats import mean_ci, paired_ci
from fednot.config import RunConfig
from fednot.errors import ConfigError
from fednot.federation.outcome import UnlearnOutcome
from fednot.metrics.gaps import GAP_METRICS, avg_gap
from fednot.unlearning.perturbations import (
    PERTURBATIONS,
    Kind,
    Perturb,
    describe,
    perturbation_targets,
)

DEFAULT_KINDS = "negate,noise,reinit,flip,rot90,none"
Curve = list[tuple[int, float]]
RECOVERY = "mean gap over the recovery rounds (round 0 excluded)"


def parse_kinds(text: str) -> tuple[Kind, ...]:
    """Perturbation names from a comma-separated list, in order, without duplicates."""
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in PERTURBATIONS]
    if unknown or not kinds:
        raise ConfigError(
            f"Unknown perturbations {unknown} in --param kinds={text!r}. "
            f"Known: {', '.join(PERTURBATIONS)}."
        )
    return tuple(cast(Kind, k) for k in kinds)


def gap_curve(
    points: Sequence[tuple[int, Mapping[str, float]]], reference: Mapping[str, float]
) -> Curve:
    """(round, average gap) for each curve point that has all four metrics."""
    return [(r, avg_gap(p, reference)) for r, p in points if all(m in p for m in GAP_METRICS)]


def mean_band(curves: Sequence[Curve]) -> tuple[list[int], list[float], list[float]]:
    """Rounds present in every curve, the mean there and its 95 % CI half-width (NaN: 1 seed)."""
    common = sorted(set.intersection(*(set(dict(c)) for c in curves))) if curves else []
    stats = [mean_ci([dict(c)[r] for c in curves]) for r in common]
    return common, [i.mean for i in stats], [i.half_width for i in stats]


def _points(outcome: UnlearnOutcome) -> list[tuple[int, dict[str, float]]]:
    """Round 0 (right after the perturbation), then every recovery round with a curve point."""
    rest = [(r.round, dict(r.extra)) for r in outcome.log.rounds if r.extra]
    return [(0, dict(outcome.start)), *rest]


def _layer_spec(study: Study) -> tuple[str | tuple[str, ...], bool]:
    """NoT's layer selection (``options.not``), or ``--param layers=a,b``; and negate_bias."""
    options = study.config.options.get("not") or {}
    layers = options.get("layers", "first")
    if "layers" in study.options:
        layers = [n.strip() for n in study.options["layers"].split(",") if n.strip()]
    if isinstance(layers, list | tuple):
        layers = layers[0] if len(layers) == 1 else tuple(layers)
    return layers, bool(options.get("negate_bias", False))


@dataclass
class _Results:
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    retrain: list[dict[str, float]] = field(default_factory=list)
    retrain_curve: list[dict[str, float]] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    budget: int = 0


@register_analysis("ablate", "perturbation")
def ablate_perturbation(study: Study) -> Path:
    """Run each perturbation of the same layer with recovery; plot the gap against rounds."""
    kinds = parse_kinds(study.option("kinds", DEFAULT_KINDS))
    early = study.option("early_stop", "false").lower() in ("1", "true", "yes")
    budget = study.config.unlearn.recovery_rounds
    every = max(1, budget // 15)
    unlearn = study.config.unlearn
    if not early:
        unlearn = replace(unlearn, target_val_acc=None, recovery_patience=None)
    evaluation = replace(study.config.eval, curve_every=every)
    config = replace(study.config, eval=evaluation, unlearn=unlearn)
    layers, negate_bias = _layer_spec(study)
    results = _Results(budget=budget)
    for seed in study.seeds:
        _run_seed(study, seed, config, kinds, (layers, negate_bias), results)
    summary = _summarize(results.runs)
    study.save_json(
        "ablate_perturbation",
        {
            "kinds": list(kinds),
            "layers": results.layers,
            "negate_bias": negate_bias,
            "recovery_rounds": budget,
            "curve_every": every,
            "early_stop": early,
            "retrain": results.retrain,
            "retrain_curve_reference": results.retrain_curve,
            "runs": results.runs,
            "summary": summary,
            "skipped": results.skipped,
        },
    )
    _plot(study, results)
    retrain = {m: mean_ci([r[m] for r in results.retrain]).mean for m in GAP_METRICS}
    body = _report(summary, retrain, results.skipped, every)
    title = "Which perturbation: negation or another?"
    return study.write_markdown("ablate_perturbation", title, body)


def _run_seed(
    study: Study,
    seed: int,
    config: RunConfig,
    kinds: tuple[Kind, ...],
    selection: tuple[str | tuple[str, ...], bool],
    results: _Results,
) -> None:
    """Pre-train, Retrain, then every applicable perturbation with recovery, for one seed."""
    layers, negate_bias = selection
    base = study.experiment(seed)
    trained = base.pretrain()
    retrain = base.unlearn(trained, base.scenario.request, "retrain")
    reference = dict(base.evaluate(retrain.state).values)
    results.retrain.append(reference)
    exp = study.experiment(seed, config)
    request = exp.scenario.request
    ref_point = curve_point(
        exp.model,
        retrain.state,
        exp.split(request),
        exp.federation,
        exp.streams,
        config.eval,
        device=exp.device,
    )
    results.retrain_curve.append(ref_point)
    chosen, _ = perturbation_targets(exp.model, layers, negate_bias=negate_bias)
    results.layers = [layer.name for layer in chosen]
    for kind in kinds:
        if kind in results.skipped:
            continue
        method = Perturb(kind=kind, layers=layers, negate_bias=negate_bias)
        try:
            method.validate(exp.model)
        except ConfigError as e:
            results.skipped[kind] = str(e)
            study.progress.info(f"skipping {kind}: {e}")
            continue
        study.progress.phase(f"seed {seed}: {describe(kind)} of {', '.join(results.layers)}")
        outcome = exp.unlearn(trained, request, method)
        points = _points(outcome)
        final = dict(exp.evaluate(outcome.state).values)
        results.runs.setdefault(kind, []).append(
            {
                "seed": seed,
                "final": final,
                "final_avg_gap": avg_gap(final, reference),
                "rounds": len(outcome.log.rounds),
                "stop_reason": outcome.log.stop_reason,
                "seconds": outcome.costs.seconds,
                "curve": [{"round": r, **p} for r, p in points],
                "gap_curve": gap_curve(points, ref_point),
                "notes": outcome.notes,
            }
        )


def _recovery_gap(run: Mapping[str, Any]) -> float:
    gaps = [g for n, g in run["gap_curve"] if n > 0]
    return sum(gaps) / len(gaps) if gaps else float("nan")


def _summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per perturbation: means over seeds with 95 % CI half-widths, and paired differences.

    ``<key>_hw`` is the half-width; ``<key>_vs_negate`` (with ``_low`` and ``_high``) is the
    per-seed difference of each gap to negation's, with its 95 % CI.
    """
    out: dict[str, dict[str, float]] = {}
    negate = {r["seed"]: r for r in runs.get("negate", [])}
    for kind, seeds in runs.items():
        values = {
            "final_avg_gap": [r["final_avg_gap"] for r in seeds],
            "recovery_gap": [_recovery_gap(r) for r in seeds],
            "rounds": [float(r["rounds"]) for r in seeds],
            **{m: [r["final"][m] for r in seeds] for m in GAP_METRICS},
        }
        out[kind] = {}
        for key, vals in values.items():
            interval = mean_ci(vals)
            out[kind][key], out[kind][f"{key}_hw"] = interval.mean, interval.half_width
        paired = [r for r in seeds if r["seed"] in negate]
        if kind != "negate" and len(paired) >= 2:
            for key, value in (
                ("final_avg_gap", lambda r: r["final_avg_gap"]),
                ("recovery_gap", _recovery_gap),
            ):
                diff = paired_ci(
                    [value(r) for r in paired], [value(negate[r["seed"]]) for r in paired]
                )
                out[kind][f"{key}_vs_negate"] = diff.mean
                out[kind][f"{key}_vs_negate_low"] = diff.low
                out[kind][f"{key}_vs_negate_high"] = diff.high
    return out


def _series(run: dict[str, Any], key: str, first: int = 0) -> Curve:
    """One run's curve of ``key`` (``avg_gap`` or a metric) from round ``first`` on."""
    if key == "avg_gap":
        return [(r, g) for r, g in run["gap_curve"] if r >= first]
    return [(int(p["round"]), p[key]) for p in run["curve"] if key in p and p["round"] >= first]


PANELS = (
    ("avg_gap", 0, "average gap to Retrain (pp)", "average gap to Retrain (lower is better)"),
    ("avg_gap", 1, "average gap to Retrain (pp)", "the same, from round 1 (zoom)"),
    ("forget_acc", 0, "forget accuracy (%)", "forget accuracy"),
    ("test_acc", 0, "test accuracy (%)", "test accuracy"),
)


def _plot(study: Study, results: _Results) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    colors = plt.get_cmap("tab10")
    band = len(study.seeds) > 1
    for axis, (key, first, ylabel, title) in zip(axes.flat, PANELS, strict=True):
        for i, (kind, seeds) in enumerate(results.runs.items()):
            color = colors(i % 10)
            rounds, mean, half = mean_band([_series(r, key, first) for r in seeds])
            axis.plot(
                rounds,
                mean,
                color=color,
                lw=2.6 if kind == "negate" else 1.6,
                marker="o",
                ms=3,
                label=f"{kind}: {describe(kind)}",
            )
            if band:
                low = [m - h for m, h in zip(mean, half, strict=True)]
                high = [m + h for m, h in zip(mean, half, strict=True)]
                axis.fill_between(rounds, low, high, color=color, alpha=0.15)
        if key != "avg_gap":
            value = mean_ci([r[key] for r in results.retrain]).mean
            label = f"Retrain, final ({value:.1f}%)"
            axis.axhline(value, color="black", ls="--", lw=1.2, label=label)
            axis.legend(handles=axis.get_lines()[-1:], fontsize=8)
        axis.locator_params(axis="x", integer=True)
        axis.set(xlabel="fine-tuning (recovery) rounds", ylabel=ylabel)
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    spread = "; mean and 95 % CI band over seeds" if band else ""
    layers = ", ".join(results.layers)
    heading = f"Perturbation of {layers}, then {results.budget} rounds of FedAvg recovery{spread}"
    figure.suptitle(f"{heading}\n{study.setting()}", fontsize=11)
    study.save_figure(figure, "ablate_perturbation")


def _report(
    summary: dict[str, dict[str, float]],
    retrain: dict[str, float],
    skipped: dict[str, str],
    every: int,
) -> str:
    often = "after every round" if every == 1 else f"every {every} rounds"
    lines = [
        "The chosen layer of the pre-trained model is perturbed in each way below, then FedAvg "
        "fine-tunes it on the retained clients. The top panels show the average gap to Retrain "
        "(mean of |Δ| over retain, forget and test accuracy and MIA, in percentage points) at "
        f"round 0 (right after the perturbation) and {often}, on the seeded curve "
        "subsets; the top right panel leaves out round 0 so that the recovery rounds can be "
        "told apart. The bottom panels show forget and test accuracy, with Retrain's final "
        "values as dashed lines. A curve that drops fast and stays low unlearns like Retrain "
        "at little cost.",
        "",
        "![average gap and forget accuracy against fine-tuning rounds](ablate_perturbation.png)",
        "",
        "| perturbation | final avg. gap (pp) | mean gap over recovery (pp) | forget acc. (%) "
        "| test acc. (%) | rounds |",
        "|---|---|---|---|---|---|",
    ]
    for kind, row in sorted(summary.items(), key=lambda item: item[1]["final_avg_gap"]):
        lines.append(
            f"| {kind}: {describe(kind)} | {_pm(row, 'final_avg_gap')} | "
            f"{_pm(row, 'recovery_gap')} | {row['forget_acc']:.2f} | {row['test_acc']:.2f} | "
            f"{row['rounds']:.0f} |"
        )
    lines += [
        f"| Retrain (the reference) | 0 | 0 | {retrain['forget_acc']:.2f} | "
        f"{retrain['test_acc']:.2f} | – |",
        "",
        "Cells: mean ± half-width of the 95 % Student-t CI over seeds. Final values use the full "
        "sets; rows are sorted by final average gap (a sort, not a ranking: see the paired "
        "differences below).",
    ]
    if skipped:
        lines += ["", "Not applicable to this model (skipped):", ""]
        lines += [f"- `{kind}`: {reason}" for kind, reason in skipped.items()]
    lines += ["", *_paired_lines(summary)]
    lines += [
        "",
        "**Against the paper's Figure 5** (ViT `conv_proj`): negation should give the lowest "
        "gap; re-initialisation and noise should track `none` (FT), since they destroy the "
        "layer's weights rather than keep them in a state from which training recovers; flips "
        "and rotations, which keep each kernel's weights up to a permutation, should sit between "
        "FT and negation. On a small model the differences can be within the seed spread: judge "
        "them against the band (several seeds) or the ± column.",
    ]
    return "\n".join(lines)


def _pm(row: Mapping[str, float], key: str) -> str:
    half = row[f"{key}_hw"]
    return f"{row[key]:.2f}" if half != half else f"{row[key]:.2f} ± {half:.2f}"


def _paired_lines(summary: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Each perturbation against negation, seed by seed, stated only where the CI allows."""
    if "negate" not in summary:
        return []
    lines = []
    for key, what in (("final_avg_gap", "final average gap"), ("recovery_gap", RECOVERY)):
        parts = []
        for kind, row in summary.items():
            if f"{key}_vs_negate" not in row:
                continue
            mean, low, high = (row[f"{key}_vs_negate{s}"] for s in ("", "_low", "_high"))
            verdict = (
                "higher than negation's"
                if low > 0
                else "lower than negation's"
                if high < 0
                else "not distinguishable from negation's"
            )
            parts.append(f"`{kind}` {verdict} ({mean:+.2f}, 95 % CI [{low:+.2f}, {high:+.2f}])")
        if parts:
            lines.append(f"- By {what}, paired by seed: " + "; ".join(parts) + ".")
    if not lines:
        return ["With one seed no difference to negation can be stated; add seeds."]
    return ["Differences to negation (perturbation − negation, per seed):", "", *lines]
