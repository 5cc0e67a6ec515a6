"""Scores of an audit, and its files: audit.json, audit.md, audit.png."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fednot.audit.outputs import ModelOutputs
from fednot.benchmark.report import describe_setup
from fednot.benchmark.results import REFERENCE, json_safe
from fednot.config import RunConfig
from fednot.metrics.forgetting_quality import (
    EpsilonEstimate,
    bootstrap_interval,
    bucket_points,
    example_epsilons,
    resolvable_epsilon,
    utility_factor,
)
from fednot.seeding import derive_seed
from fednot.store.cache import atomic_write_text
from fednot.unlearning.base import Unlearner

RESAMPLES = 2000
"""Bootstrap resamples of the forgotten examples."""
_ACCURACIES = ("retain_acc", "forget_acc", "test_acc")


def _stack(models: Sequence[ModelOutputs]) -> np.ndarray:
    return np.stack([m.confidences for m in models])


def _mean(models: Sequence[ModelOutputs], key: str) -> float:
    return float(np.mean([getattr(m, key) for m in models]))


def _scored(
    estimate: EpsilonEstimate, generator: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    points = bucket_points(estimate.epsilons, estimate.n_unlearned)
    low, high = bootstrap_interval(points, generator, resamples=RESAMPLES)
    return points, {
        "score": float(points.mean()),
        "ci": [low, high],
        "median_epsilon": float(np.median(estimate.epsilons)),
        "unscored_examples": estimate.unscored,
        "epsilons": estimate.epsilons.tolist(),
    }


def score_methods(
    outputs: Mapping[str, Mapping[int, ModelOutputs]],
    methods: Mapping[str, Unlearner],
    models: int,
    seed: int,
) -> dict[str, Any]:
    """Every method's forgetting quality against the retrained models; audit.json's content.

    Each method is scored twice: its N unlearned models against the N retrained ones (the
    score), and its first N/2 against the second half of the retrained models, where Retrain's
    own first half against its second half gives the best score N/2 models can show.
    """
    generator = np.random.default_rng(derive_seed(seed, "audit", "bootstrap"))
    oracle = [outputs[REFERENCE][k] for k in range(models)]
    retrained = _stack(oracle)
    half = models // 2
    rows: list[dict[str, Any]] = []
    points: dict[str, np.ndarray] = {}
    reference = {key: _mean(oracle, key) for key in _ACCURACIES}
    first, second = oracle[:half], oracle[half : 2 * half]
    _, own = _scored(example_epsilons(_stack(first), _stack(second)), generator)
    rows.append(
        {
            "method": REFERENCE,
            "title": type(methods[REFERENCE]).title or REFERENCE,
            "models": models,
            "diverged": 0,
            "full": None,
            "half": own,
            **reference,
            "utility": utility_factor(
                _mean(first, "retain_acc"),
                _mean(second, "retain_acc"),
                _mean(first, "test_acc"),
                _mean(second, "test_acc"),
            ),
            "acc_gap": 0.0,
            "seconds": sum(m.seconds for m in oracle),
        }
    )
    for name, method in methods.items():
        if name == REFERENCE:
            continue
        sampled = [outputs[name][k] for k in range(models)]
        kept = [m for m in sampled if m.diverged is None]
        row: dict[str, Any] = {
            "method": name,
            "title": type(method).title or name,
            "models": len(kept),
            "diverged": len(sampled) - len(kept),
            "seconds": sum(m.seconds for m in sampled),
            "requirements": method.requirements.describe(),
        }
        if len(kept) < 3:
            rows.append({**row, "full": None, "half": None})
            continue
        method_points, full = _scored(example_epsilons(_stack(kept), retrained), generator)
        _, halved = _scored(example_epsilons(_stack(kept[:half]), _stack(second)), generator)
        accs = {key: _mean(kept, key) for key in _ACCURACIES}
        utility = utility_factor(
            accs["retain_acc"], reference["retain_acc"], accs["test_acc"], reference["test_acc"]
        )
        full["adjusted"] = full["score"] * utility
        full["adjusted_ci"] = [bound * utility for bound in full["ci"]]
        gap = float(np.mean([abs(accs[k] - reference[k]) for k in _ACCURACIES]))
        rows.append(
            {**row, "full": full, "half": halved, **accs, "utility": utility, "acc_gap": gap}
        )
        points[name] = method_points
    return {
        "models": models,
        "seed": seed,
        "half": half,
        "resolvable_epsilon": resolvable_epsilon(models),
        "bucket_limit": float(math.ceil(resolvable_epsilon(models))),
        "rows": rows,
        "pairs": _pairs(points, generator),
    }


def _pairs(
    points: Mapping[str, np.ndarray], generator: np.random.Generator
) -> list[dict[str, Any]]:
    """Paired bootstrap intervals of the score difference of every two methods."""
    pairs = []
    for a, b in itertools.combinations(points, 2):
        diff = points[a] - points[b]
        low, high = bootstrap_interval(diff, generator, resamples=RESAMPLES)
        pairs.append({"a": a, "b": b, "difference": float(diff.mean()), "ci": [low, high]})
    return pairs


def statements(report: Mapping[str, Any]) -> list[str]:
    """What the audit supports, in words: resolution, Retrain's ceiling, supported rankings."""
    n, half = report["models"], report["half"]
    titles = {row["method"]: row["title"] for row in report["rows"]}
    own = report["rows"][0]["half"]
    lines = [
        f"Each method is sampled {n} times; {n} models per side resolve ε up to about "
        f"ln({n - 1}) = {report['resolvable_epsilon']:.2f} (the score's buckets end at "
        f"{report['bucket_limit']:.0f}; a larger ε earns no points).",
        f"Retrain against itself ({half} vs {half} models) scores {own['score']:.3f} "
        f"[{own['ci'][0]:.3f}, {own['ci'][1]:.3f}]: the best any method can show at that size "
        "(compare the N/2 column, not 1).",
    ]
    for pair in report["pairs"]:
        a, b, (low, high) = titles[pair["a"]], titles[pair["b"]], pair["ci"]
        difference = pair["difference"]
        if high < 0:  # say it as the better one's advantage
            a, b, difference, low, high = b, a, -difference, -high, -low
        interval = f"Δ = {difference:+.3f} [{low:+.3f}, {high:+.3f}]"
        if low > 0:
            lines.append(f"{a} forgets better than {b} (score {a} − {b}): {interval}.")
        else:
            lines.append(f"{a} and {b} cannot be told apart (score {a} − {b}): {interval}.")
    lines.append(
        "Intervals: 95 % percentile bootstrap over the forgotten examples (paired for "
        "differences), with the models fixed; they do not include the variation of a new sample "
        "of models."
    )
    for row in report["rows"]:
        if row["diverged"]:
            lines.append(
                f"{row['title']}: {row['diverged']} of {n} models diverged and are left out."
            )
    return lines


