"""``fednot audit``: N retrained and N unlearned models per method, then the forgetting quality.

Audit folder::

    config.toml     the resolved configuration
    outputs.json    every audited model's outputs, rewritten after each model (resume state)
    audit.json      scores, intervals, per-example ε, accuracies, wall times
    audit.md        the table and the statements the intervals support
    audit.png       each method's per-example ε distribution against Retrain's own spread

One original model is pre-trained from the configuration's seed. Retrained model ``k`` trains
from scratch on the retained clients with training seed ``k``: its own initial weights and client
streams, the same data, partition and request (`fednot.benchmark.experiment.Experiment.reseeded`).
Unlearned model ``k`` of a method starts from the one original model and draws its step's and its
recovery clients' randomness from training seed ``k``. Retrained models are shared through the
model cache (`fednot.audit.outputs.OracleStore`); an interrupted audit resumes from
``outputs.json``, skipping every model already done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fednot.audit.outputs import ModelOutputs
from fednot.audit.report import score_methods, write_reports
from fednot.audit.sampler import ModelSampler, SamplerPool
from fednot.benchmark.experiment import Experiment
from fednot.benchmark.results import REFERENCE
from fednot.benchmark.runner import create_methods, history_union
from fednot.benchmark.scenarios import shared_kind
from fednot.benchmark.scenarios.sequence import refuse_sequence
from fednot.config import RunConfig
from fednot.configio import to_dict, to_toml
from fednot.environment import use_threads
from fednot.errors import ConfigError
from fednot.federation.outcome import Trained
from fednot.progress import Progress, Silent
from fednot.store.cache import atomic_write_text, read_json_state
from fednot.unlearning.base import Unlearner
from fednot.version import __version__

MIN_MODELS = 6
"""The fewest models per method: the Retrain split-half score needs 3 a side."""


def audit_config(config: RunConfig, seed: int) -> RunConfig:
    """``config`` as the audit runs it: its one seed, no trajectories (final models only)."""
    return replace(config, seeds=(seed,), eval=replace(config.eval, curve_every=0))


class Audit:
    """Runs an audit into a folder; see the module docstring.

    Args:
        config: the configuration (its ``unlearn.methods`` are audited, Retrain always).
        out: the audit folder.
        models: N, the number of retrained and of unlearned models per method.
        seed: the seed of the data, the partition, the request and the original model.
        jobs: models produced at once, each in its own worker process (1: in this process).
        progress: where progress lines go.
    """

    def __init__(
        self,
        config: RunConfig,
        out: Path,
        *,
        models: int,
        seed: int,
        jobs: int = 1,
        progress: Progress | None = None,
    ) -> None:
        refuse_sequence(config, "fednot audit")
        if jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {jobs}.")
        if models < MIN_MODELS:
            raise ConfigError(
                f"An audit needs at least {MIN_MODELS} models per method (--models), got "
                f"{models}: Retrain's own score compares two halves of at least 3 models."
            )
        if config.unlearn.target_val_acc == "retrain":
            raise ConfigError(
                'unlearn.target_val_acc = "retrain" stops each recovery at one Retrain model\'s '
                "accuracy, which an audit of many retrained models does not define. Use the "
                'default fixed budget, a number, or "original".'
            )
        self.config = audit_config(config, seed)
        self.out = out
        self.models = models
        self.seed = seed
        self.jobs = jobs
        # results depend on the thread count: each worker's is part of the audit's identity
        threads = config.threads or torch.get_num_threads()
        self.worker_threads = threads if jobs == 1 else max(1, threads // jobs)
        self.progress = progress or Silent()
        self.outputs: dict[str, dict[int, ModelOutputs]] = {}
        self.elapsed = 0.0  # seconds spent by earlier invocations on this folder
        self.original_seconds = 0.0  # pre-training the original, over every invocation
        self._resume()

    def _identity(self) -> dict[str, Any]:
        """What must match for ``outputs.json`` to be continued (the methods may differ)."""
        config = to_dict(self.config)
        config["unlearn"] = {k: v for k, v in config["unlearn"].items() if k != "methods"}
        return {
            "config": config,
            "seed": self.seed,
            "models": self.models,
            "threads_per_model": self.worker_threads,
        }

    def _resume(self) -> None:
        previous = read_json_state(self.out / "outputs.json")
        if previous is None:
            return
        if previous.get("identity") != self._identity():
            raise ConfigError(
                f"{self.out} holds an audit with another configuration, seed or number of "
                "models; choose another --out (or delete the folder) to start a new audit."
            )
        self.outputs = {
            method: {int(k): ModelOutputs.from_dict(v) for k, v in models.items()}
            for method, models in previous["outputs"].items()
        }
        self.elapsed = float(previous.get("elapsed_seconds", 0.0))
        self.original_seconds = float(previous.get("original_seconds", 0.0))
        done = sum(len(m) for m in self.outputs.values())
        self.progress.phase(f"resuming {self.out}: {done} models already audited")

    def execute(self) -> dict[str, Any]:
        """Produce every missing model, score the methods, write the reports; return audit.json.

        Every model, the original included, trains with the same number of torch threads
        (``threads_per_model``), so ``--jobs 2 --threads 2`` and ``--threads 1`` give the same
        models bit for bit.
        """
        start = time.perf_counter()
        methods = create_methods(self.config)
        for name, method in methods.items():
            reason = method.not_applicable(shared_kind(self.config.scenario.kind))
            if reason is not None:
                raise ConfigError(f"Cannot audit {name!r}: {reason}")
        exp = Experiment(self.config, self.seed, progress=self.progress)
        for method in methods.values():
            method.validate(exp.model)
        exp.check_request()
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(to_toml(self.config), self.out / "config.toml")
        threads = torch.get_num_threads()
        use_threads(self.worker_threads)
        try:
            self._produce(exp, methods)
        finally:
            use_threads(threads)
        scoring = time.perf_counter()
        report = score_methods(self.outputs, methods, self.models, self.seed)
        now = time.perf_counter()
        report["seconds"] = {
            "wall": self.elapsed + now - start,
            "original": self.original_seconds,
            "scoring": now - scoring,
            "this_invocation": now - start,
        }
        self.elapsed += now - start
        self._save()
        report["jobs"], report["threads_per_model"] = self.jobs, self.worker_threads
        report["fednot_version"] = __version__
        report["request"] = exp.scenario.request.to_dict()
        report["forget_samples"] = len(exp.split(exp.scenario.request).forget)
        write_reports(report, self.config, self.out)
        return report

    def _produce(self, exp: Experiment, methods: Mapping[str, Unlearner]) -> None:
        """Pre-train the original if a method needs it, then every missing model."""
        original: Trained | None = None
        start = time.perf_counter()
        if any(len(self.outputs.get(m, {})) < self.models for m in methods if m != REFERENCE):
            self.progress.phase(f"seed {self.seed}: the original model")
            original = exp.pretrain(history=history_union(methods.values()))
        self.original_seconds += time.perf_counter() - start
        pool = SamplerPool(ModelSampler(exp, original), self.jobs, self.worker_threads)
        # seed by seed, so that an audit stopped early holds every method's first models
        tasks = [
            (m, k) for k in range(self.models) for m in methods if k not in self.outputs.get(m, {})
        ]
        if tasks:
            self.progress.phase(f"{len(tasks)} models to produce, {self.jobs} at a time")
        for (name, k), outputs in pool.results(tasks):
            self.outputs.setdefault(name, {})[k] = outputs
            self._save()
            self._report(name, k, outputs)

    def _report(self, name: str, k: int, outputs: ModelOutputs) -> None:
        done = len(self.outputs[name])
        status = (
            f"diverged: {outputs.diverged}"
            if outputs.diverged
            else f"retain {outputs.retain_acc:.2f}  forget {outputs.forget_acc:.2f}  "
            f"test {outputs.test_acc:.2f}"
        )
        self.progress.info(
            f"{name}: model {k} ({done}/{self.models} done)  {status}  ({outputs.seconds:.1f} s)"
        )

    def _save(self) -> None:
        data = {
            "fednot_version": __version__,
            "identity": self._identity(),
            "elapsed_seconds": self.elapsed,
            "original_seconds": self.original_seconds,
            "outputs": {
                method: {str(k): v.to_dict() for k, v in sorted(models.items())}
                for method, models in self.outputs.items()
            },
        }
        atomic_write_text(json.dumps(data, allow_nan=False), self.out / "outputs.json")
