"""The sequence scenario's ``results.md`` and ``sequence.png``.

Each request gets the single-request report's table, paired differences and statements (the
claims' rules: CIs over seeds, Retrain′, the attacks' noise floors, Holm within each declared
family of that request). Then what the models still know of earlier requests' data, and the
costs per request and cumulative against one Retrain per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fednot.benchmark.plots import method_style, pyplot, save_figure
from fednot.benchmark.report import describe_setup, tuned_values
from fednot.benchmark.results import REFERENCE, RETRAIN_FLOOR
from fednot.benchmark.sequence import Chain
from fednot.benchmark.statements import paired_table, seed_count, statements
from fednot.benchmark.stats import Interval, mean_ci, paired_ci
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tables import format_interval, main_table
from fednot.config import RunConfig


def _by_method(chains: Sequence[Chain]) -> dict[str, list[Chain]]:
    out: dict[str, list[Chain]] = {}
    for chain in chains:
        out.setdefault(chain.method, []).append(chain)
    return out


def recall_table(chains: Sequence[Chain], targets: Sequence[int]) -> str:
    """Forget accuracy and MIA on each earlier request's data at each later request.

    Cells: mean ± 95 % CI half-width over seeds, and in brackets the mean per-seed difference
    to the same seed's Retrain of the later request (which never saw any of those data).
    """
    pairs = [(k, j) for k in range(1, len(targets)) for j in range(k)]
    if not pairs:
        return "One request: nothing earlier to recall."
    reference = {c.seed: c for c in chains if c.method == REFERENCE}
    header = ["Method"]
    header += [f"client {targets[j]} at request {k + 1}: forget acc. / MIA" for k, j in pairs]
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    for method, group in _by_method(chains).items():
        if all(len(c.points) < 2 for c in group):
            continue  # served the first request only
        cells = [group[0].points[0].record.title]
        for k, j in pairs:
            parts = []
            for field in ("forget_acc", "mia"):
                own, ref = [], []
                for chain in group:
                    if len(chain.points) <= k or chain.points[k].record.diverged:
                        continue
                    own.append(getattr(chain.points[k].earlier[j], field))
                    r = reference.get(chain.seed)
                    if r is not None and len(r.points) > k:
                        ref.append(getattr(r.points[k].earlier[j], field))
                parts.append(_recall_cell(own, ref, method == REFERENCE))
            cells.append(" / ".join(parts))
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def _recall_cell(own: list[float], ref: list[float], is_reference: bool) -> str:
    if not own:
        return "—"
    text = format_interval(mean_ci(own))
    if not is_reference and len(ref) == len(own) and len(own) > 1:
        delta = paired_ci(own, ref)
        text += f" [{delta.mean:+.2f} ± {delta.half_width:.2f}]"
    return text


def cost_table(chains: Sequence[Chain], targets: Sequence[int]) -> str:
    """Communication per request relative to that request's Retrain, and cumulative."""
    reference = {c.seed: c for c in chains if c.method == REFERENCE}
    count = len(targets)
    header = ["Method", *(f"request {k + 1} / Retrain" for k in range(count))]
    header += [f"cumulative (MB) after {count}", f"cumulative / {count} Retrains"]
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    for group in _by_method(chains).values():
        cells = [group[0].points[0].record.title]
        for k in range(count):
            ratios = [
                c.points[k].record.comm_bytes / ref.points[k].record.comm_bytes
                for c in group
                if len(c.points) > k and not c.points[k].record.diverged
                if (ref := reference.get(c.seed)) is not None and ref.points[k].record.comm_bytes
            ]
            cells.append(format_interval(mean_ci(ratios)) if ratios else "—")
        full = [c for c in group if _complete(c, count)]
        if full:
            totals = [_total(c) for c in full]
            refs = [_total(reference[c.seed]) for c in full if c.seed in reference]
            cells.append(format_interval(mean_ci([t / 1e6 for t in totals])))
            ratio = [t / r for t, r in zip(totals, refs, strict=False) if r]
            cells.append(format_interval(mean_ci(ratio)) if ratio else "—")
        else:
            cells += ["— (not every request)", "—"]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def _complete(chain: Chain, count: int) -> bool:
    return len(chain.points) == count and not any(p.record.diverged for p in chain.points)


def _total(chain: Chain) -> float:
    return float(sum(p.record.comm_bytes for p in chain.points))


def sequence_markdown(
    config: RunConfig,
    chains: Sequence[Chain],
    summaries: Sequence[Sequence[MethodSummary]],
    not_applicable: Mapping[str, str],
    first_only: Mapping[str, str],
) -> str:
    """``results.md`` of a sequence run."""
    targets = list(config.unlearn.forget_clients)
    parts = [
        "# fednot results: a sequence of deletion requests",
        describe_setup(config),
        f"Requests, in order: clients {', '.join(map(str, targets))}. At request k every method "
        "unlearns client c_k from its own current model (the pre-trained model at request 1), "
        f"with the recovery budget of one request; then {_between(config)} on the clients left. "
        "Request k's reference is Retrain without c_1..c_k (the pre-training recipe from the "
        "initial weights); Retrain′ is that recipe from another training seed. Each request's "
        "metrics are on its own split: the clients left are retained, c_k's data forgotten. "
        "Cells as in a single request's report: mean ± 95 % CI over seeds, [Δ to Retrain]; "
        "statements are corrected (Holm) within each request's declared families, not across "
        "the requests. No trajectory is recorded (eval.curve_every = 0), so only the end of "
        "each budget is read: the equal-cost columns stay empty.",
    ]
    tuned = tuned_values(config)
    for k, summary in enumerate(summaries):
        left = [t for t in targets[: k + 1]]
        parts.append(f"## Request {k + 1}: client {targets[k]} (forgotten so far: {left})")
        na = dict(not_applicable)
        if k > 0:
            na.update(first_only)
        parts.append(main_table(summary, na, tuned))
        if seed_count(summary) >= 2:
            parts.append(f"Paired differences in average gap:\n\n{paired_table(summary)}")
        parts.append(statements(summary, config.unlearn.recovery_rounds))
    parts += [
        "## Does forgetting persist?",
        "Forget accuracy and loss MIA on an earlier request's data (its client left, so no later "
        "round trains on them), read at every later request after that request's unlearning; "
        "[mean per-seed difference to the same seed's Retrain of the later request ± 95 % CI "
        "half-width], a Retrain that never saw those data.",
        recall_table(chains, targets),
        "## Costs",
        "Communication of each request's unlearning (step and recovery) relative to that "
        "request's Retrain, and cumulative over the requests against one Retrain per request. "
        "The rounds between requests are ordinary training, the same for every method, and are "
        "not counted.",
        cost_table(chains, targets),
        "## Figure",
        "![average gap per request; cumulative communication](sequence.png)",
    ]
    return "\n\n".join(parts) + "\n"


