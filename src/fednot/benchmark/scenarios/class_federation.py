"""Class-wise forgetting by the whole federation: every client forgets the classes and stays.

A scenario that is another one with another default: the ``class`` scenario with
``class_scope = "federation"``, registered as a kind of its own (``--scenario class_federation``)
that serves the class-wise methods and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fednot.benchmark.scenarios.base import ScenarioDefinition
from fednot.benchmark.scenarios.class_wise import ClassScenario, build, describe


@dataclass(frozen=True)
class ClassFederationScenario(ClassScenario):
    """`ClassScenario` whose classes every client forgets by default."""

    kind: str = "class_federation"
    class_scope: Literal["target", "federation"] = "federation"


CLASS_FEDERATION = ScenarioDefinition(
    ClassFederationScenario,
    build,
    describe,
    "Every client forgets its samples of `classes` and stays.",
    serves="class",
)
