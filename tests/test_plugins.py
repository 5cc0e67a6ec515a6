"""User code by reference (`fednot.plugins`): models, data sets and methods from outside fednot.

Each test writes a tiny package, ``extpkg``, into a temporary folder and names its objects by
import string (``"extpkg:make_net"``) or through entry points, as a user's own package would.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from fednot.benchmark.experiment import Experiment
from fednot.cli.app import main
from fednot.configio import load_config
from fednot.data.registry import dataset_info, loader_arguments, read_dataset
from fednot.errors import ConfigError, MissingRequirementError
from fednot.models.registry import create_model
from fednot.testing import check_unlearner, set_args
from fednot.types import ForgetRequest
from fednot.unlearning.registry import create_unlearner, unlearner_class

EXTPKG = '''
"""A package outside fednot: a model factory, a data set loader and unlearning methods."""

from __future__ import annotations

import torch
from torch import nn

from fednot.unlearning.base import Unlearner, UnlearnResult

CALLS: list[str] = []  # what fednot called, so tests can tell a resumed cell from a re-run
CONSTANT = 3


def make_net(*, input_shape: tuple[int, int, int], num_classes: int, width: int = 8) -> nn.Module:
    channels, height, width_px = input_shape
    return nn.Sequential(
        nn.Flatten(), nn.Linear(channels * height * width_px, width), nn.ReLU(),
        nn.Linear(width, num_classes),
    )


class Nets:
    class Inner:
        @staticmethod
        def make(**options):
            return make_net(input_shape=options["input_shape"], num_classes=options["num_classes"])


def wrong_signature(shape, classes):
    return make_net(input_shape=shape, num_classes=classes)


def not_a_module(*, input_shape, num_classes):
    return 42


def load(root=None, image_size=None):
    CALLS.append(f"load root={root} image_size={image_size}")
    generator = torch.Generator().manual_seed(0)
    prototypes = torch.rand((4, 1, 8, 8), generator=generator) * 255

    def split(count):
        labels = torch.arange(count) % 4
        pixels = prototypes[labels] + 30 * torch.randn((count, 1, 8, 8), generator=generator)
        return pixels.clamp(0, 255).round().to(torch.uint8), labels

    return split(240), split(80)


def load_needs_more(root, count):
    return load(root)


class Scale(Unlearner):
    name = "scale"
    title = "Scale"

    def __init__(self, *, factor: float = 0.5) -> None:
        self.factor = factor

    def unlearn(self, state, ctx):
        CALLS.append(f"scale factor={self.factor}")
        return UnlearnResult(
            {k: v * self.factor if v.is_floating_point() else v.clone() for k, v in state.items()}
        )


class ScaleAgain(Scale):
    """Another class with the same `name`."""


class Original(Scale):
    name = "original"


class Peek(Unlearner):
    """Reads the forget data without declaring `Requirements(forget_data=True)`."""

    name = "peek"

    def unlearn(self, state, ctx):
        ctx.forget_data.fetch(torch.arange(1))
        return UnlearnResult(dict(state))


class Nameless(Unlearner):
    def unlearn(self, state, ctx):
        return UnlearnResult(dict(state))


class Abstract(Unlearner):
    name = "abstract"


SCALE = Scale()
'''

BROKEN = "import missing_dependency_xyz  # noqa\n"

FAST = [
    *set_args(
        "data.num_clients=3",
        "train.rounds=1",
        "train.batch_size=64",
        "unlearn.recovery_rounds=1",
        "eval.mia_repeats=2",
        "eval.mia_null_permutations=0",
        "cache_dir=",
    ),
]
BY_IMPORT_STRING = [
    *set_args(
        "data.dataset=extpkg:load",
        "model.name=extpkg:make_net",
        "model.options.width=16",
    ),
]
CONFIG = """
[unlearn]
methods = ["retrain", "extpkg:Scale"]

[options."extpkg:Scale"]
factor = 0.25
"""


def _forget_extpkg() -> None:
    for name in [m for m in sys.modules if m == "extpkg" or m.startswith("extpkg.")]:
        del sys.modules[name]


@pytest.fixture
def extpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``extpkg`` written into ``tmp_path/pkgs`` (not yet importable); yields that folder."""
    folder = tmp_path / "pkgs"
    (folder / "extpkg").mkdir(parents=True)
    (folder / "extpkg" / "__init__.py").write_text(textwrap.dedent(EXTPKG))
    (folder / "extpkg" / "broken.py").write_text(BROKEN)
    monkeypatch.setattr(sys, "path", list(sys.path))  # undone after the test
    _forget_extpkg()
    read_dataset.cache_clear()
    yield folder
    _forget_extpkg()
    read_dataset.cache_clear()


