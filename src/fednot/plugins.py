"""User code by reference: models, data sets and methods that live outside fednot.

A name in ``model.name``, ``data.dataset`` or ``unlearn.methods`` resolves in this order:

1. fednot's registry (``cnn``, ``mnist5k``, ``not``, ...);
2. an installed package's entry point with that name, in the group ``fednot.models``,
   ``fednot.datasets`` or ``fednot.methods`` (loaded only when the registry lacks the name);
3. an import string ``"pkg.module:attr"`` (``attr`` may be dotted: ``"pkg.mod:Outer.attr"``).

For an import string the current working folder is importable, as with ``python -m`` and
Flower's ``"pkg.module:app"``: if it is not on `sys.path`, it is put first for the import and
removed again afterwards. What the reference names must fit its kind: each registry checks its
kind's contract (`fednot.models.registry.model_factory`, `fednot.data.registry.dataset_loader`,
`fednot.unlearning.registry.method_class`); docs/plugins.md describes them and the messages.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import keyword
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypeVar

from fednot.errors import ConfigError

Kind = Literal["model", "dataset", "method"]
T = TypeVar("T")

ENTRY_POINT_GROUPS: Mapping[Kind, str] = {
    "model": "fednot.models",
    "dataset": "fednot.datasets",
    "method": "fednot.methods",
}
"""The entry-point group an installed package declares its models, data sets and methods in."""

_NOUNS: Mapping[Kind, str] = {"model": "model", "dataset": "data set", "method": "unlearner"}
_KNOWN: Mapping[Kind, str] = {"model": "Known models", "dataset": "Known", "method": "Known"}
_EXAMPLES: Mapping[Kind, str] = {
    "model": "pkg.module:make_model",
    "dataset": "pkg.module:load",
    "method": "pkg.module:MyMethod",
}
_SHOWN = 12  # public attributes listed when an attribute is missing


@dataclass(frozen=True)
class External:
    """An object found outside fednot's registry, and where it came from (for messages)."""

    name: str  # the configured string
    kind: Kind
    obj: object
    origin: str  # "import string" or "entry point of package 'x' (group fednot.models)"

    def refuse(self, expected: str, found: str | None = None) -> ConfigError:
        """The error for an object that does not fit its kind's contract."""
        return ConfigError(
            f"{_NOUNS[self.kind].capitalize()} {self.name!r} ({self.origin}) must be {expected}; "
            f"found {found or describe(self.obj)}. See docs/plugins.md for the contract."
        )


def resolve(name: str, kind: Kind, registry: Mapping[str, T], check: Callable[[External], T]) -> T:
    """Return ``registry[name]``, else the entry point or import string ``name``, checked.

    Args:
        name: a registered name, an entry-point name, or ``"pkg.module:attr"``.
        kind: what ``name`` must be, for the entry-point group and messages.
        registry: fednot's own objects of this kind, looked up first.
        check: turns an external object into the registry's type or raises `ConfigError`
            (`External.refuse`).
    """
    if name in registry:
        return registry[name]
    return check(find_external(name, kind, sorted(registry)))


def find_external(name: str, kind: Kind, known: Sequence[str]) -> External:
    """The object an entry point or an import string ``name`` refers to, unchecked.

    Raises:
        ConfigError: ``name`` is neither (the message lists ``known`` and the installed
            entry points), is malformed, or cannot be imported or loaded.
    """
    point = _entry_point(name, kind)
    if point is not None:
        return External(name, kind, _load_entry_point(point, kind), _entry_origin(point))
    if ":" not in name:
        raise _unknown(name, kind, known)
    module, attr = parse_import_string(name, kind)
    return External(name, kind, import_object(module, attr, name), "import string")


def parse_import_string(text: str, kind: Kind = "model") -> tuple[str, str]:
    """Split ``"pkg.module:attr"`` into module and (possibly dotted) attribute, checked."""
    what = f"Import string {text!r}"
    example = f"e.g. {_EXAMPLES[kind]!r}"
    if text.count(":") != 1:
        raise ConfigError(
            f"{what} has {text.count(':')} colons; expected exactly one, between the module and "
            f"the attribute ({example})."
        )
    module, attr = text.split(":")
    for part, label in ((module, "module"), (attr, "attribute")):
        if not part:
            raise ConfigError(
                f"{what} has an empty {label}; expected 'module:attribute' with both parts "
                f"({example})."
            )
        bad = [p for p in part.split(".") if not p.isidentifier() or keyword.iskeyword(p)]
        if bad:
            raise ConfigError(
                f"{what}: {label} {part!r} is not a dotted Python name ({bad[0]!r} is not an "
                f"identifier); expected 'module:attribute' ({example})."
            )
    return module, attr


def import_object(module: str, attr: str, text: str | None = None) -> object:
    """Import ``module`` (the current folder importable) and return its dotted ``attr``."""
    text = text or f"{module}:{attr}"
    try:
        with _cwd_importable(fresh=module not in sys.modules):
            obj: object = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(f"{e.name}.")):
            raise ConfigError(
                f"Cannot import module {module!r} of {text!r} ({type(e).__name__}: {e}); it must "
                f"be installed, on PYTHONPATH, or in the current folder ({os.getcwd()})."
            ) from e
        raise _import_failed(module, text, e) from e
    except ImportError as e:
        raise _import_failed(module, text, e) from e
    except SystemExit as e:  # exit() at import: fednot would exit 0 having done nothing
        raise ConfigError(
            f"Importing module {module!r} of {text!r} called exit({e.code!r}): a plugin module "
            "must define objects, not end the program. Fix the module."
        ) from e
    path = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                f"{text!r}: {path!r} has no attribute {part!r}.{_attributes(obj, part)}"
            )
        obj, path = getattr(obj, part), f"{path}.{part}"
    return obj


