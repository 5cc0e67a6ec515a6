"""The Markdown report of a run and the summary ``fednot run`` prints at its end.

The report: its setup in words, the tables, statements, warnings and figures; the terminal
summary is `fednot.cli.terminal`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fednot.benchmark.caveats import caveats
from fednot.benchmark.scenarios import scenario_definition
from fednot.benchmark.statements import EXCLUDED, paired_table, seed_count, statements
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tables import (
    BELOW_NOISE,
    BEYOND,
    INEXACT,
    NOT_DISTINGUISHABLE,
    main_table,
    noise_floor,
)
from fednot.config import RunConfig


def describe_setup(config: RunConfig, *, short: bool = False) -> str:
    """The run's setup in one sentence (``short``: for a figure's subtitle)."""
    d, t, u = config.data, config.train, config.unlearn
    alpha = f", alpha={d.alpha}" if d.partition == "dirichlet" else ""
    head = (
        f"{d.dataset} / {config.model.name}, {d.num_clients} clients ({d.partition}{alpha}), "
        f"{scenario_text(config)}, seeds {list(config.seeds)}"
    )
    if short:
        return head
    return (
        f"{head}. FedAvg: up to {t.rounds} rounds, {t.local_epochs} local "
        f"epoch(s), batch {t.batch_size}, {t.optimizer} lr {t.lr}. Recovery, the same rule for "
        f"every method: {stop_rule_text(config)}, lr {u.recovery_lr or t.lr}{_own_lr(config)}."
    )


def _own_lr(config: RunConfig) -> str:
    """The methods' own recovery learning rates (``unlearn.method_recovery_lr``), in words."""
    own = config.unlearn.method_recovery_lr
    if not own:
        return ""
    return " (its own for " + ", ".join(f"{m}: {lr:g}" for m, lr in own.items()) + ")"


def tuned_values(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Method -> the values ``fednot tune`` chose for it (`RunConfig.tuned_values`)."""
    return {method: config.tuned_values(method) for method in config.tuned}


def stop_rule_text(config: RunConfig) -> str:
    """The recovery stop rule in words."""
    u = config.unlearn
    text = f"a budget of {u.recovery_rounds} rounds"
    if u.recovery_patience is not None:
        text += f", or earlier after {u.recovery_patience} rounds without validation gain"
    if u.target_val_acc == "original":
        margin = f" minus {u.target_margin} points" if u.target_margin else ""
        text += f", or earlier at the original model's retained-validation accuracy{margin}"
    elif u.target_val_acc == "retrain":
        text += ", or earlier at Retrain's final validation accuracy (an oracle rule)"
    elif u.target_val_acc is not None:
        text += f", or earlier at {u.target_val_acc}% retained-validation accuracy"
    return text


def scenario_text(config: RunConfig) -> str:
    """What is forgotten, in a few words (the scenario kind's own wording)."""
    definition = scenario_definition(config.scenario.kind)
    return definition.describe(config.scenario, tuple(config.unlearn.forget_clients))


def report_markdown(
    config: RunConfig,
    summary: Sequence[MethodSummary],
    not_applicable: Mapping[str, str] | None = None,
) -> str:
    """``results.md``: the setup, the table, the paired comparisons, statements and figures."""
    floor = noise_floor(summary)
    seeds = len(config.seeds)
    floor_text = (
        "not computed (eval.mia_null_permutations = 0)"
        if floor is None
        else f"a no-signal attack of the same size and averaging lands within 50 ± {floor:.2f} "
        "points in 95 % of permutations"
    )
    notes = (
        f"Cells: mean ± half-width of the 95 % Student-t CI over {seeds} seeds (no interval for "
        "one seed); in brackets the signed Δ to Retrain, the mean of per-seed differences "
        "(each seed against its own Retrain). Avg. gap: mean over seeds of the per-seed mean "
        "of the four |Δ| of retain, forget and test accuracy and the loss MIA (lower is "
        "better). Retrain′: Retrain's recipe from another training seed; its gap is what "
        "retraining itself scores, the floor of every gap. Gap @x % comm. (FLOPs): the average "
        "gap of the model after the last round whose cumulative communication (training FLOPs), "
        "the method's step included, is at most x % of the same seed's Retrain, against "
        "Retrain's final model measured on the same samples; "
        f"{BEYOND}: the method's run ended before that cost, so its final model is read; "
        f"{INEXACT}: the evaluation grid skipped that round (older logs), an earlier round is "
        "read; —: the step alone costs more. MIA: balanced loss attack, 50 = "
        f"indistinguishable, averaged over {config.eval.mia_repeats} draws; noise floor: "
        f"{floor_text}; {BELOW_NOISE}: |Δ| below the attack's floor. Conf. AUC and TPR @1 % "
        "FPR: the attack on the true class's logit-scaled confidence, calibrated per class on "
        "the non-members (docs/metrics.md); AUC 50 and TPR 1 are chance. "
        "Comm./FLOPs / Retrain: the unlearning step plus recovery, relative to the same seed's "
        "Retrain. Storage: history the server keeps for the method. Oracle column: the first "
        "recovery round whose retained-validation accuracy reaches Retrain's final one, per "
        "seed (— = not within the budget; Retrain: rounds from scratch); no method stops on it. "
        "Needs: what the method requires beyond the global model."
    )
    paired = paired_table(summary) if seed_count(summary) >= 2 else ""
    paired_part = (
        "## Paired differences in average gap\n\n"
        "Per reference (NoT, FT, Retrain′), each method's per-seed average gap minus the "
        "reference's (negative: closer to Retrain than the reference), mean and 95 % CI over "
        "the same seeds, with the paired t-test's p, the exact sign-flip test's p and, in a "
        "primary family (the end of the budget and 50 % of Retrain's communication against "
        "NoT and FT; the end against Retrain′: docs/protocol.md), the Holm-adjusted p. "
        "The exact test cannot go below 2^(1−n) with n seeds: it needs 6 seeds to reach 0.05. "
        f"{NOT_DISTINGUISHABLE}: no ranking (exploratory, or Holm p ≥ 0.05); {EXCLUDED}: not "
        f"tested, a side's run ended before that cost or was not read at its last round.\n\n"
        f"{paired}\n\n"
        if paired
        else ""
    )
    warnings = caveats(summary)
    warnings_part = (
        "## Warnings\n\n" + "\n".join(c.line() for c in warnings) + "\n\n" if warnings else ""
    )
    return (
        f"# fednot results\n\n{describe_setup(config)}\n\n{warnings_part}"
        f"{main_table(summary, not_applicable, tuned_values(config))}\n\n{notes}\n\n{paired_part}"
        "## What the numbers support\n\n"
        f"{statements(summary, config.unlearn.recovery_rounds)}\n\n"
        "## Figures\n\n"
        "Each figure is also written as SVG beside its PNG (results.svg, tradeoff.svg).\n\n"
        "![each metric's difference to Retrain with 95 % CIs](results.png)\n\n"
        "![average gap against communication relative to Retrain](tradeoff.png)\n"
    )
