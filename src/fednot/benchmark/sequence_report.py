"""The sequence scenario's ``results.md`` and ``sequence.png``.

Each request gets the single-request report's table, paired differences and statements (the
claims' rules: CIs over seeds, Retrain′, the attacks' noise floors, Holm within each declared
family of that request). Then what the models still know of earlier requests' data, and the
costs per request and cumulative against one Retrain per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

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


def sequence_chart(
    config: RunConfig,
    chains: Sequence[Chain],
    summaries: Sequence[Sequence[MethodSummary]],
    path: Path,
) -> list[Path]:
    """Average gap per request with 95 % bands, and cumulative communication per request."""
    plt = pyplot()
    fig, (gap_ax, comm_ax) = plt.subplots(1, 2, figsize=(11, 4.6))
    count = len(summaries)
    x = list(range(1, count + 1))
    methods = [m for m in _by_method(chains) if m != REFERENCE]
    for index, method in enumerate(methods):
        style = method_style(index, method)
        stats: list[Interval | None] = []
        for summary in summaries:
            row = next((r for r in summary if r.method == method), None)
            stats.append(None if row is None else row.avg_gap)
        xs = [i for i, s in zip(x, stats, strict=True) if s is not None]
        ys = [s for s in stats if s is not None]
        if not ys:
            continue
        title = next(r.title for s in summaries for r in s if r.method == method)
        line = "--" if method == RETRAIN_FLOOR else "-"
        gap_ax.plot(xs, [s.mean for s in ys], line, marker="o", label=title, **style)
        low = [s.low if s.n > 1 else s.mean for s in ys]
        high = [s.high if s.n > 1 else s.mean for s in ys]
        gap_ax.fill_between(xs, low, high, color=style["color"], alpha=0.12, linewidth=0)
    ticks = [f"{k}\n(client {t})" for k, t in zip(x, config.unlearn.forget_clients, strict=True)]
    gap_ax.set_xlabel("request")
    gap_ax.set_ylabel("average gap to its Retrain (95 % CI)")
    gap_ax.set_xticks(x, ticks)
    gap_ax.set_ylim(bottom=0)
    gap_ax.legend(fontsize=7, ncol=2)
    drawn = [m for m in _by_method(chains) if m != RETRAIN_FLOOR]
    for index, method in enumerate(_by_method(chains)):
        group = [c for c in chains if c.method == method and _complete(c, count)]
        if not group or method == RETRAIN_FLOOR:
            continue
        # methods of equal cost would hide each other: each is shifted a little sideways
        shift = 0.25 * (drawn.index(method) / max(1, len(drawn) - 1) - 0.5)
        style = method_style(index - 1, method) if method != REFERENCE else {"color": "grey"}
        cumulative = [
            sum(sum(p.record.comm_bytes for p in c.points[: k + 1]) for c in group)
            / len(group)
            / 1e6
            for k in range(count)
        ]
        label = f"{count} Retrains" if method == REFERENCE else group[0].points[0].record.title
        comm_ax.plot([i + shift for i in x], cumulative, marker="o", label=label, **style)
    comm_ax.set_xlabel("request (mean over seeds; methods shifted sideways)")
    comm_ax.set_ylabel("unlearning traffic, cumulative (MB)")
    comm_ax.set_xticks(x, ticks)
    comm_ax.set_ylim(bottom=0)
    comm_ax.legend(fontsize=7, ncol=2)
    title = f"Deletion requests over time\n{describe_setup(config, short=True)}"
    return save_figure(fig, path, title)
