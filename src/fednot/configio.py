"""Load a `RunConfig` from TOML plus ``key=value`` overrides, and write it back as TOML."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar

from fednot.config import (
    RunConfig,
    ScenarioSettings,
    UnlearnConfig,
    scenario_kinds,
    scenario_settings_class,
    select_methods,
)
from fednot.config.scenario import without_flat_defaults
from fednot.errors import ConfigError
from fednot.presets import load_preset, load_scenario, merge, read_toml
from fednot.typecheck import check_options, check_value
from fednot.unlearning.registry import unlearner_class, unlearner_names

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build the dataclass ``cls`` from a nested mapping, rejecting unknown keys and bad types."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"Expected `{where or 'config'}` to be a table, got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            section = f"[{where}]" if where else "the top level"
            if issubclass(cls, ScenarioSettings):
                section = f"[{where}] of scenario.kind {data.get('kind', 'client')!r}"
            raise ConfigError(
                f"Unknown configuration key `{path}`. Known keys in {section}: "
                f"{', '.join(sorted(fields))}.{_kinds_with(cls, key)}"
            )
        hint = hints[key]
        if hint is ScenarioSettings:
            kind = value.get("kind", "client") if isinstance(value, Mapping) else "client"
            settings = scenario_settings_class(str(kind))
            table = (
                without_flat_defaults(settings, dict(value))
                if isinstance(value, Mapping)
                else value
            )
            kwargs[key] = from_dict(settings, table, path)
        elif dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, path)  # type: ignore[arg-type]
        else:
            kwargs[key] = check_value(value, hint, path)
    return cls(**kwargs)


def _kinds_with(cls: type, key: str) -> str:
    """For a scenario's settings: the scenario kinds that have ``key``, as a sentence."""
    if not (isinstance(cls, type) and issubclass(cls, ScenarioSettings)):
        return ""
    kinds = [k for k in scenario_kinds() if key in scenario_settings_class(k).keys()]
    return f" `{key}` is a key of the scenario kinds {', '.join(kinds)}." if kinds else ""


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b=value"`` into a key path and a value.

    The value is read as a TOML value (``3``, ``0.5``, ``true``, ``[0, 1]``, ``"x"``); text that
    is not valid TOML is taken as a plain string, so ``data.dataset=cifar10`` needs no quotes.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Expected an override of the form key=value, got {text!r}.")
    return _key_path(key, text), _toml_value(raw.strip())[0]


def _toml_value(raw: str) -> tuple[Any, bool]:
    """``raw`` read as a TOML value, and True; ``raw`` itself and False if it is not TOML."""
    try:
        return tomllib.loads(f"v = {raw}")["v"], True
    except tomllib.TOMLDecodeError:
        return raw, False


