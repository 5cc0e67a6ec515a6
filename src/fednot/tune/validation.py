"""The validation request the tuner searches on: another target client, other seeds, own test set.

The tuner never sees the request a bench reports. `validation_request` picks, by default, the
next client ids after the reported targets (as many as there are targets) and the seeds
`DEFAULT_SEEDS` (`MIN_SEEDS` of them; fewer are allowed, with `seeds_warning`), and refuses any
overlap with the reported clients or seeds. The centralized scenario has one data holder: its
validation request differs by seed only (each seed draws another forget set).

`validation_config` is the configuration the trials run under: the reported one with the
validation request and seeds, a test set held out of the training split (``data.holdout_test``,
so the data set's own test split, which the bench reports on, is never read), only the tuned
methods (and Retrain), and two evaluation costs the objective does not read turned off:
trajectories (``eval.curve_every = 0``) and the MIA's noise floor
(``eval.mia_null_permutations = 0``). `trial_config` sets one trial's values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fednot.benchmark.results import REFERENCE
from fednot.benchmark.scenarios import shared_kind
from fednot.config import TUNED_RECOVERY_LR, RunConfig
from fednot.errors import ConfigError

DEFAULT_SEEDS: tuple[int, ...] = (1000, 1001, 1002)
"""Validation seeds unless ``--seeds`` says otherwise (no preset reports them)."""

MIN_SEEDS = 3
"""The validation seeds the protocol asks for; fewer run, with `seeds_warning` (docs/tuning.md)."""


@dataclass(frozen=True)
class ValidationRequest:
    """The forget request and seeds of every trial."""

    clients: tuple[int, ...]
    seeds: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the seeds warning ("" when there are enough seeds)."""
        return {
            "forget_clients": list(self.clients),
            "seeds": list(self.seeds),
            "seeds_warning": seeds_warning(self.seeds),
        }


def seeds_warning(seeds: Sequence[int]) -> str:
    """Why ``seeds`` are too few for the protocol, or "" if they are not (`MIN_SEEDS`)."""
    if len(seeds) >= MIN_SEEDS:
        return ""
    return (
        f"{len(seeds)} validation seed{'s' if len(seeds) != 1 else ''}, fewer than the "
        f"{MIN_SEEDS} the protocol asks for: the objective's spread over seeds is not measured "
        "as documented (docs/tuning.md); use --seeds with at least 3 seeds for a tuning to ship."
    )


def validation_request(
    config: RunConfig,
    target: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
) -> ValidationRequest:
    """The validation request for the reported ``config``; `ConfigError` if it overlaps it.

    Args:
        config: the reported configuration (its ``unlearn.forget_clients`` and ``seeds``).
        target: the validation's target clients (default: the next ids after the reported ones).
        seeds: the validation seeds (default: `DEFAULT_SEEDS`).
    """
    chosen_seeds = tuple(DEFAULT_SEEDS if seeds is None else seeds)
    if not chosen_seeds or len(set(chosen_seeds)) != len(chosen_seeds):
        raise ConfigError(f"Expected distinct validation seeds, got {list(chosen_seeds)}.")
    reported = config.unlearn.forget_clients
    shared = sorted(set(chosen_seeds) & set(config.seeds))
    if shared:
        raise ConfigError(
            f"Validation seeds {shared} are among the reported seeds {list(config.seeds)}: the "
            "tuner never tunes on what the bench reports. Choose other seeds with --seeds "
            f"(default: {','.join(map(str, DEFAULT_SEEDS))})."
        )
    clients = _next_clients(config) if target is None else tuple(target)
    if target is not None:
        taken = sorted(set(clients) & set(reported))
        outside = [c for c in clients if not 0 <= c < config.data.num_clients]
        if taken or outside or not clients:
            raise ConfigError(
                f"Expected --target to name clients in 0..{config.data.num_clients - 1} other "
                f"than the reported targets {list(reported)}, got {list(clients)}."
            )
    return ValidationRequest(clients, chosen_seeds)


def _next_clients(config: RunConfig) -> tuple[int, ...]:
    """As many client ids as reported targets: the next ones after the first, wrapping around."""
    reported = config.unlearn.forget_clients
    count = config.data.num_clients
    ring = [(reported[0] + step) % count for step in range(1, count)]
    others = [c for c in ring if c not in reported][: len(reported)]
    if len(others) == len(reported):
        return tuple(others)
    if shared_kind(config.scenario.kind) == "centralized":
        return reported  # one data holder: another seed draws another forget set
    raise ConfigError(
        f"No validation target: the federation's {count} clients leave fewer than "
        f"{len(reported)} clients besides the reported targets {list(reported)}. Use more clients "
        "(data.num_clients) or fewer targets."
    )


def validation_config(
    config: RunConfig, methods: Sequence[str], request: ValidationRequest
) -> RunConfig:
    """``config`` on the validation request, running Retrain and ``methods`` (see module doc)."""
    keep = set(methods)
    unlearn = config.unlearn
    own_lr = {m: lr for m, lr in unlearn.method_recovery_lr.items() if m in keep}
    return replace(
        config,
        seeds=request.seeds,
        data=replace(config.data, holdout_test=True),
        unlearn=replace(
            unlearn,
            forget_clients=request.clients,
            methods=(REFERENCE, *(m for m in methods if m != REFERENCE)),
            method_recovery_lr=own_lr,
        ),
        eval=replace(config.eval, curve_every=0, mia_null_permutations=0),
        options={m: dict(o) for m, o in config.options.items() if m in keep},
        tuned={},
    )


def trial_config(config: RunConfig, method: str, params: Mapping[str, Any]) -> RunConfig:
    """``config`` with ``method``'s options and its own recovery learning rate from ``params``.

    ``params`` maps option names to values; the key `fednot.config.TUNED_RECOVERY_LR` sets
    ``unlearn.method_recovery_lr.<method>``.
    """
    options = {k: v for k, v in params.items() if k != TUNED_RECOVERY_LR}
    own_lr = dict(config.unlearn.method_recovery_lr)
    if TUNED_RECOVERY_LR in params:
        own_lr[method] = float(params[TUNED_RECOVERY_LR])
    return replace(
        config,
        options={**config.options, method: {**config.options.get(method, {}), **options}},
        unlearn=replace(config.unlearn, method_recovery_lr=own_lr),
    )
