"""``fednot analyze cka``: linear CKA per layer between models (the NoT paper's Figure 3).

Per seed, the pre-trained model θ* ("original") is compared layer by layer with NoT right after
negation (NoT@τ:0) and after recovery (NoT@τ:-1), with FT after recovery and with Retrain; NoT and
FT after recovery are also compared with Retrain. The control pair of the paper is
(−θ_ℓ) ⊕ R against (+θ_ℓ) ⊕ R: the negated layer ℓ taken from θ*, negated or kept, and every
other tensor from one random initialisation R (one fixed seed for both) (docs/not.md,
"CKA analysis").

Activations are taken on ``--param samples=1000`` seeded test images, preprocessed without
augmentation, with the model in eval mode, by forward hooks at (rule ours):

- the output of each negated layer (a conv or linear module: its pre-activation);
- the output of every top-level child module that holds parameters (CNN: ``block1``, ``block2``,
  ``fc``; ResNet-18: ``conv1``, ``bn1``, ``layer1`` … ``layer4``, ``fc``; ViT: ``conv_proj``,
  ``encoder``, ``heads``; MLP: ``fc1``, ``fc2``, …). Parameter-free children (activations,
  pooling, flattening) only re-map a neighbour's output and are skipped.

Columns are ordered as the hooks first fire (computation order). Every cell is computed in the
n×n Gram form in float64 (`fednot.metrics.cka`), so each model's representation is computed once.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fednot.analysis.common import Study, pyplot
from fednot.analysis.registry import register_analysis
from fednot.errors import ConfigError
from fednot.metrics.cka import cka_from_grams, layer_grams
from fednot.metrics.gaps import mean_std
from fednot.models.registry import create_model
from fednot.types import StateDict
from fednot.unlearning.negation import NoT, negate, negation_targets

ORIGINAL, NOT0, NOT, FT, RETRAIN, NEG, KEPT = (
    "original",
    "not@0",
    "not",
    "ft",
    "retrain",
    "control_negated",
    "control_kept",
)
ROWS: tuple[tuple[str, str, str], ...] = (
    ("NoT@τ:0 vs original", NOT0, ORIGINAL),
    ("NoT@τ:-1 vs original", NOT, ORIGINAL),
    ("FT@τ:-1 vs original", FT, ORIGINAL),
    ("Retrain vs original", RETRAIN, ORIGINAL),
    ("NoT@τ:-1 vs Retrain", NOT, RETRAIN),
    ("FT@τ:-1 vs Retrain", FT, RETRAIN),
    ("control: (−θ_ℓ)⊕R vs (θ_ℓ)⊕R", NEG, KEPT),
)
"""Heatmap rows: (label, model, model compared with)."""
_ORDER = (3, 0, 2, 5, 1, 4, 6)  # rows in computing order: at most three models' Grams held
Grams = dict[str, Tensor]
Table = dict[str, dict[str, float]]
Meta = dict[str, Any]


def probe_layers(model: nn.Module, negated: Sequence[str]) -> tuple[str, ...]:
    """Modules whose outputs are compared: the negated modules, then top-level children.

    Negated layers that are bare parameters (e.g. a position embedding) have no module output
    and are left out; so are top-level children without parameters.
    """
    modules = dict(model.named_modules())
    names = [name for name in negated if name in modules]
    names += [n for n, c in model.named_children() if any(True for _ in c.parameters())]
    return tuple(dict.fromkeys(names))


def control_pair(
    original: StateDict, random: StateDict, layer_params: Sequence[str], targets: Sequence[str]
) -> tuple[StateDict, StateDict]:
    """(−θ_ℓ) ⊕ R and (θ_ℓ) ⊕ R: ``layer_params`` from ``original``, the rest from ``random``.

    In the first of the pair, ``targets`` (the tensors NoT negates) are negated.
    """
    kept = {**random, **{name: original[name].clone() for name in layer_params}}
    return negate(kept, targets), kept


def compare(
    rows: Sequence[tuple[str, str, str]], grams_of: Callable[[str], Grams], order: Sequence[int]
) -> dict[str, dict[str, float]]:
    """CKA per row and layer; each model's Grams are computed once and dropped when unused."""
    uses = Counter(model for i in order for model in rows[i][1:])
    held: dict[str, Grams] = {}
    values: dict[str, dict[str, float]] = {}
    for i in order:
        label, a, b = rows[i]
        for model in (a, b):
            if model not in held:
                held[model] = grams_of(model)
        values[label] = {col: cka_from_grams(held[a][col], held[b][col]) for col in held[a]}
        for model in (a, b):
            uses[model] -= 1
            if uses[model] == 0:
                del held[model]
    return {label: values[label] for label, _, _ in rows if label in values}


