"""``fednot tune``: every method's hyperparameters, searched by one budget rule.

Each method declares a small search space next to its defaults (`Unlearner.search_space`, built
from the types of `fednot.unlearning.space`); the tuner (`fednot.tune.study`) gives every method
the same number of Optuna TPE trials per knob of its space, then refines its recovery learning
rate (`fednot.tune.refine`), on a validation request (another target client, other seeds than
the reported ones, a test set held out of the training split) and writes a tuned preset and the
search log (docs/tuning.md).

This package's ``__init__`` imports only the space types: `fednot.unlearning.base` imports them,
and the engine behind the tuner imports the methods.
"""

from fednot.unlearning.space import Choice, IntRange, LayerChoice, Range, Space

__all__ = ["Choice", "IntRange", "LayerChoice", "Range", "Space"]