def describe(obj: object) -> str:
    """A short description of ``obj`` for messages: ``"function make_net(*, width=8)"``."""
    if inspect.isclass(obj):
        return f"class {obj.__qualname__}"
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return f"function {obj.__qualname__}{_signature_text(obj)}"
    return f"{type(obj).__name__} {_short_repr(obj)}"


def accepted_keywords(function: Callable[..., object], names: Sequence[str]) -> list[str]:
    """Which of ``names`` ``function`` accepts as keyword arguments (all of them with **kwargs).

    A callable without an inspectable signature (some built-ins) is taken to accept them all.
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return list(names)
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return list(names)
    by_keyword = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return [n for n in names if n in by_keyword]


# -- internals ---------------------------------------------------------------------------------


def _unknown(name: str, kind: Kind, known: Sequence[str]) -> ConfigError:
    noun = _NOUNS[kind]
    installed = sorted({p.name for p in _entry_points(kind)})
    plugins = f" Installed entry points: {', '.join(installed)}." if installed else ""
    hint = ""
    if "." in name:
        module, _, attr = name.rpartition(".")
        hint = (
            " An import string needs a colon between module and attribute: did you mean "
            f"'{module}:{attr}'?"
        )
    return ConfigError(
        f"Unknown {noun} {name!r}. {_KNOWN[kind]}: {', '.join(known)}.{plugins} Besides these "
        f"names, an import string such as {_EXAMPLES[kind]!r} or the name of an installed "
        f"package's entry point (group {ENTRY_POINT_GROUPS[kind]}) is accepted.{hint}"
    )


def installed(kind: Kind) -> dict[str, str]:
    """The entry-point names of ``kind``'s group, each with what declares it (nothing loaded)."""
    return {p.name: f"{p.value} from {_package(p)}" for p in _entry_points(kind)}


def _entry_points(kind: Kind) -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUPS[kind]))


def _entry_point(name: str, kind: Kind) -> importlib.metadata.EntryPoint | None:
    """The entry point ``name`` of the kind's group, or ``None``; two different ones are refused."""
    found = {p.value: p for p in _entry_points(kind) if p.name == name}
    if len(found) > 1:
        origins = "; ".join(f"{_package(p)} ({p.value})" for p in found.values())
        raise ConfigError(
            f"Entry point {name!r} of group {ENTRY_POINT_GROUPS[kind]} is declared by several "
            f"installed packages: {origins}. Uninstall one, or name the object by its import "
            "string 'pkg.module:attr' instead."
        )
    return next(iter(found.values()), None)


def _load_entry_point(point: importlib.metadata.EntryPoint, kind: Kind) -> object:
    try:
        return point.load()
    except SystemExit as e:
        raise ConfigError(
            f"Entry point {point.name!r} of group {ENTRY_POINT_GROUPS[kind]}, declared by "
            f"{_package(point)}, called exit({e.code!r}) when loaded. Fix that package."
        ) from e
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"Entry point {point.name!r} of group {ENTRY_POINT_GROUPS[kind]}, declared by "
            f"{_package(point)} as {point.value!r}, failed to load ({type(e).__name__}: {e}). "
            "Reinstall or fix that package, or name the object by its import string."
        ) from e


def _package(point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return f"package {dist.name!r}" if dist is not None else "an unknown package"


def _entry_origin(point: importlib.metadata.EntryPoint) -> str:
    return f"entry point {point.value!r} of {_package(point)}, group {point.group}"


def _import_failed(module: str, text: str, error: ImportError) -> ConfigError:
    return ConfigError(
        f"Importing module {module!r} of {text!r} failed ({type(error).__name__}: {error}); "
        "install what it imports, or fix the module."
    )


def _attributes(obj: object, missing: str) -> str:
    """A hint for a missing attribute: a close name, and the public attributes of ``obj``.

    Imported modules and ``from __future__`` features are left out of the list.
    """
    public = sorted(
        (
            a
            for a in dir(obj)
            if not a.startswith("_")
            and not inspect.ismodule(value := getattr(obj, a, None))
            and type(value).__module__ != "__future__"
        ),
        key=str.lower,
    )
    close = difflib.get_close_matches(missing, public, n=1)
    guess = f" Did you mean {close[0]!r}?" if close else ""
    more = f" (and {len(public) - _SHOWN} more)" if len(public) > _SHOWN else ""
    return f"{guess} Its public attributes: {', '.join(public[:_SHOWN]) or 'none'}{more}."


def _on_path(folder: str) -> bool:
    return any(os.path.abspath(entry or os.curdir) == folder for entry in sys.path)


@contextmanager
def _cwd_importable(*, fresh: bool) -> Iterator[None]:
    """Put the current folder first on `sys.path` for the duration, unless it is there already.

    ``fresh``: the module is not imported yet, so it may have been written since the import
    system last listed its folder (a notebook, a test): forget those listings.
    """
    cwd = os.getcwd()
    added = not _on_path(cwd)
    if added:
        sys.path.insert(0, cwd)
    if fresh:
        importlib.invalidate_caches()
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _signature_text(obj: Callable[..., object]) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _short_repr(obj: object, limit: int = 60) -> str:
    text = repr(obj)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