@pytest.fixture
def importable(extpkg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``extpkg`` on `sys.path`, as an installed package would be."""
    monkeypatch.syspath_prepend(str(extpkg))
    return extpkg


def _calls() -> list[str]:
    calls: list[str] = importlib.import_module("extpkg").CALLS
    return calls


def _experiment(overrides: list[str], config_file: Path | None = None) -> Experiment:
    config = load_config(config_file, [part for part in overrides if part != "--set"])
    return Experiment(config, config.seeds[0])


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


# -- (a) import strings through the configuration, the engine and the CLI ----------------------


def test_import_strings_through_load_config_and_experiment(
    importable: Path, tmp_path: Path
) -> None:
    exp = _experiment([*FAST, *BY_IMPORT_STRING], _config_file(tmp_path))
    assert exp.federation.input_shape == (1, 8, 8) and exp.federation.num_classes == 4
    assert len(exp.federation.test) == 80  # the loader's own test split, not a hold-out
    assert isinstance(exp.model, nn.Sequential) and exp.model[1].out_features == 16
    trained = exp.pretrain()
    outcome = exp.unlearn(trained, exp.scenario.request, "extpkg:Scale")
    assert outcome.method == "scale"
    assert _calls() == ["load root=None image_size=None", "scale factor=0.25"]
    assert 0 <= exp.evaluate(outcome.state).test_acc <= 100


def test_cli_run_keys_records_by_the_method_name_and_resumes(
    importable: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["run", "-c", str(_config_file(tmp_path)), *FAST, *BY_IMPORT_STRING, "--out", str(out)]
    assert main(argv) == 0
    assert "\nScale " in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in results["records"]} == {
        "original",
        "retrain",
        "retrain_prime",
        "scale",
    }
    assert "scale/seed0" in results["logs"] and (out / "models" / "scale-seed0.pt").exists()
    assert _calls().count("scale factor=0.25") == 1

    # The same command again resumes: the method's cell is done, so it does not run again.
    assert main(argv) == 0
    assert _calls().count("scale factor=0.25") == 1
    assert json.loads((out / "results.json").read_text())["records"] == results["records"]


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        ('["extpkg:Scale", "extpkg:ScaleAgain"]', "'extpkg:ScaleAgain' is a method named 'scale'"),
        ('["extpkg:Original"]', "like the original model's record"),
    ],
)
def test_two_methods_with_one_name_are_refused(
    importable: Path, methods: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", *FAST, *BY_IMPORT_STRING, "--set", f"unlearn.methods={methods}"]
    assert main([*argv, "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not Path("run").exists()


def test_the_current_folder_is_importable_for_import_strings(
    extpkg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.curdir)])
    with pytest.raises(ConfigError, match="Cannot import module 'extpkg'.*current folder"):
        create_model("extpkg:make_net", input_shape=(1, 8, 8), num_classes=4)
    monkeypatch.chdir(extpkg)
    path = list(sys.path)
    model = create_model("extpkg:make_net", input_shape=(1, 8, 8), num_classes=4)
    assert isinstance(model, nn.Module)
    assert sys.path == path  # the folder was on the path for the import only


def test_a_loader_receives_root_and_image_size_it_accepts(importable: Path) -> None:
    read_dataset("extpkg:load", "/data/here", 16)
    assert _calls() == ["load root=/data/here image_size=16"]

    def defaults(root: str | None = None, image_size: int = 32) -> None: ...
    def required(root: str | None) -> None: ...
    def anything(**kwargs: object) -> None: ...
    def nothing() -> None: ...

    assert loader_arguments(defaults, None, None) == {}
    assert loader_arguments(defaults, "r", 8) == {"root": "r", "image_size": 8}
    assert loader_arguments(required, None, 8) == {"root": None}
    assert loader_arguments(anything, "r", None) == {"root": "r"}
    assert loader_arguments(nothing, "r", 8) == {}


def test_a_user_data_set_has_no_augmentation_and_needs_no_root(importable: Path) -> None:
    info = dataset_info("extpkg:load")
    assert (info.augment, info.flip, info.needs_root) == (False, False, False)


# -- (b) entry points ---------------------------------------------------------------------------

ENTRY_POINTS = [
    importlib.metadata.EntryPoint(name="tinynet", value="extpkg:make_net", group="fednot.models"),
    importlib.metadata.EntryPoint(name="tinydata", value="extpkg:load", group="fednot.datasets"),
    importlib.metadata.EntryPoint(name="tinyscale", value="extpkg:Scale", group="fednot.methods"),
    importlib.metadata.EntryPoint(name="gone", value="extpkg:gone", group="fednot.models"),
]


@pytest.fixture
def entry_points(importable: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Installed packages' entry points, simulated; returns the groups looked up."""
    looked_up: list[str] = []

    def fake(*, group: str) -> list[importlib.metadata.EntryPoint]:
        looked_up.append(group)
        return [p for p in ENTRY_POINTS if p.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    return looked_up


def test_entry_points_name_a_model_a_data_set_and_a_method(
    entry_points: list[str], tmp_path: Path
) -> None:
    names = ["--set", "data.dataset=tinydata", "--set", "model.name=tinynet"]
    exp = _experiment([*FAST, *names])
    assert isinstance(exp.model, nn.Sequential) and len(exp.federation.test) == 80
    assert unlearner_class("tinyscale").__name__ == "Scale"
    outcome = exp.unlearn(exp.pretrain(), exp.scenario.request, "tinyscale")
    assert outcome.method == "scale" and _calls().count("scale factor=0.5") == 1

    out = tmp_path / "run"
    methods = ["--set", 'unlearn.methods=["tinyscale"]', "--set", "options.tinyscale.factor=0.75"]
    assert main(["run", *FAST, *names, *methods, "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())["records"]
    assert {r["method"] for r in records} == {"original", "retrain", "retrain_prime", "scale"}
    assert _calls().count("scale factor=0.75") == 1


def test_entry_points_are_read_only_for_names_the_registry_lacks(
    entry_points: list[str],
) -> None:
    create_model("mlp", input_shape=(1, 8, 8), num_classes=4)
    create_unlearner("not")
    dataset_info("mnist5k")
    assert entry_points == []
    create_model("tinynet", input_shape=(1, 8, 8), num_classes=4)
    assert entry_points == ["fednot.models"]


def test_fednot_methods_lists_installed_methods_without_loading_them(
    entry_points: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["methods"]) == 0
    printed = capsys.readouterr().out
    assert "tinyscale  extpkg:Scale from an unknown package" in printed
    assert "tinynet" not in printed  # a model, not a method
    assert "extpkg" not in sys.modules


def test_entry_point_errors_name_the_group_and_the_package(
    entry_points: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"Installed entry points: gone, tinynet\."):
        create_model("tinynett", input_shape=(1, 8, 8), num_classes=4)
    with pytest.raises(ConfigError, match=r"'gone' of group fednot.models.*unknown package"):
        create_model("gone", input_shape=(1, 8, 8), num_classes=4)
    twice = importlib.metadata.EntryPoint(name="tinynet", value="other:f", group="fednot.models")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [*ENTRY_POINTS, twice])
    with pytest.raises(ConfigError, match="declared by several installed packages"):
        create_model("tinynet", input_shape=(1, 8, 8), num_classes=4)


def test_a_broken_installed_entry_point_names_its_package(
    extpkg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    info = site / "brokenplugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[fednot.methods]\nbroken = missing_mod_xyz:Method\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ConfigError) as error:
        create_unlearner("broken")
    message = str(error.value)
    for part in ("'broken'", "fednot.methods", "package 'brokenplugin'", "missing_mod_xyz"):
        assert part in message


# -- (c) a method from outside fednot runs through the same contract ---------------------------


def test_an_outside_method_gets_only_what_it_declares(importable: Path) -> None:
    check_unlearner(create_unlearner("extpkg:Scale"))
    with pytest.raises(MissingRequirementError, match="'peek' asked for the forget data"):
        check_unlearner(create_unlearner("extpkg:Peek"))
    exp = _experiment([*FAST, *BY_IMPORT_STRING])
    with pytest.raises(MissingRequirementError, match="does not declare it"):
        exp.unlearn(exp.pretrain(), ForgetRequest(clients=(0,)), "extpkg:Peek")


# -- (d) what is wrong with a name, said in one line --------------------------------------------


def _model(name: str) -> object:
    return create_model(name, input_shape=(1, 8, 8), num_classes=4)


def _method(name: str) -> object:
    return create_unlearner(name)


def _dataset(name: str) -> object:
    return read_dataset(name, None, None)


MODEL, METHOD, DATASET = _model, _method, _dataset


@pytest.mark.parametrize(
    ("attempt", "name", "message"),
    [
        (MODEL, "extpkg.make_net", r"Unknown model .*did you mean 'extpkg:make_net'\?"),
        (MODEL, "resnet19", r"Known models: .*resnet18.*'pkg.module:make_model'.*fednot.models"),
        (METHOD, "nto", r"Unknown unlearner 'nto'. Known: .*not.*'pkg.module:MyMethod'"),
        (DATASET, "cifar11", r"Unknown data set 'cifar11'. Known: .*'pkg.module:load'"),
        (MODEL, ":make_net", "has an empty module"),
        (MODEL, "extpkg:", "has an empty attribute"),
        (MODEL, "extpkg:make-net", r"attribute 'make-net' is not a dotted Python name"),
        (MODEL, "ext-pkg:make_net", r"module 'ext-pkg' is not a dotted Python name"),
        (MODEL, "extpkg:Nets.class", r"'class' is not an identifier"),
        (MODEL, "extpkg:make_net:v2", "has 2 colons; expected exactly one"),
        (
            MODEL,
            "no_such_module_xyz:make_net",
            r"Cannot import module 'no_such_module_xyz'.*No module named.*installed, on "
            "PYTHONPATH, or in the current folder",
        ),
        (
            MODEL,
            "extpkg.broken:make_net",
            r"Importing module 'extpkg.broken' .* failed \(ModuleNotFoundError: No module named "
            "'missing_dependency_xyz'\\)",
        ),
        (
            MODEL,
            "extpkg:make_nett",
            (
                r"'extpkg' has no attribute 'make_nett'. Did you mean 'make_net'\? Its public "
                "attributes: Abstract, CALLS, CONSTANT, load,"
            ),
        ),
        (MODEL, "extpkg:Nets.Outer.make", r"'extpkg.Nets' has no attribute 'Outer'.*Inner"),
        (
            MODEL,
            "extpkg:wrong_signature",
            r"input_shape and num_classes .*found function wrong_signature\(shape, classes\), "
            "which lacks input_shape, num_classes",
        ),
        (MODEL, "extpkg:CONSTANT", r"must be a callable .*; found int 3"),
        (MODEL, "extpkg:not_a_module", r"'extpkg:not_a_module' returned int 42; expected a torch"),
        (METHOD, "extpkg:make_net", r"must be a subclass of fednot.unlearning.base.Unlearner"),
        (METHOD, "extpkg:SCALE", r"\(the class, not an instance\); found an instance of Scale"),
        (METHOD, "extpkg:Nameless", r"class attribute `name`.*found class Nameless"),
        (METHOD, "extpkg:Abstract", r"concrete Unlearner subclass; found Abstract lacks unlearn"),
        (DATASET, "extpkg:CONSTANT", r"Data set 'extpkg:CONSTANT' \(import string\) must be"),
        (DATASET, "extpkg:load_needs_more", r"which requires count"),
    ],
)
def test_bad_names_are_one_clear_error(
    importable: Path, attempt: Callable[[str], object], name: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        attempt(name)


def test_the_cli_prints_a_bad_name_as_one_line(
    importable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *FAST, *BY_IMPORT_STRING, "--set", "model.name=extpkg:nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'extpkg' has no attribute 'nope'" in err and "\n" not in err


def test_a_user_model_is_an_nn_module_of_the_right_size(importable: Path) -> None:
    model = create_model("extpkg:Nets.Inner.make", input_shape=(1, 8, 8), num_classes=4)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 4)


def test_a_module_that_exits_at_import_is_an_error_not_a_silent_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "quitter.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "model.pt"
    argv = [
        "train",
        "-q",
        *set_args(
            "model.name=quitter:make",
            "cache_dir=",
        ),
        "--out",
        str(out),
    ]
    assert main(argv) == 2  # was 0, with no checkpoint written
    assert "called exit(0)" in capsys.readouterr().err
    assert not out.exists()
    sys.modules.pop("quitter", None)
