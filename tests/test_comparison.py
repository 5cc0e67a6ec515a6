"""Summaries over seeds, readings at equal cost, and the statements a table may make."""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats

from fednot.benchmark.comparison import summarize
from fednot.benchmark.paired import Comparison
from fednot.benchmark.results import Record, with_gaps
from fednot.benchmark.runlog import CellKey, CellLog, RoundLog
from fednot.benchmark.statements import paired_table, statements
from fednot.benchmark.stats import mean_ci, paired_ci
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tables import main_table
from fednot.benchmark.tradeoff import tradeoff_curves
from fednot.testing import sample_record

RETRAIN = {"retain_acc": 100.0, "forget_acc": 96.0, "test_acc": 97.0, "mia": 50.0}
RETRAIN_BYTES = 1000


def _record(method: str, seed: int, metrics: dict[str, float], **extra: Any) -> Record:
    title = {"not": "NoT", "ft": "FT", "retrain": "Retrain"}.get(method, method)
    fields = dict(title=title, mia_std=0.0, val_acc=97.0, comm_bytes=RETRAIN_BYTES, flops=10)
    fields |= dict(requirements="", mia_floor=1.5)
    return sample_record(method, seed, **{**fields, **metrics, **extra})


def _log(forget_by_round: list[float]) -> CellLog:
    """Rounds of 100 bytes each; round r has forget accuracy forget_by_round[r]."""
    point = dict(RETRAIN)
    rounds = tuple(
        RoundLog(r, (), 0.0, 0.0, 100, 1, 0.0, {**point, "forget_acc": forget})
        for r, forget in enumerate(forget_by_round[1:], start=1)
    )
    return CellLog({**point, "forget_acc": forget_by_round[0]}, "", rounds)


def _run(
    not_offsets: list[float], ft_offsets: list[float]
) -> tuple[list[Record], dict[CellKey, CellLog]]:
    records, logs = [], {}
    for seed, (a, b) in enumerate(zip(not_offsets, ft_offsets, strict=True)):
        records.append(_record("retrain", seed, RETRAIN))
        for method, offset in (("not", a), ("ft", b)):
            curve = [RETRAIN["forget_acc"] + offset * (10 - r) for r in range(10)]
            final = {**RETRAIN, "forget_acc": curve[-1]}
            records.append(_record(method, seed, final, comm_bytes=900, rounds=9))
            logs[CellKey(method, seed)] = _log(curve)
    return with_gaps(records), logs


def _row(summary: list[MethodSummary], method: str) -> MethodSummary:
    return next(r for r in summary if r.method == method)


def _paired(row: MethodSummary, ref: str, key: str) -> Comparison:
    entry = row.paired[ref][key]
    assert entry is not None
    return entry


def test_gaps_are_per_seed_with_t_intervals_and_paired_with_not() -> None:
    records, logs = _run([0.4, 0.5, 0.6, 0.5, 0.4], [4.0, 4.2, 3.9, 4.1, 4.0])
    summary = summarize(records, logs)
    ft, not_ = _row(summary, "ft"), _row(summary, "not")
    ft_gaps = [r.avg_gap for r in records if r.method == "ft"]
    not_gaps = [r.avg_gap for r in records if r.method == "not"]
    assert ft.avg_gap == mean_ci(ft_gaps)
    entry = _paired(ft, "not", "end")
    assert entry.difference == paired_ci(ft_gaps, not_gaps)
    assert entry.p == pytest.approx(stats.ttest_rel(ft_gaps, not_gaps).pvalue, rel=1e-9)
    assert entry.p_exact == pytest.approx(2 / 32)  # FT's gap is higher on all 5 seeds
    assert entry.family == "primary" and entry.p_holm is not None
    # at 50 % of Retrain's 1000 bytes the last affordable round is round 5: offset * (10 - 5) / 4
    comm50 = ft.gap_at["comm50"]
    assert comm50 is not None and comm50.mean == pytest.approx(4.04 * 5 / 4)
    assert not ft.beyond_run["comm50"] and ft.beyond_run["comm100"] == (0, 1, 2, 3, 4)
    assert "not" not in not_.paired and "ft" in not_.paired


def test_statements_state_a_ranking_only_when_the_ci_excludes_zero() -> None:
    records, logs = _run([0.4, 0.5, 0.6, 0.5, 0.4], [4.0, 4.2, 3.9, 4.1, 4.0])
    text = statements(summarize(records, logs), 9)
    assert "NoT's average gap is lower than FT's" in text
    assert "not distinguishable" not in text

    noisy, logs = _run([0.4, 3.0, 0.1, 2.5, 1.0], [1.0, 0.2, 2.9, 0.9, 2.0])
    text = statements(summarize(noisy, logs), 9)
    assert "lower than" not in text and "higher than" not in text
    assert "Not distinguishable from NoT's: FT (" in text