def _seed(study: Study, seed: int, samples: int) -> tuple[dict[str, dict[str, float]], Meta]:
    exp = study.experiment(seed)
    trained = exp.pretrain()
    request = exp.scenario.request
    method = NoT(**study.config.options.get("not", {}))
    _, layers = method.resolve(exp.model)
    targets = negation_targets(layers, negate_bias=method.negate_bias)
    retrain = exp.unlearn(trained, request, "retrain")
    needs = study.config.unlearn.target_val_acc == "retrain"
    reference = exp.evaluate(retrain.state).val_acc if needs else None
    states = {ORIGINAL: trained.state, NOT0: negate(trained.state, targets), RETRAIN: retrain.state}
    for key, name in ((NOT, method), (FT, "ft")):
        states[key] = exp.unlearn(trained, request, name, reference_val_acc=reference).state
    fixed = exp.streams.seed_for("cka", "control")
    random = create_model(
        study.config.model.name,
        input_shape=exp.federation.input_shape,
        num_classes=exp.federation.num_classes,
        options=study.config.model.options,
        generator=torch.Generator().manual_seed(fixed),
    ).state_dict()
    params = [p for layer in layers for p in layer.parameters]
    states[NEG], states[KEPT] = control_pair(trained.state, random, params, targets)
    model = copy.deepcopy(exp.model)
    names = probe_layers(model, [layer.name for layer in layers])
    data = exp.federation.test.subsample(samples, exp.streams.torch("cka"))
    preprocess = exp.federation.preprocess
    study.progress.phase(f"seed {seed}: CKA on {len(data)} test images at {', '.join(names)}")

    def grams_of(key: str) -> Grams:
        study.progress.info(f"activations of {key}")
        batches = (preprocess(x) for x, _ in data.batches(study.config.eval.batch_size))
        return layer_grams(model, states[key], batches, names, device=exp.device)

    meta: Meta = {"negated_layers": [layer.name for layer in layers], "samples": len(data)}
    return compare(ROWS, grams_of, _ORDER), meta


@register_analysis("analyze", "cka")
def analyze_cka(study: Study) -> Path:
    """Heatmap of linear CKA per layer and model pair, its numbers (JSON) and a report."""
    try:
        samples = int(study.option("samples", "1000"))
    except ValueError as e:
        raise ConfigError("Expected --param samples=<number of test images>, e.g. 1000.") from e
    if samples < 2:
        raise ConfigError(f"CKA needs at least 2 samples, got samples={samples}.")
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    meta: Meta = {}
    for seed in study.seeds:
        per_seed[str(seed)], meta = _seed(study, seed, samples)
    runs = list(per_seed.values())
    columns = list(next(iter(runs[0].values())))
    stats = {row: {c: mean_std([run[row][c] for run in runs]) for c in columns} for row in runs[0]}
    mean = {row: {c: v[0] for c, v in cells.items()} for row, cells in stats.items()}
    std = {row: {c: v[1] for c, v in cells.items()} for row, cells in stats.items()}
    meta["seeds"] = len(runs)
    data = {
        "rows": list(mean),
        "columns": columns,
        **meta,
        "mean": _clean(mean),
        "std": _clean(std),
        "per_seed": _clean(per_seed),
    }
    study.save_json("analyze_cka", data)
    _plot(study, mean, columns, meta)
    title = "Linear CKA between models, per layer (paper Fig. 3)"
    return study.write_markdown("analyze_cka", title, _report(mean, std, columns, meta))


