"""The membership-inference attacks' statistics, declared for records, summaries and tables.

They are computed together by `fednot.benchmark.evaluation` (``compute = None``): the loss MIA
averages ``eval.mia_repeats`` seeded draws and shares its members and non-members with its
permutation noise floor, and the confidence attack yields its AUC, its TPR and their floors from one
calibration (`fednot.metrics.mia`, `fednot.metrics.confidence`, docs/protocol.md).
"""

from __future__ import annotations

from fednot.metrics.metric import Column, Direction, Metric, Summary

MIA = Metric(
    name="mia",
    title="MIA",
    unit="%",
    description="The balanced loss attack's accuracy (50: D_u indistinguishable from unseen data).",
    compute=None,
    direction=Direction.RETRAIN,
    in_gap=True,
    on_trajectory=True,
    always=True,
    column=Column.DELTA,
    floor="mia_floor",
)
MIA_STD = Metric(
    name="mia_std",
    title="MIA std.",
    unit="points",
    description="The standard deviation of one draw's MIA score over the repeats.",
    compute=None,
    direction=Direction.NONE,
    always=True,
    summary=Summary.NONE,
)
MIA_FLOOR = Metric(
    name="mia_floor",
    title="MIA noise floor",
    unit="points",
    description="95 % of no-signal attacks on a forget set of this size land within 50 ± this.",
    compute=None,
    direction=Direction.NONE,
    summary=Summary.MEAN,
)
CONF_AUC = Metric(
    name="conf_auc",
    title="Conf. AUC",
    unit="%",
    description="The calibrated confidence attack's ROC AUC × 100, D_u against the test set.",
    compute=None,
    direction=Direction.RETRAIN,
    column=Column.DELTA,
    floor="conf_auc_floor",
)
CONF_TPR = Metric(
    name="conf_tpr",
    title="TPR @1 % FPR",
    unit="%",
    description="The confidence attack's true-positive rate at a 1 % false-positive rate.",
    compute=None,
    direction=Direction.RETRAIN,
    column=Column.DELTA,
)
CONF_AUC_FLOOR = Metric(
    name="conf_auc_floor",
    title="Conf. AUC noise floor",
    unit="points",
    description="95 % of the confidence attack's permutation-null AUCs lie within 50 ± this.",
    compute=None,
    direction=Direction.NONE,
    summary=Summary.MEAN,
)
CONF_TPR_FLOOR = Metric(
    name="conf_tpr_floor",
    title="TPR noise floor",
    unit="%",
    description="The 95th percentile of the confidence attack's permutation-null TPRs.",
    compute=None,
    direction=Direction.NONE,
    summary=Summary.MEAN,
)
