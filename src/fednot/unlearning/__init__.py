"""Unlearning methods. Importing this package registers every built-in method."""

from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.fine_tune import FT
from fednot.unlearning.negation import NoT, negate
from fednot.unlearning.registry import create_unlearner, register_unlearner, unlearner_names
from fednot.unlearning.retrain import Retrain

__all__ = [
    "FT",
    "NoT",
    "Requirements",
    "Retrain",
    "UnlearnContext",
    "UnlearnResult",
    "Unlearner",
    "create_unlearner",
    "negate",
    "register_unlearner",
    "unlearner_names",
]
