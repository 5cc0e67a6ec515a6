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


class UnsupportedModelError(FedNotError):
    """The model cannot serve the requested operation (e.g. a layer it does not have)."""


class UnsupportedScenarioError(FedNotError):
    """The method cannot serve the requested forgetting scenario."""


class MissingRequirementError(FedNotError):
    """A method reached for something it did not declare in its requirements.

    The engine hands a method only what its `Requirements` declare (stored history, the forget
    data, server-side data). Anything else raises this error, so a method's claim such as NoT's
    "no access to the forgotten data" holds by construction.
    """


class FedNotWarning(UserWarning):
    """Base class of fednot's warnings."""


class NegationWarning(FedNotWarning):
    """A negation choice that the NoT theory says will not work as intended."""
