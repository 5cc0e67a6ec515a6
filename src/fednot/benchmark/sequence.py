"""The sequence scenario's work: each method's chain of requests, and their references.

A chain is one method on one seed through every request of ``unlearn.forget_clients``, in
order. At request k the method unlearns client c_k from its *own* current model (the pre-trained
model at the first request), with the recovery budget and stop rule of a single request, on the
clients still in the federation; then ``scenario.rounds_between`` rounds of ordinary FedAvg run
on the clients left, and the next request arrives. The chain's model is the method's only: no
method ever sees another's.

The reference of request k is Retrain without c_1..c_k: the pre-training recipe (its rounds, stop
rule and streams) from the run's initial weights on the clients left, cached like any Retrain.
It is trained for the request, not continued: it is the model that never saw any forgotten
client, whatever happened before. Retrain′ (another training seed) is the same per request.

At each request a point holds request k's metrics (its split: the clients left retained, c_k's
data forgotten) and, for every earlier request j, the forget accuracy and loss MIA on c_j's
training data: data no later round sees, since c_j left. A method whose requirements include a
stored training history serves the first request only: its history records the original
training, not the model it would unlearn later (unlearned and trained since). A method that
diverges ends its chain (the later requests have no model to unlearn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fednot.benchmark.cells import FLOOR_TITLE, FLOOR_TRAINING_SEED, check_methods, make_record
from fednot.benchmark.experiment import Experiment
from fednot.benchmark.results import REFERENCE, RETRAIN_FLOOR, Record
from fednot.config import RunConfig
from fednot.errors import ConfigError, DivergenceError
from fednot.federation.costs import Costs
from fednot.federation.history import HistorySpec
from fednot.federation.outcome import Trained
from fednot.progress import Progress, Silent
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Unlearner

HISTORY_AFTER_FIRST = (
    "serves the first request only: its stored history records the original training, not "
    "the model it would unlearn at a later request (unlearned and trained since)"
)


@dataclass(frozen=True)
class Recall:
    """What a model still knows of an earlier request's forgotten data (percent).

    Attributes:
        request: the earlier request's index (0: the first).
        forget_acc: accuracy on that request's forgotten training data.
        mia: the loss MIA's balanced accuracy on them against the test set.
    """

    request: int
    forget_acc: float
    mia: float


@dataclass(frozen=True)
class Point:
    """One method at one request of one seed.

    Attributes:
        request: the request's index (0: the first).
        record: request k's metrics and the unlearning's costs (`Record`; its ``avg_gap`` is
            set against the same seed's Retrain of the same request by the report).
        earlier: what the model still knows of each earlier request's data, in request order.
    """

    request: int
    record: Record
    earlier: tuple[Recall, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "request": self.request,
            "record": self.record.to_dict(),
            "earlier": [vars(r) for r in self.earlier],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Point:
        """Inverse of `to_dict`."""
        earlier = tuple(Recall(**r) for r in data["earlier"])
        return cls(int(data["request"]), Record.from_dict(data["record"]), earlier)


@dataclass(frozen=True)
class Chain:
    """One method (or Retrain, Retrain′) through the requests of one seed."""

    method: str
    seed: int
    points: tuple[Point, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "method": self.method,
            "seed": self.seed,
            "points": [p.to_dict() for p in self.points],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chain:
        """Inverse of `to_dict`."""
        points = tuple(Point.from_dict(p) for p in data["points"])
        return cls(str(data["method"]), int(data["seed"]), points)


def union(targets: Sequence[int], k: int) -> ForgetRequest:
    """Every client that has left once request ``k`` is served."""
    return ForgetRequest(clients=tuple(targets[: k + 1]))


class SequenceRunner:
    """Produces chains in this process; see the module docstring.

    Args:
        config: the run's configuration (``scenario.kind = "sequence"``).
        methods: the methods by name, Retrain included.
        history: what pre-training records for the methods that need a history.
        progress: where progress lines go.
    """

    def __init__(
        self,
        config: RunConfig,
        methods: Mapping[str, Unlearner],
        history: HistorySpec | None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.methods = dict(methods)
        self.history = history
        self.progress = progress or Silent()
        self.targets = tuple(config.unlearn.forget_clients)
        self.rounds_between = int(getattr(config.scenario, "rounds_between", 0))
        self._experiments: dict[int, Experiment] = {}
        self._trained: dict[int, Trained] = {}

    def trained(self, seed: int) -> Trained:
        """The seed's pre-trained model (trained once, or read from the model cache)."""
        if seed not in self._trained:
            self._trained[seed] = self.experiment(seed).pretrain(history=self.history)
        return self._trained[seed]

    def experiment(self, seed: int) -> Experiment:
        """The seed's experiment, after checking the methods and every request against it."""
        if seed not in self._experiments:
            exp = Experiment(self.config, seed, progress=self.progress)
            check_methods(exp, self.methods.values())
            for k, target in enumerate(self.targets):
                view = exp.without(self.targets[:k])
                view.check_request(ForgetRequest(clients=(target,)))
            self._experiments[seed] = exp
        return self._experiments[seed]

    def chain(self, seed: int, name: str, reference: Chain | None) -> Chain:
        """The chain of ``name`` (a method, `REFERENCE` or `RETRAIN_FLOOR`) on ``seed``.

        ``reference`` is the seed's Retrain chain (needed by every method but the two Retrains).
        """
        if name in (REFERENCE, RETRAIN_FLOOR):
            return self._retrain_chain(seed, name)
        assert reference is not None, "a method's chain runs after the seed's Retrain"
        exp, method = self.experiment(seed), self.methods[name]
        title, needs = method.title or method.name, method.requirements.describe()
        state: Trained | StateDict = self.trained(seed)
        points: list[Point] = []
        for k, target in enumerate(self.targets):
            if k > 0 and method.requirements.history:
                break
            view = self._view(exp, k)
            ref = reference.points[k].record
            self.progress.phase(f"seed {seed}: {title}: request {k + 1} (client {target})")
            request = ForgetRequest(clients=(target,))
            try:
                outcome = view.unlearn(
                    state,
                    request,
                    method,
                    reference_val_acc=ref.get("val_acc"),
                    reference_costs=Costs(ref.comm_bytes, ref.flops),
                )
                metrics = view.evaluate(outcome.state, request)
                earlier = self._recalls(exp, outcome.state, k)
            except DivergenceError as error:
                record = Record.of_divergence(
                    name, title, seed, scenario="sequence", requirements=needs, reason=str(error)
                )
                points.append(Point(k, record))
                break
            record = make_record(name, title, view, metrics, outcome, ref.get("val_acc"), needs)
            points.append(Point(k, record, earlier))
            state = outcome.state
            serves_next = k + 1 < len(self.targets) and not method.requirements.history
            if serves_next and self.rounds_between:
                self.progress.phase(f"seed {seed}: {title}: {self.rounds_between} rounds between")
                state, _ = self._view(exp, k + 1).train(state, self.rounds_between, "between")
        return Chain(name, seed, tuple(points))

    def _retrain_chain(self, seed: int, name: str) -> Chain:
        """Retrain (or Retrain′) without the first k targets, for every k."""
        exp = self.experiment(seed)
        if name == REFERENCE:
            self.trained(seed)  # once per seed, before the methods' chains
        trainer = exp if name == REFERENCE else exp.reseeded(FLOOR_TRAINING_SEED, trajectory=False)
        title = "Retrain" if name == REFERENCE else FLOOR_TITLE
        points: list[Point] = []
        for k, target in enumerate(self.targets):
            self.progress.phase(f"seed {seed}: {title}: without clients {self.targets[: k + 1]}")
            outcome = trainer.unlearn(trainer.initial_state, union(self.targets, k), REFERENCE)
            view = self._view(exp, k)
            metrics = view.evaluate(outcome.state, ForgetRequest(clients=(target,)))
            target_acc = metrics.val_acc if name == REFERENCE else None
            record = make_record(name, title, view, metrics, outcome, target_acc, "none")
            points.append(Point(k, record, self._recalls(exp, outcome.state, k)))
        return Chain(name, seed, tuple(points))

    def _view(self, exp: Experiment, k: int) -> Experiment:
        """The federation as request ``k`` finds it: the first request's is the run's own."""
        if k == 0:
            return exp
        return exp.without(self.targets[:k], streams=("sequence", k))

    def _recalls(self, exp: Experiment, state: StateDict, k: int) -> tuple[Recall, ...]:
        """Forget accuracy and loss MIA on each earlier request's data (no noise floors)."""
        out = []
        for j, target in enumerate(self.targets[:k]):
            metrics = exp.evaluate(state, ForgetRequest(clients=(target,)), noise_floor=False)
            out.append(Recall(j, metrics.forget_acc, metrics.mia))
        return tuple(out)


def check_sequence(config: RunConfig) -> None:
    """Refuse what the sequence scenario cannot read."""
    if config.eval.curve_every:
        raise ConfigError(
            f"eval.curve_every = {config.eval.curve_every}, but the sequence scenario reads each "
            "request at the end of its recovery budget and records no trajectory: set "
            "eval.curve_every = 0 (the sequence scenario's preset does)."
        )
