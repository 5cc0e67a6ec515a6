"""Unlearning methods. Importing this package registers every built-in method."""

from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.centralized.bad_teacher import BadT
from fednot.unlearning.centralized.gradient_ascent import GA
from fednot.unlearning.centralized.l1_sparse import L1Sparse
from fednot.unlearning.centralized.rand_label import RandL
from fednot.unlearning.centralized.salun import SalUn
from fednot.unlearning.centralized.ssd import SSD
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.fcu import FCU
from fednot.unlearning.federaser import FedEraser
from fednot.unlearning.fine_tune import FT
from fednot.unlearning.fukd import FUKD
from fednot.unlearning.mode import MoDE
from fednot.unlearning.model_parts import ModelParts
from fednot.unlearning.neg_sub import NegSub
from fednot.unlearning.negation import NoT, negate
from fednot.unlearning.perturbations import Perturb
from fednot.unlearning.pgd import PGD
from fednot.unlearning.puf import PUF
from fednot.unlearning.registry import create_unlearner, register_unlearner, unlearner_names
from fednot.unlearning.retrain import Retrain

__all__ = [
    "GA",
    "SSD",
    "BadT",
    "L1Sparse",
    "RandL",
    "SalUn",
    "FCU",
    "FT",
    "FUKD",
    "FedEraser",
    "MoDE",
    "ModelParts",
    "NegSub",
    "PGD",
    "Perturb",
    "PUF",
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
