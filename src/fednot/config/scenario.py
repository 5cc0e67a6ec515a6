"""The ``[scenario]`` table: a scenario kind's own settings, chosen by ``kind``.

Every scenario kind has its own frozen settings dataclass, a subclass of `ScenarioSettings`
registered under its kind (`register_scenario_settings`; `fednot.benchmark.scenarios` registers
the built-in kinds with their builders). A configuration's ``[scenario]`` is read into the class
its ``kind`` names, so a key that the kind does not have is an unknown key. ``client`` (the
targets leave with all their data) has no setting beyond the kind: it is `ScenarioSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from fednot.config.sections import DataConfig, UnlearnConfig, _require, _require_finite
from fednot.errors import ConfigError


@dataclass(frozen=True)
class ScenarioSettings:
    """A scenario kind's settings; the base class is the ``client`` scenario's (no other key).

    A subclass declares its keys with their defaults and ``kind`` with its registered name as
    default; `check` refuses what the other sections make impossible for it, and `unused` lists
    keys that its other settings make unused.
    """

    kind: str = "client"

    def __post_init__(self) -> None:
        _require_finite(self, "scenario")
        expected = scenario_settings_class(self.kind)
        if type(self) is not expected:
            raise ConfigError(
                f"scenario.kind = {self.kind!r} takes the settings {expected.__name__}, not "
                f"{type(self).__name__}: build that class (or let the configuration choose it)."
            )

    def check(self, data: DataConfig, unlearn: UnlearnConfig) -> None:
        """Refuse what ``data`` and ``unlearn`` make impossible (default: targets that leave)."""
        _require(
            len(unlearn.forget_clients) < data.num_clients,
            f"Forgetting all {data.num_clients} clients leaves no retained data to recover on; "
            "keep at least one client.",
        )

    def unused(self) -> list[str]:
        """``"key (why it is unused)"`` for keys set away from their default that do nothing."""
        return []

    @classmethod
    def keys(cls) -> list[str]:
        """The keys of this kind's table, ``kind`` first."""
        return [f.name for f in fields(cls)]


FLAT_DEFAULTS: dict[str, object] = {
    "classes": [0],
    "class_scope": "target",
    "forget_ratio": 0.5,
    "forget_ids": None,
    "centralized_forget": "random",
    "poison_fraction": 0.8,
    "trigger_size": 3,
    "trigger_position": [-4, -4],
    "target_label": 0,
}
"""The keys of fednot 0.3's single ``[scenario]`` table, with their defaults.

Configurations written by it (``config.toml`` of a run, checkpoints, tuned presets) list every
key; `without_flat_defaults` drops those that the kind lacks while they hold their default, as
fednot 0.3 accepted them (a changed one was refused then as unused, and is unknown now).
"""


def without_flat_defaults(
    cls: type[ScenarioSettings], table: dict[str, object]
) -> dict[str, object]:
    """``table`` without the fednot 0.3 keys that ``cls`` lacks and that hold their default."""
    own = set(cls.keys())
    return {
        key: value
        for key, value in table.items()
        if key in own or key not in FLAT_DEFAULTS or _normal(value) != FLAT_DEFAULTS[key]
    }


def _normal(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


_SETTINGS: dict[str, type[ScenarioSettings]] = {"client": ScenarioSettings}


def register_scenario_settings(cls: type[ScenarioSettings]) -> type[ScenarioSettings]:
    """Register ``cls`` under the default of its ``kind`` field; usable as a class decorator."""
    kind = _default_kind(cls)
    if kind in _SETTINGS and _SETTINGS[kind] is not cls:
        raise ConfigError(f"A scenario kind {kind!r} is already registered.")
    _SETTINGS[kind] = cls
    return cls


def _default_kind(cls: type[ScenarioSettings]) -> str:
    default = next(f.default for f in fields(cls) if f.name == "kind")
    if not isinstance(default, str) or not default:
        raise ConfigError(f"{cls.__name__} must give `kind` its registered name as default.")
    return default


def scenario_settings_class(kind: str) -> type[ScenarioSettings]:
    """The settings class of the scenario ``kind``."""
    if kind not in _SETTINGS:
        raise ConfigError(
            f"Unknown scenario.kind {kind!r}. Scenario kinds: {', '.join(scenario_kinds())}."
        )
    return _SETTINGS[kind]


def scenario_kinds() -> list[str]:
    """The registered scenario kinds, in registration order."""
    return list(_SETTINGS)