def _clean(value: Any) -> Any:
    """NaN (undefined CKA of a constant representation) as JSON null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def _tick(column: str, negated: Sequence[str]) -> str:
    return f"{column}*" if column in negated else column


def _plot(study: Study, mean: dict[str, dict[str, float]], columns: list[str], meta: Meta) -> None:
    plt = pyplot()
    rows = list(mean)
    values = np.array([[mean[r][c] for c in columns] for r in rows], dtype=float)
    figure, axis = plt.subplots(
        figsize=(max(7.0, 4.5 + 1.3 * len(columns)), max(4.5, 2.5 + 0.55 * len(rows)))
    )
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    image = axis.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        text = "n/a" if math.isnan(v) else f"{v:.3f}"
        colour = "white" if v < 0.6 else "black"
        axis.text(j, i, text, ha="center", va="center", color=colour, fontsize=10)
    for boundary in (3.5, 5.5):  # vs original | vs Retrain | control
        axis.axhline(boundary, color="white", linewidth=3)
    ticks = [_tick(c, meta["negated_layers"]) for c in columns]
    axis.set_xticks(range(len(columns)), ticks, rotation=30, ha="right")
    axis.set_yticks(range(len(rows)), rows)
    axis.set_xlabel("layer output, in computation order (* = negated layer, pre-activation)")
    axis.set_ylabel("model pair (original = pre-trained θ*)")
    bar = figure.colorbar(image, ax=axis)
    bar.set_label("linear CKA (unitless; 1 = same up to rotation and scale)")
    axis.set_title(
        f"Linear CKA per layer, mean over {meta['seeds']} seed(s), n = {meta['samples']} test "
        f"images; NoT negates {', '.join(meta['negated_layers'])}\n{study.setting()}",
        fontsize=10,
    )
    study.save_figure(figure, "analyze_cka")


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _avg(cells: dict[str, float], columns: Sequence[str]) -> float:
    values = [cells[c] for c in columns]
    return sum(values) / len(values) if values else math.nan


def _table(mean: Table, std: Table, columns: list[str], meta: Meta) -> str:
    def cell(row: str, c: str) -> str:
        spread = f" ± {_fmt(std[row][c])}" if meta["seeds"] > 1 else ""
        return _fmt(mean[row][c]) + spread

    header = "| model pair | " + " | ".join(_tick(c, meta["negated_layers"]) for c in columns)
    lines = [header + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {row} | " + " | ".join(cell(row, c) for c in columns) + " |" for row in mean]
    return "\n".join(lines)


def _report(mean: Table, std: Table, columns: list[str], meta: Meta) -> str:
    at = [c for c in columns if c in meta["negated_layers"]]
    deep = columns[columns.index(at[-1]) + 1 :] if at else columns
    not0, not1, ft1, rt0, not_rt, ft_rt, control = (label for label, _, _ in ROWS)
    first = ", ".join(f"{c} {_fmt(mean[not0][c])}" for c in at) or "no module output"
    lowest = min((mean[not0][c] for c in deep), default=math.nan)
    falls = (
        "agrees" if lowest < min((mean[not0][c] for c in at), default=1.0) - 0.05 else "does not"
    )
    near, far = _avg(mean[not_rt], deep), _avg(mean[ft_rt], deep)
    closer = "agrees" if near >= far else "does not: FT is the closer one"
    later = f"the layers after the negated one ({', '.join(deep)})"
    spread = " ± standard deviation" if meta["seeds"] > 1 else ""
    return f"""
![Linear CKA per layer and model pair](analyze_cka.png)

**What it shows.** Each cell is the linear CKA (Kornblith et al., ICML 2019; docs/metrics.md,
"CKA") between two models' activations at one layer, on the same {meta["samples"]} seeded test
images, averaged over {meta["seeds"]} seed(s). 1 means the two representations agree up to a
rotation, an isotropic scaling and an offset; 0 means they are unrelated. Columns: the negated
layer's output (marked *, its pre-activation) and the output of every top-level module with
parameters, in computation order. "original" is the pre-trained model θ*; τ:0 is right after NoT's
negation, τ:-1 after the last recovery round. The control pair takes the negated layer from θ*,
negated or kept, and every other tensor from one random initialisation R (one seed for both).

**How to read it against the paper's Figure 3.**
- *NoT@τ:0 vs original* is 1 at the negated layer: negating weight and bias maps its
  pre-activation Y to −Y, and weight-only negation to −Y + 2b; CKA ignores the sign and the
  offset (docs/not.md, "Weights or weights and bias"). Measured: {first}.
  The paper then sees CKA fall with depth: the later layers no longer fit the negated one
  (co-adaptation broken). Lowest value over {later}: {_fmt(lowest)}; this {falls}.
- After recovery the paper finds NoT similar to Retrain and FT different from it. Mean over
  {later}: NoT@τ:-1 vs Retrain {_fmt(near)}, FT@τ:-1 vs Retrain {_fmt(far)}; this {closer}.
  For reference, NoT@τ:-1 vs original {_fmt(_avg(mean[not1], deep))}, FT@τ:-1 vs original
  {_fmt(_avg(mean[ft1], deep))}, Retrain vs original {_fmt(_avg(mean[rt0], deep))}. When Retrain
  itself stays close to the original (little to forget), FT is close to Retrain by construction
  and this comparison cannot favour NoT.
- The paper reads a high CKA of the control pair as support for layer-wise optimality: random
  layers on top of −θ_ℓ and of θ_ℓ give similar representations. Mean over {later}:
  {_fmt(_avg(mean[control], deep))}.

**Notes.** The models run in eval mode: after negating a conv followed by BatchNorm (ResNet-18),
NoT@τ:0 uses BatchNorm's stale running statistics (docs/not.md, "BatchNorm after a
negated layer"). Retrain starts from the same initial weights as the original (docs/not.md,
"Convergence"), which keeps their early layers alike.
The control pair is not trained. Each cell is computed in the n×n Gram form, in float64; n/a
marks a layer whose output is constant over the images (CKA undefined). The numbers per seed are
in `analyze_cka.json`.

Mean{spread} over seeds:

{_table(mean, std, columns, meta)}
"""
