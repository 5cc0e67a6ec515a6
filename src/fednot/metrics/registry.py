"""The registered metrics, in a fixed order: the order of records, CSV columns and tables.

The built-in metrics are registered below, in this order; a new metric is one module that
declares a `Metric` and one `register_metric` line here (a plugin may call `register_metric`
itself: its metrics follow the built-in ones). Records, summaries, tables, results.csv,
results.json and figures iterate over `registered` instead of naming metrics.
"""

from __future__ import annotations

from fednot.metrics import accuracies, attacks, backdoor, forget_loss
from fednot.metrics.metric import Metric

_REGISTERED: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` after the registered ones; returns it.

    Raises:
        ValueError: another metric is registered under its name.
    """
    if metric.name in _REGISTERED and _REGISTERED[metric.name] != metric:
        raise ValueError(
            f"A metric named {metric.name!r} is already registered; give the new one another "
            f"name (registered: {', '.join(_REGISTERED)})."
        )
    _REGISTERED[metric.name] = metric
    return metric


def registered() -> tuple[Metric, ...]:
    """Every registered metric, in registration order."""
    return tuple(_REGISTERED.values())


def names() -> tuple[str, ...]:
    """The registered metrics' names, in registration order."""
    return tuple(_REGISTERED)


def get_metric(name: str) -> Metric:
    """The metric registered as ``name``.

    Raises:
        KeyError: none is (the message lists the registered names).
    """
    try:
        return _REGISTERED[name]
    except KeyError:
        raise KeyError(
            f"No metric is registered as {name!r}; registered: {', '.join(_REGISTERED)}."
        ) from None


for _metric in (
    accuracies.RETAIN_ACC,
    accuracies.FORGET_ACC,
    accuracies.TEST_ACC,
    attacks.MIA,
    attacks.MIA_STD,
    accuracies.VAL_ACC,
    backdoor.ASR,
    accuracies.FORGET_CLASS_ACC,
    accuracies.REMAINING_CLASS_TEST_ACC,
    attacks.MIA_FLOOR,
    attacks.CONF_AUC,
    attacks.CONF_TPR,
    attacks.CONF_AUC_FLOOR,
    attacks.CONF_TPR_FLOOR,
    forget_loss.FORGET_LOSS,
):
    register_metric(_metric)
