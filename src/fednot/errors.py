"""Every exception and warning fednot raises, in one place.

Messages say what was expected, what was found, and what to do next.
"""

from __future__ import annotations


class FedNotError(Exception):
    """Base class of every fednot error."""


class ConfigError(FedNotError, ValueError):
    """A configuration value, a key or an argument is invalid."""


class DataError(FedNotError):
    """A dataset file is missing, corrupt or laid out differently than expected."""


class DivergenceError(FedNotError):
    """Training produced a non-finite loss or non-finite weights.

    Raised by the phase that diverged (pre-training, Retrain, a method's step or its recovery),
    naming the phase, the round and the likely cause, so that no non-finite model is ever
    cached, saved or evaluated.
    """


class UnsupportedModelError(FedNotError):
    """The model cannot serve the requested operation (e.g. a layer it does not have)."""


class UnsupportedScenarioError(FedNotError):
    """The method cannot serve the requested forgetting scenario."""


class TooFewNodesError(FedNotError):
    """Fewer nodes are left than a Flower strategy waits for.

    Raised before a request is served, so that recovery rounds never wait forever for nodes
    that will not come (the forgotten ones get no message). ``left`` and ``required`` are the
    two numbers; the message says how to get more nodes or a lower minimum.
    """

    def __init__(self, message: str, *, left: int, required: int) -> None:
        super().__init__(message)
        self.left = left
        self.required = required


class MissingRequirementError(FedNotError):
    """A method reached for something it did not declare in its requirements.

    The engine hands a method only what its `Requirements` declare (stored history, the forget
    data, server-side data). Anything else raises this error, so a method's claim such as NoT's
    "no access to the forgotten data" holds by construction.
    """


class ContractError(FedNotError):
    """Code fednot calls (a method's step, say) returned something its contract rules out.

    The message names the code and what was expected, so a plugin's author can fix it.
    """


class DamagedFileError(FedNotError):
    """A cache entry or checkpoint fednot wrote cannot be read back, or changed since.

    ``reason`` completes a sentence about the file, e.g. "is unreadable (UnpicklingError: ...)".
    The cache turns this error into a `FedNotWarning` and recomputes the entry;
    `fednot.checkpoint` into a `ConfigError` that asks to re-create the checkpoint.
    """

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path
        self.reason = reason


class LedgerError(FedNotError):
    """A deletion ledger cannot be read, is damaged, or changed after fednot wrote it.

    Never recovered silently: a ledger read as empty would let forgotten clients train again.
    The message names the file, what is wrong with it and what to do (restore it from a backup).
    """


class FedNotWarning(UserWarning):
    """Base class of fednot's warnings."""


class NegationWarning(FedNotWarning):
    """A negation choice that the NoT theory says will not work as intended."""