def _key_path(key: str, text: str) -> list[str]:
    """``a."pkg.mod:Cls".b`` -> ``["a", "pkg.mod:Cls", "b"]`` (quoted parts as in TOML)."""
    part = r'\s*(?:"([^"]+)"|([^".\s][^".]*?))\s*'
    if not re.fullmatch(rf"{part}(?:\.{part})*", key):
        raise ConfigError(
            f'Expected a key such as train.lr or options."pkg.mod:Cls".x, got {key!r} in {text!r}.'
        )
    return [quoted or bare for quoted, bare in re.findall(rf"{part}(?:\.|$)", key)]


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` override set."""
    result: dict[str, Any] = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        value = _as_list(path, text.partition("=")[2].strip(), value)
        node = result
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Cannot set `{text}`: `{part}` is a value, not a table.")
            node = child
        node[path[-1]] = value
    return result


def _as_list(path: list[str], raw: str, value: Any) -> Any:
    """The list a plain ``a,b`` (or a lone ``a``) stands for where the key holds a list.

    ``--set seeds=0,1`` and ``--set unlearn.methods=retrain,not`` read as ``[0, 1]`` and
    ``["retrain", "not"]``: each element as a TOML value, or as text where the key holds text.
    A key that also takes one value (``options.not.layers``) keeps a lone ``a`` as it is. TOML
    lists, tables and quoted strings pass unchanged; `from_dict` then checks each element's type.
    """
    shape = _list_shape(_key_type(path))
    if (
        shape is None
        or isinstance(value, list | dict)
        or (isinstance(value, str) and _toml_value(raw)[1])
    ):
        return value
    element, single_too = shape
    if not isinstance(value, str) or "," not in value:
        return value if single_too else [value]
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        key = ".".join(path)
        raise ConfigError(
            f"Expected `{key}` to be comma-separated values with none empty (--set {key}=a,b) "
            f"or a TOML list, got {raw!r}."
        )
    return [part if element is str else _toml_value(part)[0] for part in parts]


def _list_shape(hint: Any) -> tuple[Any, bool] | None:
    """The element type of a list type (or of a union holding one), or ``None``.

    With it, whether the union also takes a lone value of another type (``str | tuple[str, ...]``).
    """
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) else ()
    lists = [m for m in members or (hint,) if typing.get_origin(m) is tuple]
    if not lists:
        return None
    args = typing.get_args(lists[0])
    element = args[0] if len(args) == 2 and args[1] is Ellipsis else Any
    others = [m for m in members if m is not type(None) and m not in lists]
    return element, bool(others)


def _key_type(path: list[str]) -> Any:
    """The declared type of the configuration key ``path`` of a `RunConfig` (`Any` if unknown).

    ``options.<method>.<option>`` is the option's type in the constructor of a registered method
    (names outside the registry are not imported here); ``scenario.<key>`` the key's type in a
    scenario kind that has it.
    """
    if len(path) == 3 and path[0] == "options":
        if path[1] not in unlearner_names():
            return Any
        try:
            return typing.get_type_hints(unlearner_class(path[1]).__init__).get(path[2], Any)
        except Exception:  # noqa: BLE001 - a registered class's annotations may not resolve
            return Any
    if len(path) == 2 and path[0] == "scenario":  # the first kind that has the key
        for kind in scenario_kinds():
            hints = typing.get_type_hints(scenario_settings_class(kind))
            if path[1] in hints:
                return hints[path[1]]
        return Any
    hint: Any = RunConfig
    for part in path:
        if dataclasses.is_dataclass(hint):
            hint = typing.get_type_hints(hint).get(part, Any)
        elif typing.get_origin(hint) is dict:
            hint = typing.get_args(hint)[1]
        else:
            return Any
    return hint


def as_overrides(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The ``key=value`` overrides that set every value of the nested mapping ``data``."""
    result: list[str] = []
    for key, value in data.items():
        part = str(key) if re.fullmatch(r"[A-Za-z0-9_-]+", str(key)) else json.dumps(str(key))
        path = f"{prefix}.{part}" if prefix else part
        if isinstance(value, Mapping) and value:
            result.extend(as_overrides(value, path))
        else:
            result.append(f"{path}={json.dumps(value)}")
    return result


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    *,
    preset: str | None = None,
    scenario: str | None = None,
) -> RunConfig:
    """Load the defaults, a shipped preset, a scenario fragment, a TOML file, then overrides.

    The preset's method selector, with the scenario's additions, holds unless the file or an
    override sets ``unlearn.methods``; settings of methods that the selection leaves out are not
    used (`without_unrun_settings`).
    """
    data: dict[str, Any] = {}
    if preset is not None:
        data = load_preset(preset)
    if scenario is not None:
        data = with_scenario(data, load_scenario(scenario))
    if path is not None:
        data = merge(data, read_toml(path))
    return from_dict(RunConfig, without_unrun_settings(apply_overrides(data, overrides)))


ADD_METHODS = "add_methods"
"""The key of a scenario fragment's ``[unlearn]`` that adds entries to the method selector."""


def with_scenario(data: dict[str, Any], fragment: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the scenario ``fragment`` applied over it.

    The fragment's ``unlearn.add_methods`` entries are appended to the selector in ``data``
    (the defaults' when it has none): a scenario adds methods (or groups) to a preset, and
    the preset's exclusions still apply (`fednot.config.methods`).
    """
    unlearn = dict(fragment.get("unlearn", {}))
    added = unlearn.pop(ADD_METHODS, [])
    result = merge(data, {**fragment, "unlearn": unlearn})
    if added:
        current = result.get("unlearn", {}).get("methods", list(UnlearnConfig().methods))
        result = merge(result, {"unlearn": {"methods": [*current, *added]}})
    return result


def without_unrun_settings(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the options, own learning rates and tuned marks of methods not run.

    A preset may tune methods that a run leaves out (``--methods ft,not``): their settings are
    not used. Only registered methods are dropped, after checking their option names; a name
    that no registered method has stays, for `RunConfig` to refuse as a setting that does
    nothing (it may be a misspelt method).
    """
    unlearn = data.get("unlearn", {})
    entries = (
        unlearn.get("methods", list(UnlearnConfig().methods)) if isinstance(unlearn, dict) else 0
    )
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return data  # from_dict says what is wrong with it
    selected, known = set(select_methods(entries)), set(unlearner_names())

    def unrun(table: Any) -> set[str]:
        return (set(table) - selected) & known if isinstance(table, dict) else set()

    options = data.get("options", {})
    for name in sorted(unrun(options)):
        if isinstance(options[name], dict):  # else from_dict says what is wrong with it
            check_options(unlearner_class(name), options[name], f"method {name!r}")
    result: dict[str, Any] = json.loads(json.dumps(data))
    for table in (result.get("options"), result.get("tuned"), unlearn_table(result)):
        if isinstance(table, dict):
            for name in unrun(table):
                del table[name]
    return result


def unlearn_table(data: dict[str, Any]) -> Any:
    """``data["unlearn"]["method_recovery_lr"]``, or ``None`` where it is absent."""
    unlearn = data.get("unlearn")
    return unlearn.get("method_recovery_lr") if isinstance(unlearn, dict) else None


def to_dict(config: object) -> dict[str, Any]:
    """Return a JSON-ready nested dict of a dataclass (tuples become lists)."""
    result: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(config)))  # type: ignore[call-overload]
    return result


def to_toml(config: RunConfig, *, unset: bool = False) -> str:
    """Serialise a configuration as TOML that `load_config` reads back to an equal config.

    Keys whose value is ``None`` are omitted (every optional key defaults to ``None``), or with
    ``unset=True`` written as comments, ``# key = None``, so that every key is shown.
    """
    lines: list[str] = []
    write_table(lines, [], to_dict(config), unset=unset)
    return "\n".join(lines).strip() + "\n"


def write_table(
    lines: list[str], path: list[str], table: Mapping[str, Any], *, unset: bool
) -> None:
    """Append ``table`` (at ``path``) to ``lines`` as TOML: its values, then its sub-tables."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if not unset:
        scalars = {k: v for k, v in scalars.items() if v is not None}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append(f"\n[{'.'.join(_key(p) for p in path)}]")
    for key, value in scalars.items():
        lines.append(
            f"# {_key(key)} = None" if value is None else f"{_key(key)} = {json.dumps(value)}"
        )
    for key, value in tables.items():
        write_table(lines, [*path, key], value, unset=unset)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)