def markdown(report: Mapping[str, Any], config: RunConfig) -> str:
    """audit.md: setup, the table, the statements."""
    n, half = report["models"], report["half"]

    def score(cell: Mapping[str, Any] | None, key: str = "score", ci: str = "ci") -> str:
        if cell is None:
            return "–"
        return f"{cell[key]:.3f} [{cell[ci][0]:.3f}, {cell[ci][1]:.3f}]"

    request = report["request"]
    seconds = report["seconds"]
    lines = [
        "# Forgetting-quality audit",
        "",
        describe_setup(config),
        "",
        f"Request: clients {request['clients']} ({request['kind']}-wise), "
        f"{report['forget_samples']} forgotten samples; data seed {report['seed']}; N = {n} "
        f"models per method, {report['jobs']} at a time, {report['threads_per_model']} torch "
        f"thread(s) each. Wall time {seconds['wall'] / 60:.1f} min: the original model "
        f"{seconds['original']:.0f} s, scoring {seconds['scoring']:.0f} s, the rest producing "
        "models (the time column sums each method's models; with several jobs they overlap).",
        "",
        f"| method | needs | forgetting quality (N = {n}) | × utility | at N/2 = {half} | "
        "median ε | retain | forget | test | acc. gap | models | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        accs = " | ".join(
            "–" if row.get(k) is None else f"{row[k]:.2f}" for k in (*_ACCURACIES, "acc_gap")
        )
        median = (
            "–" if row["half"] is None else f"{(row['full'] or row['half'])['median_epsilon']:.2f}"
        )
        lines.append(
            f"| {row['title']} | {row.get('requirements', 'none')} | {score(row['full'])} | "
            f"{score(row['full'], 'adjusted', 'adjusted_ci')} | {score(row['half'])} | "
            f"{median} | {accs} | {row['models']} | {row['seconds']:.0f} |"
        )
    lines += ["", *(f"- {s}" for s in statements(report)), ""]
    lines.append(
        "Forgetting quality: the NeurIPS 2023 Machine Unlearning Challenge's score (1 = every "
        "forgotten example indistinguishable from Retrain; docs/audit.md). Retrain's row: its "
        "first half of models against its second half. Acc. gap: mean |Δ| of the retain, forget "
        "and test accuracies to Retrain's means."
    )
    return "\n".join(lines) + "\n"


def write_reports(report: Mapping[str, Any], config: RunConfig, out: Path) -> None:
    """Write audit.json, audit.md and audit.png into ``out``."""
    text = json.dumps(json_safe(dict(report)), indent=1, allow_nan=False)
    atomic_write_text(text, out / "audit.json")
    atomic_write_text(markdown(report, config), out / "audit.md")
    from fednot.audit.figure import epsilon_chart

    epsilon_chart(report, out / "audit.png", subtitle=describe_setup(config, short=True))