def _between(config: RunConfig) -> str:
    rounds = int(getattr(config.scenario, "rounds_between", 0))
    return f"{rounds} rounds of FedAvg" if rounds else "no training"


def _gap_series(
    summaries: Sequence[Sequence[MethodSummary]], method: str
) -> list[tuple[int, Interval]]:
    """``(request number, average gap)`` of ``method`` at each request it served."""
    out = []
    for k, summary in enumerate(summaries, 1):
        row = next((r for r in summary if r.method == method), None)
        if row is not None and row.avg_gap is not None:
            out.append((k, row.avg_gap))
    return out


OFF_SCALE = 4.0
"""A method whose gap exceeds this many times the median method's is drawn off the scale."""


def sequence_chart(
    config: RunConfig,
    chains: Sequence[Chain],
    summaries: Sequence[Sequence[MethodSummary]],
    path: Path,
) -> list[Path]:
    """Average gap per request with 95 % bands, and cumulative communication per request.

    A method far worse than the others (mean gap above `OFF_SCALE` times the median method's)
    would flatten every other curve: the axis stops above the others, and its legend entry
    gives its values (its band is not drawn).
    """
    plt = pyplot()
    fig, (gap_ax, comm_ax) = plt.subplots(1, 2, figsize=(11, 4.8))
    count = len(summaries)
    x = list(range(1, count + 1))
    methods = [m for m in _by_method(chains) if m != REFERENCE]
    series = {m: _gap_series(summaries, m) for m in methods}
    peaks = {m: max(g.mean for _, g in s) for m, s in series.items() if s}
    median = sorted(peaks.values())[len(peaks) // 2] if peaks else 0.0
    off = {m for m, peak in peaks.items() if peak > OFF_SCALE * max(median, 0.25)}
    top = max(
        (g.high if g.n > 1 else g.mean for m in peaks if m not in off for _, g in series[m]),
        default=1.0,
    )
    titles = {r.method: r.title for s in summaries for r in s}
    for index, method in enumerate(methods):
        points = series[method]
        if not points:
            continue
        style = method_style(index, method)
        xs, ys = [k for k, _ in points], [g for _, g in points]
        label = titles[method]
        if method in off:
            label += f" (off scale: {', '.join(f'{g.mean:.1f}' for g in ys)})"
        line = "--" if method == RETRAIN_FLOOR else "-"
        gap_ax.plot(xs, [g.mean for g in ys], line, marker="o", label=label, **style)
        if method in off:  # its band would cover the panel
            continue
        low = [g.low if g.n > 1 else g.mean for g in ys]
        high = [g.high if g.n > 1 else g.mean for g in ys]
        gap_ax.fill_between(xs, low, high, color=style["color"], alpha=0.1, linewidth=0)
    ticks = [f"{k}\n(client {t})" for k, t in zip(x, config.unlearn.forget_clients, strict=True)]
    gap_ax.set_xlabel("request")
    gap_ax.set_ylabel("average gap to its Retrain (95 % CI)")
    gap_ax.set_xticks(x, ticks)
    gap_ax.set_ylim(0, 1.15 * top)
    gap_ax.legend(fontsize=7, ncol=2)
    _cumulative(comm_ax, chains, count)
    comm_ax.set_xticks(x, ticks)
    title = f"Deletion requests over time\n{describe_setup(config, short=True)}"
    return save_figure(fig, path, title)


def _cumulative(ax: Any, chains: Sequence[Chain], count: int) -> None:
    """Each method's cumulative unlearning traffic (mean over seeds that served every request)."""
    methods = [m for m in _by_method(chains) if m != RETRAIN_FLOOR]
    for index, method in enumerate(methods):
        group = [c for c in chains if c.method == method and _complete(c, count)]
        if not group:
            continue
        # methods of equal cost would hide each other: each is shifted a little sideways
        shift = 0.25 * (index / max(1, len(methods) - 1) - 0.5)
        cumulative = [
            sum(sum(p.record.comm_bytes for p in c.points[: k + 1]) for c in group)
            / len(group)
            / 1e6
            for k in range(count)
        ]
        xs = [k + 1 + shift for k in range(count)]
        if method == REFERENCE:
            style = {"color": "dimgray", "linestyle": "--", "marker": "s"}
            ax.plot(xs, cumulative, label=f"{count} Retrains", **style)
        else:
            title = group[0].points[0].record.title
            ax.plot(xs, cumulative, marker="o", label=title, **method_style(index, method))
    ax.set_xlabel("request (mean over seeds; methods shifted sideways)")
    ax.set_ylabel("unlearning traffic, cumulative (MB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, ncol=2)
