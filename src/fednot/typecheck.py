"""Strict checking of configuration values and keyword options against type hints.

Used by the TOML loader (`fednot.configio`) and wherever user options are passed by name to a
constructor (model options, method options), so that unknown keys and wrong types are errors
with a message naming the key, the expected type and the value found.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fednot.errors import ConfigError


def describe(annotation: Any) -> str:
    """Return a readable name for a type annotation."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def check_value(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` converted to ``annotation`` or raise `ConfigError`.

    Conversions are limited to the lossless ones a TOML or command-line value needs: a list
    becomes a tuple, an int becomes a float. A bool is never accepted as a number.
    """
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is object:
        return value
    if origin in (typing.Union, types.UnionType):
        return _check_union(value, typing.get_args(annotation), annotation, where)
    if origin is typing.Literal:
        if value in typing.get_args(annotation):
            return value
        raise ConfigError(
            f"Expected `{where}` to be one of {list(typing.get_args(annotation))}, got {value!r}."
        )
    if origin is tuple:
        return _check_tuple(value, typing.get_args(annotation), where)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"Expected `{where}` to be a table, got {value!r}.")
        _, value_type = typing.get_args(annotation)
        return {str(k): check_value(v, value_type, f"{where}.{k}") for k, v in value.items()}
    return _check_scalar(value, annotation, where)


def _check_union(value: Any, options: tuple[Any, ...], annotation: Any, where: str) -> Any:
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is type(None):
            continue
        try:
            return check_value(value, option, where)
        except ConfigError:
            continue
    raise ConfigError(f"Expected `{where}` to be {describe(annotation)}, got {value!r}.")


def _check_tuple(value: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"Expected `{where}` to be a list, got {value!r}.")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if len(args) != len(value):
        raise ConfigError(f"Expected `{where}` to have {len(args)} items, got {value!r}.")
    return tuple(
        check_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
    )


def _check_scalar(value: Any, annotation: Any, where: str) -> Any:
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"Expected `{where}` to be {describe(annotation)}, got {value!r}.")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ConfigError(f"Expected `{where}` to be {describe(annotation)}, got {value!r}.")


def keyword_parameters(
    signature: inspect.Signature, skip: Sequence[str] = ()
) -> dict[str, inspect.Parameter]:
    """The parameters an option can set: keyword ones, without ``self`` and ``skip``."""
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in kinds and name not in ("self", *skip)
    }


def check_options(
    factory: Callable[..., Any],
    options: Mapping[str, Any],
    what: str,
    *,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check ``options`` against the keyword parameters of ``factory``.

    Args:
        factory: a class or function whose keyword parameters are annotated.
        options: the user's keyword options.
        what: a name for messages, e.g. ``"method 'not'"``.
        skip: parameters the caller fills itself; passing them is an error.

    Returns:
        The options with values converted as in `check_value`.
    """
    target = factory.__init__ if inspect.isclass(factory) else factory
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - user code's annotations may not resolve; check names only
        hints = {}
    known = keyword_parameters(signature, skip)
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            offer = f"Known options: {', '.join(sorted(known))}." if known else "It takes none."
            raise ConfigError(f"Unknown option `{key}` for {what}. {offer}")
        checked[key] = check_value(value, hints.get(key, Any), f"{what}.{key}")
    return checked
