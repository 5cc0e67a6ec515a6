"""The Markdown report of a run: its setup in words, the table, and the chart."""

from __future__ import annotations

from typing import Any

from fednot.config import RunConfig
from fednot.results import markdown_table


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
    target = {None: "", "retrain": ", stop at Retrain's val. acc."}.get(
        u.target_val_acc,  # type: ignore[arg-type]
        f", stop at val. acc. {u.target_val_acc}%",
    )
    return (
        f"{head}. FedAvg: up to {t.rounds} rounds, {t.local_epochs} local "
        f"epoch(s), batch {t.batch_size}, {t.optimizer} lr {t.lr}. Recovery budget: "
        f"{u.recovery_rounds} rounds at lr {u.recovery_lr or t.lr}{target}."
    )


def scenario_text(config: RunConfig) -> str:
    """What is forgotten, in a few words."""
    s, who = config.scenario, f"clients {list(config.unlearn.forget_clients)}"
    scope = "every client" if s.class_scope == "federation" else who
    texts = {
        "client": f"{who} forgotten (client-wise)",
        "class": f"classes {list(s.classes)} of {scope} forgotten (class-wise)",
        "instance": f"{s.forget_ratio:.0%} of the training samples of {who} forgotten"
        + (f" (ids from {s.forget_ids})" if s.forget_ids else " (instance-wise)"),
        "backdoor": f"backdoor: client {config.unlearn.forget_clients[0]} stamps a "
        f"{s.trigger_size}x{s.trigger_size} trigger at {s.trigger_position} on "
        f"{s.poison_fraction:.0%} of its samples, relabelled {s.target_label}, and is forgotten",
        "centralized": "centralized: "
        + (f"classes {list(s.classes)}" if s.centralized_forget == "class"
           else f"a random {s.forget_ratio:.0%} of the training data") + " forgotten",
    }  # fmt: skip
    return texts[s.kind]


def report_markdown(
    config: RunConfig, summary: list[dict[str, Any]], not_applicable: dict[str, str] | None = None
) -> str:
    """``results.md``: a heading, the setup in one paragraph, the table and the chart."""
    notes = (
        "Cells: mean ± sample std over seeds (Δ = |mean − Retrain's mean|; no std for one "
        "seed). Avg. Gap = mean of the four Δ (lower is better). MIA: balanced loss attack, "
        "50 = indistinguishable. Comm.: bytes down + up of every tensor that travels, unlearning "
        "step plus recovery. Comp.: training FLOPs (torch.utils.flop_counter). Storage: history "
        "the server keeps for the method. Rounds to Retrain's val. acc.: first recovery round "
        "whose pooled retained-validation accuracy reaches Retrain's final one, per seed (— = "
        "not within the budget; Retrain: rounds from scratch). Needs: what the method requires "
        "beyond the global model."
    )
    return (
        f"# fednot results\n\n{describe_setup(config)}\n\n"
        f"{markdown_table(summary, not_applicable)}\n\n"
        f"{notes}\n\n![metrics and costs per method](results.png)\n"
    )