def test_one_seed_states_nothing() -> None:
    records, logs = _run([0.4], [4.0])
    assert "No paired comparison" in statements(summarize(records, logs))


def test_tables_mark_readings_beyond_the_run_and_indistinguishable_pairs() -> None:
    records, logs = _run([0.4, 3.0, 0.1, 2.5, 1.0], [1.0, 0.2, 2.9, 0.9, 2.0])
    summary = summarize(records, logs)
    table = main_table(summary)
    assert "†" in table  # the 100 % cost point lies beyond the 900-byte runs
    assert "≈" in paired_table(summary)


def test_tradeoff_curves_pool_seeds_per_round() -> None:
    records, logs = _run([0.4, 0.6], [4.0, 4.2])
    curves = tradeoff_curves(records, logs)
    assert [p.round for p in curves["not"]] == list(range(10))
    first = curves["not"][0]
    assert first.x == 0.0 and first.n == 2
    assert first.gap == pytest.approx((0.4 * 10 + 0.6 * 10) / 2 / 4)
    assert curves["not"][5].x == pytest.approx(0.5)


def _gap_records(gaps: dict[str, list[float]]) -> list[Record]:
    """Records whose per-seed average gap is gaps[method][seed] (all of it on forget acc.)."""
    records = []
    for seed in range(len(gaps["not"])):
        records.append(_record("retrain", seed, RETRAIN))
        for method, values in gaps.items():
            forget = RETRAIN["forget_acc"] - 4 * values[seed]
            records.append(_record(method, seed, {**RETRAIN, "forget_acc": forget}))
    return with_gaps(records)


def test_a_ranking_needs_the_holm_adjusted_p_of_its_family() -> None:
    base = [0.25] * 5
    noise = [0.3, -0.2, 0.1, -0.3, 0.2]
    gaps = {
        "not": base,
        "marginal": [b + d for b, d in zip(base, [0.10, 0.02, 0.12, 0.05, 0.08], strict=True)],
        "clear": [b + 2.0 + d / 10 for b, d in zip(base, noise, strict=True)],
        **{f"noisy{k}": [b + k * d for b, d in zip(base, noise, strict=True)] for k in (1, 2, 3)},
    }
    summary = summarize(_gap_records(gaps), {})
    marginal = _paired(_row(summary, "marginal"), "not", "end")
    clear = _paired(_row(summary, "clear"), "not", "end")
    assert marginal.p < 0.05 and not paired_ci(gaps["marginal"], base).contains_zero
    family = [_paired(_row(summary, m), "not", "end").p for m in gaps if m != "not"]
    assert len(family) == 5 and marginal.p_holm == pytest.approx(4 * marginal.p)
    assert clear.p_holm == pytest.approx(5 * clear.p) and clear.p_holm < 0.05
    text = statements(summary, 30)
    assert "NoT's average gap is lower than clear's" in text
    assert "lower than marginal" not in text and "Not distinguishable from NoT's: marginal" in text
    assert "Every ranking above therefore rests on the t-test's normality" in text  # 5 seeds
    # at 50 % of the communication nothing is read here (no logs); exploratory: none


def test_exploratory_points_give_leads_never_rankings() -> None:
    records, logs = _run([0.4, 0.5, 0.6, 0.5, 0.4], [4.0, 4.2, 3.9, 4.1, 4.0])
    summary = summarize(records, logs)
    entry = _paired(_row(summary, "ft"), "not", "comm25")
    assert entry.family == "exploratory" and entry.p_holm is None and entry.p < 0.05
    text = statements(summary, 9)
    assert "Exploratory (no multiplicity control" in text
    assert "At 25 % of Retrain's communication: FT's gap higher than NoT's" in text
    assert "Primary, at 25 %" not in text


def test_nothing_is_stated_on_a_reading_beyond_the_run() -> None:
    records, logs = _run([0.4, 0.5, 0.6, 0.5, 0.4], [4.0, 4.2, 3.9, 4.1, 4.0])
    entry = _paired(_row(summarize(records, logs), "ft"), "not", "comm100")
    assert entry.excluded and entry.p_holm is None  # the 900-byte runs end before 1000
    assert "100 % of Retrain's communication" not in statements(summarize(records, logs), 9)
