"""``fednot tune``: every method's hyperparameters, searched with the same budget.

Each method declares a small search space next to its defaults (`Unlearner.search_space`, built
from the types of `fednot.unlearning.space`); the tuner (`fednot.tune.study`) runs the same number
of Optuna TPE trials for every method on a validation request (another target client, other seeds
than the reported ones) and writes a tuned preset and the search log (docs/tuning.md).

This package's ``__init__`` imports only the space types: `fednot.unlearning.base` imports them,
and the engine behind the tuner imports the methods.
"""

from fednot.unlearning.space import Choice, IntRange, LayerChoice, Range, Space

__all__ = ["Choice", "IntRange", "LayerChoice", "Range", "Space"]
