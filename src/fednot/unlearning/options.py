"""The one way a method validates its hyperparameters.

A method takes its hyperparameters as keyword-only constructor arguments with the published
defaults and passes each through one of these checks, which return the value (as the expected
type) or raise `ConfigError` naming the option, what was expected and what was given:

```python
self.epochs = positive_int(epochs, "epochs")
self.momentum = unit_float(momentum, "momentum")
self.variant = one_of(variant, "variant", ("regular", "special"))
```

``fednot tune`` varies what the method declares in ``search_space``; these checks hold for any
value, tuned or set by hand (``--set options.<method>.<option>=...``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from fednot.errors import ConfigError

T = TypeVar("T")


def _expected(name: str, what: str, value: object) -> ConfigError:
    return ConfigError(f"Expected `{name}` to be {what}, got {value!r}.")


def positive_int(value: object, name: str) -> int:
    """``value`` if it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _expected(name, "a positive int", value)
    return value


def non_negative_int(value: object, name: str) -> int:
    """``value`` if it is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _expected(name, "a non-negative int", value)
    return value


def positive_float(value: object, name: str) -> float:
    """``value`` as a float if it is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _expected(name, "a positive float", value)
    return float(value)


def non_negative_float(value: object, name: str) -> float:
    """``value`` as a float if it is a number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise _expected(name, "a non-negative float", value)
    return float(value)


def unit_float(value: object, name: str) -> float:
    """``value`` as a float if it is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _expected(name, "a float in [0, 1]", value)
    return float(value)


def float_in(
    value: object, name: str, low: float, high: float, *, high_open: bool = False
) -> float:
    """``value`` as a float if it lies in [low, high] (or [low, high) with ``high_open``)."""
    what = f"a float in [{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _expected(name, what, value)
    if not (low <= value < high if high_open else low <= value <= high):
        raise _expected(name, what, value)
    return float(value)


def one_of(value: T, name: str, choices: Sequence[T]) -> T:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise _expected(name, f"one of {list(choices)}", value)
    return value


def expect(ok: bool, name: str, what: str, value: object) -> None:
    """Raise ``ConfigError("Expected `name` to be <what>, got <value>.")`` unless ``ok``.

    For what the checks above cannot say (e.g. a multiple of another option).
    """
    if not ok:
        raise _expected(name, what, value)


def optional(value: object, check: Callable[[object, str], T], name: str) -> T | None:
    """``None``, or ``value`` through ``check`` (one of the checks above)."""
    return None if value is None else check(value, name)


def layer_selection(value: object, name: str) -> str | tuple[str, ...]:
    """``'first'``, ``'last'``, ``'all'`` or layer names (a list becomes a tuple)."""
    if isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, str | tuple) or not value:
        raise _expected(name, "'first', 'last', 'all' or layer names", value)
    return value
