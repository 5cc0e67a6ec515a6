"""How many nodes a Flower strategy waits for, checked before the nodes are fewer.

flwr's strategies (``FedAvg`` and those built on it, flwr 1.42) sample in ``configure_train`` and
``configure_evaluate`` with ``sample_nodes``, which sleeps until ``max(min_available_nodes,
sample_size)`` nodes are connected, where ``sample_size = max(int(n * fraction), min_nodes)``
for the phase (skipped when its fraction is 0). A grid that hides forgotten nodes can fall
short of that forever: this module computes the number, and lowers the minimums on request.
Wrappers that keep the strategy they wrap as ``.strategy`` (flwr's DP strategies) are followed.
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.serverapp.strategy import Strategy

MINIMUMS = ("min_available_nodes", "min_train_nodes", "min_evaluate_nodes")
PHASES = ("train", "evaluate")


@dataclass(frozen=True)
class NodeNeed:
    """The nodes a strategy waits for, and the attribute that asks for them.

    Attributes:
        required: connected nodes needed before a round starts.
        reason: the attribute and its value, e.g. ``"FedAvg.min_available_nodes = 2"``.
    """

    required: int
    reason: str


def strategy_chain(strategy: Strategy) -> list[Strategy]:
    """``strategy`` and the strategies it wraps as ``.strategy``, outermost first."""
    chain = [strategy]
    inner = getattr(strategy, "strategy", None)
    while isinstance(inner, Strategy) and inner not in chain:
        chain.append(inner)
        inner = getattr(inner, "strategy", None)
    return chain


def node_need(strategy: Strategy, left: int) -> NodeNeed | None:
    """The most nodes ``strategy``'s sampling waits for with ``left`` nodes connected.

    None when no strategy in the chain declares a minimum or a fraction (a custom Strategy
    whose sampling fednot cannot read).
    """
    needs: list[NodeNeed] = []
    for s in strategy_chain(strategy):
        name = type(s).__name__
        available = _int(s, "min_available_nodes")
        if available is not None:
            needs.append(NodeNeed(available, f"{name}.min_available_nodes = {available}"))
        for phase in PHASES:
            fraction = getattr(s, f"fraction_{phase}", None)
            if fraction == 0:
                continue  # the phase is skipped, and samples no node
            minimum = _int(s, f"min_{phase}_nodes")
            if minimum is not None:
                needs.append(NodeNeed(minimum, f"{name}.min_{phase}_nodes = {minimum}"))
            if isinstance(fraction, int | float) and int(left * fraction) > left:
                wanted = int(left * fraction)
                needs.append(NodeNeed(wanted, f"{name}.fraction_{phase} = {fraction}"))
    return max(needs, key=lambda need: need.required, default=None)


def lower_minimums(strategy: Strategy, left: int) -> list[str]:
    """Lower every minimum above ``left`` to ``left`` in the chain, if that meets the need.

    What changed, e.g. ``["FedAvg.min_available_nodes 2 -> 1"]``; nothing changes (and the
    list is empty) if the lowered strategy would still wait for more than ``left`` nodes.
    """
    old = [(s, a, v) for s in strategy_chain(strategy) for a in MINIMUMS if (v := _int(s, a))]
    lowered = [(s, a, v) for s, a, v in old if v > left]
    for s, attribute, _ in lowered:
        setattr(s, attribute, left)
    need = node_need(strategy, left)
    if need is not None and need.required > left:
        for s, attribute, value in lowered:
            setattr(s, attribute, value)
        return []
    return [f"{type(s).__name__}.{a} {v} -> {left}" for s, a, v in lowered]


def _int(strategy: Strategy, attribute: str) -> int | None:
    value = getattr(strategy, attribute, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
