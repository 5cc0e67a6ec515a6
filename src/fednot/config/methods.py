"""Which methods a run compares: ``unlearn.methods`` as a selector of names, groups and exclusions.

An entry is a method's name (``"ft"``), a group's name (``"federated"``), or either with a leading
``-`` to leave it out (``"-fukd"``). Methods are kept in the order the entries name them, each
once, and an exclusion removes a method wherever it stands, so a scenario that adds a group to a
preset's selector (``fednot bench --scenario backdoor``) never brings back what the preset left
out. ``["federated", "-federaser", "-fukd"]`` is every federated method but those two.
"""

from __future__ import annotations

from collections.abc import Sequence

from fednot.errors import ConfigError

FEDERATED: tuple[str, ...] = ("retrain", "ft", "federaser", "fukd", "pgd", "mode", "fcu", "puf")
FEDERATED += ("negsub", "not", "not_wb")
"""Retrain, the federated baselines and NoT, in the order of the NoT paper's Table 1."""

CENTRALIZED = ("randl", "ga", "badt", "l1sparse", "ssd", "salun")
"""The centralized-unlearning baselines, adapted to a federation (docs/methods.md)."""

METHOD_GROUPS: dict[str, tuple[str, ...]] = {"federated": FEDERATED, "centralized": CENTRALIZED}
"""The groups an ``unlearn.methods`` entry may name."""


def select_methods(entries: Sequence[str]) -> tuple[str, ...]:
    """The method names that the selector ``entries`` stands for (module docstring)."""
    included: dict[str, None] = {}
    excluded: set[str] = set()
    for entry in entries:
        name = entry.removeprefix("-")
        if not name:
            raise ConfigError(
                f"unlearn.methods has an empty entry {entry!r}: expected a method's name, a "
                f"group ({', '.join(METHOD_GROUPS)}), or either after '-' to leave it out."
            )
        members = METHOD_GROUPS.get(name, (name,))
        if entry.startswith("-"):
            excluded.update(members)
        else:
            included.update(dict.fromkeys(members))
    idle = sorted(excluded - set(included))
    if idle:
        raise ConfigError(
            f"unlearn.methods {list(entries)} leaves out {idle}, which it does not select: "
            "remove the exclusion (or check its spelling)."
        )
    selected = tuple(name for name in included if name not in excluded)
    if not selected:
        raise ConfigError(
            f"unlearn.methods {list(entries)} selects no method; name at least one, e.g. "
            '["retrain", "ft", "not"] or ["federated"].'
        )
    return selected
