"""fednot: federated unlearning, with NoT (weight negation) and its baselines in one harness.

The small public API::

    from fednot import Experiment, ForgetRequest, RunConfig

    exp = Experiment(RunConfig(), seed=0)      # embedded MNIST-5k, 10 IID clients, the paper's CNN
    original = exp.pretrain()                  # FedAvg (cached)
    request = ForgetRequest(clients=(0,))      # client 0 asks to be forgotten
    outcome = exp.unlearn(original.state, request, "not")
    print(exp.evaluate(outcome.state, request))
"""

import os as _os

# Before torch loads OpenMP (it reads this once): spin 1,000 times, not libgomp's 300,000, at the
# end of each parallel region. Measured on 2 cores, a second busy process beside a run made
# rounds 17x slower with the long spin and 2x with this one (docs/reliability.md, "Threads").
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from fednot.benchmark.evaluation import Metrics
from fednot.benchmark.experiment import Experiment
from fednot.config import DataConfig, EvalConfig, ModelConfig, RunConfig, TrainConfig, UnlearnConfig
from fednot.configio import load_config, to_toml
from fednot.federation.outcome import Trained, UnlearnOutcome
from fednot.progress import Silent
from fednot.types import ForgetRequest
from fednot.unlearning import (
    FT,
    NoT,
    Requirements,
    Retrain,
    UnlearnContext,
    Unlearner,
    UnlearnResult,
    create_unlearner,
    negate,
    register_unlearner,
    unlearner_names,
)
from fednot.version import __version__

__all__ = [
    "FT",
    "DataConfig",
    "EvalConfig",
    "Experiment",
    "ForgetRequest",
    "Metrics",
    "ModelConfig",
    "NoT",
    "Requirements",
    "Retrain",
    "RunConfig",
    "Silent",
    "Trained",
    "TrainConfig",
    "UnlearnConfig",
    "UnlearnContext",
    "UnlearnOutcome",
    "UnlearnResult",
    "Unlearner",
    "__version__",
    "create_unlearner",
    "load_config",
    "negate",
    "register_unlearner",
    "to_toml",
    "unlearner_names",
]
