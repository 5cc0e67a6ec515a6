"""Bad input, as a demanding new user gives it: one clear paragraph, no traceback, no output.

Each case runs the CLI in-process on tiny settings and asserts the exit code, a fragment of the
message, the absence of a traceback, and that nothing was written: neither the ``--out`` path nor
anything in the working folder (default run and cache folders).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch

from fednot.cli.app import main
from fednot.errors import FedNotWarning
from fednot.testing import set_args

FAST = [
    *set_args(
        "data.num_clients=3",
        "model.name=mlp",
        "model.options.hidden=[16]",
        "train.rounds=1",
        "train.batch_size=64",
        "unlearn.recovery_rounds=1",
        "eval.mia_repeats=2",
        "eval.mia_null_permutations=0",
    ),
]


def _sys_writable() -> bool:
    try:
        fd, path = tempfile.mkstemp(dir="/sys")
    except OSError:
        return False
    os.close(fd)
    os.unlink(path)
    return True


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny checkpoint and the odd files the cases point at."""
    root = tmp_path_factory.mktemp("bad-input")
    checkpoint = root / "model.pt"
    torch.set_num_threads(1)
    assert main(["train", *FAST, "-q", "--set", "cache_dir=", "--out", str(checkpoint)]) == 0
    (root / "afile").write_text("not a folder\n")
    (root / "adir").mkdir()
    (root / "text.pt").write_text("not a checkpoint\n")
    (root / "broken.toml").write_text("[[[ not toml\n")
    (root / "train.toml").write_text("[train]\nrounds = 5\n")
    (root / "typo.toml").write_text("[unlearn]\nrecovery_round = 1\n")
    return {
        "ckpt": str(checkpoint),
        "file": str(root / "afile"),
        "dir": str(root / "adir"),
        "text": str(root / "text.pt"),
        "broken": str(root / "broken.toml"),
        "train_toml": str(root / "train.toml"),
        "typo_toml": str(root / "typo.toml"),
    }


RUN = ["run", *FAST, "--out", "{out}"]
TRAIN = ["train", *FAST, "--out", "{out}"]
UNLEARN = ["unlearn", "--checkpoint", "{ckpt}", "--out", "{out}"]
EVAL = ["eval", "--checkpoint", "{ckpt}"]

# (case id, argv, fragment of the message, exit code)
CASES: list[tuple[str, list[str], str, int]] = [
    # values of the configuration
    ("lr-text", [*RUN, *set_args("train.lr=fast")], "Expected `train.lr` to be float", 2),
    ("lr-zero", [*RUN, *set_args("train.lr=0")], "train.lr must be > 0", 2),
    ("momentum", [*TRAIN, *set_args("train.momentum=-1")], "train.momentum must be >= 0", 2),
    ("decay", [*TRAIN, *set_args("train.weight_decay=-0.1")], "train.weight_decay must be >= 0", 2),
    (
        "momentum-inf",
        [*TRAIN, *set_args("train.momentum=inf")],
        "train.momentum must be a finite",
        2,
    ),
    ("lr-beyond-float32", [*TRAIN, *set_args("train.lr=1e300")], "(of float32's range", 2),
    (
        "decay-inf",
        [*TRAIN, *set_args("train.weight_decay=inf")],
        "weight_decay must be a finite",
        2,
    ),
    (
        "recovery-lr-inf",
        [*RUN, *set_args("unlearn.method_recovery_lr.ft=inf")],
        "unlearn.method_recovery_lr.ft must be a finite number",
        2,
    ),
    ("rounds", [*RUN, *set_args("train.rounds=0")], "train.rounds must be >= 1", 2),
    ("batch", [*RUN, *set_args("train.batch_size=0")], "train.batch_size must be >= 1", 2),
    ("epochs", [*RUN, *set_args("train.local_epochs=0")], "train.local_epochs must be >= 1", 2),
    ("participation", [*RUN, *set_args("train.participation=1.5")], "participation", 2),
    ("patience", [*RUN, *set_args("train.patience=0")], "train.patience must be >= 1", 2),
    ("optimizer", [*RUN, *set_args("train.optimizer=adam")], "one of ['sgd', 'adamw']", 2),
    ("clients-0", [*RUN, *set_args("data.num_clients=0")], "data.num_clients must be >= 1", 2),
    ("dataset", [*RUN, *set_args("data.dataset=nope")], "Unknown data set 'nope'", 2),
    ("dataset-root", [*RUN, *set_args("data.dataset=cifar10")], "set data.root", 2),
    ("partition", [*RUN, *set_args("data.partition=weird")], "data.partition", 2),
    ("alpha", [*RUN, *set_args("data.alpha=0")], "data.alpha must be > 0", 2),
    ("val-fraction", [*RUN, *set_args("data.val_fraction=1")], "data.val_fraction must lie", 2),
    ("test-fraction", [*RUN, *set_args("data.test_fraction=0")], "data.test_fraction must lie", 2),
    ("server", [*RUN, *set_args("data.server_samples=-1")], "data.server_samples must be", 2),
    ("too-many-clients", [*RUN, *set_args("data.num_clients=2000")], "no validation sample", 2),
    ("model", [*RUN, *set_args("model.name=resnet")], "Unknown model 'resnet'", 2),
    ("model-option", [*RUN, *set_args("model.options.bogus=1")], "Unknown option `bogus`", 2),
    ("option-of-none", [*RUN, *set_args("options.ft.foo=1")], "for method 'ft'. It takes none", 2),
    ("width-0", [*TRAIN, *set_args("model.options.hidden=[0]")], "must be >= 1, got [0]", 2),
    (
        "cnn-width-0",
        [
            *TRAIN,
            *set_args("model.name=cnn", "model.options={{}}", "model.options.channels=[4, 0]"),
        ],
        "must be >= 1",
        2,
    ),
    (
        "vit-heads",
        [*TRAIN, *set_args("model.name=vit", "model.options={{}}", "model.options.heads=3")],
        "divisible by heads",
        2,
    ),
    ("method", [*RUN, *set_args('unlearn.methods=["nto"]')], "Unknown unlearner 'nto'", 2),
    ("no-method", [*RUN, *set_args("unlearn.methods=[]")], "selects no method", 2),
    ("forget-range", [*RUN, *set_args("unlearn.forget_clients=[5]")], "out of range", 2),
    ("forget-all", [*RUN, *set_args("unlearn.forget_clients=[0, 1, 2]")], "keep at least one", 2),
    ("forget-dup", [*RUN, *set_args("unlearn.forget_clients=[0, 0]")], "duplicates", 2),
    ("recovery", [*RUN, *set_args("unlearn.recovery_rounds=-1")], "recovery_rounds must be", 2),
    ("recovery-lr", [*RUN, *set_args("unlearn.recovery_lr=0")], "recovery_lr must be > 0", 2),
    ("target", [*RUN, *set_args("unlearn.target_val_acc=150")], "target_val_acc", 2),
    ("target-word", [*RUN, *set_args('unlearn.target_val_acc="best"')], "target_val_acc", 2),
    ("margin", [*RUN, *set_args("unlearn.target_margin=-1")], "target_margin", 2),
    ("scenario", [*RUN, *set_args("scenario.kind=weird")], "scenario.kind", 2),
    (
        "class-range",
        [*RUN, *set_args("scenario.kind=class", "scenario.classes=[99]")],
        "out of range",
        2,
    ),
    (
        "ratio",
        [*RUN, *set_args("scenario.kind=instance", "scenario.forget_ratio=0")],
        "forget_ratio must lie",
        2,
    ),
    ("centralized", [*RUN, *set_args("scenario.kind=centralized")], "data.num_clients = 1", 2),
    ("folds", [*RUN, *set_args("eval.mia_folds=1")], "eval.mia_folds must be >= 2", 2),
    ("mia-too-small", [*RUN, *set_args("eval.mia_folds=2000")], "MIA members", 2),
    ("mia-tiny-clients", [*RUN, *set_args("data.num_clients=1000")], "MIA members", 2),
    ("nonmembers", [*RUN, *set_args("eval.mia_nonmembers=other")], "eval.mia_nonmembers", 2),
    ("curve", [*RUN, *set_args("eval.curve_every=-1")], "eval.curve_every must be", 2),
    ("seeds-empty", [*RUN, *set_args("seeds=[]")], "seeds must name", 2),
    ("seeds-dup", [*RUN, *set_args("seeds=[0, 0]")], "duplicates", 2),
    ("threads-flag", [*TRAIN, "--threads", "-1"], "threads must be >= 1", 2),
    ("threads-key", [*RUN, *set_args("threads=0")], "threads must be >= 1", 2),
    ("device", [*TRAIN, *set_args("device=gpu")], "is not a torch device", 2),
    ("layout", [*TRAIN, *set_args("memory_format=nhwc")], "memory_format must be one of", 2),
    ("options-unused", [*RUN, *set_args("options.nosuch.lr=1")], "options given for ['nosuch']", 2),
    ("option-unknown", [*RUN, *set_args("options.not.bogus=1")], "bogus", 2),
    ("layer", [*RUN, *set_args('options.not.layers=["nope"]')], "no layer 'nope'", 2),
    ("key", [*RUN, *set_args("bogus=1")], "Unknown configuration key `bogus`", 2),
    (
        "section-key",
        [*RUN, *set_args("train.bogus=1")],
        "Unknown configuration key `train.bogus`",
        2,
    ),
    ("section-value", [*RUN, *set_args("train=5")], "Expected `train` to be a table", 2),
    ("override", [*RUN, "--set", "novalue"], "Expected an override of the form key=value", 2),
    ("config-missing", [*RUN, "-c", "missing.toml"], "does not exist", 2),
    ("config-broken", [*RUN, "-c", "{broken}"], "is not valid TOML", 2),
    ("config-folder", [*RUN, "-c", "{dir}"], "is a folder", 2),
    ("config-typo", [*RUN, "-c", "{typo_toml}"], "Unknown configuration key", 2),
    ("preset", [*RUN, "--preset", "nope"], "nope", 2),
    # bench shortcuts
    ("bench-scenario", ["bench", *FAST, "--scenario", "nope", "--out", "{out}"], "nope", 2),
    ("bench-methods", ["bench", *FAST, "--methods", "nto", "--out", "{out}"], "'nto'", 2),
    ("bench-seeds", ["bench", *FAST, "--seeds", "a,b", "--out", "{out}"], "seeds", 2),
    ("bench-no-methods", ["bench", *FAST, "--methods", "", "--out", "{out}"], "at least one", 2),
    ("bench-no-seeds", ["bench", *FAST, "--seeds", "", "--out", "{out}"], "seeds must name", 2),
    # settings that nothing would read
    ("unused-size", [*RUN, *set_args("data.image_size=32")], "image_size (the mnist5k", 2),
    ("unused-root", [*RUN, *set_args("data.root=data")], "data.root (data.dataset is the", 2),
    ("unused-alpha", [*RUN, *set_args("data.alpha=0.5")], "data.alpha (data.partition is not", 2),
    ("unused-shards", [*RUN, *set_args("data.shards_per_client=3")], "data.shards_per_client", 2),
    (
        "unused-momentum",
        [*RUN, *set_args("train.optimizer=adamw", "train.momentum=0.5")],
        "train.momentum",
        2,
    ),
    ("unused-margin", [*RUN, *set_args("unlearn.target_margin=1")], "unlearn.target_margin", 2),
    ("unused-classes", [*RUN, *set_args("scenario.classes=[3]")], "scenario.classes", 2),
    ("unused-ratio", [*RUN, *set_args("scenario.forget_ratio=0.3")], "scenario.forget_ratio", 2),
    ("unused-trigger", [*RUN, *set_args("scenario.trigger_size=4")], "scenario.trigger_size", 2),
    # file system
    ("out-file", ["run", *FAST, "--out", "{file}"], "is a file, not a folder", 2),
    ("cache-file", [*RUN, *set_args("cache_dir={file}")], "is a file, not a folder", 2),
    ("cache-under-file", [*RUN, *set_args("cache_dir={file}/sub")], "is a file, not a folder", 2),
    ("train-out-dir", ["train", *FAST, "--out", "{dir}"], "is a folder", 2),
    ("train-out-under-file", ["train", *FAST, "--out", "{file}/m.pt"], "is a file", 2),
    ("study-out-file", ["ablate", "layers", *FAST, "--out", "{file}"], "is a file", 2),
    # divergence: found in the first round, nothing written
    ("diverge", [*TRAIN, *set_args("train.lr=1e6", "cache_dir=")], "diverged in round 1", 2),
    # checkpoints
    (
        "ckpt-missing",
        ["unlearn", "--checkpoint", "missing.pt", "--out", "{out}"],
        "does not exist",
        2,
    ),
    ("ckpt-text", ["eval", "--checkpoint", "{text}"], "Re-create it", 2),
    ("ckpt-method", [*UNLEARN, "--method", "nto"], "Unknown unlearner 'nto'", 2),
    ("ckpt-preset", [*UNLEARN, "--preset", "mnist5k-cnn"], "--preset does not apply", 2),
    ("ckpt-eval-preset", [*EVAL, "--preset", "mnist5k-cnn"], "--preset does not apply", 2),
    ("ckpt-config-train", [*UNLEARN, "-c", "{train_toml}"], "cannot change [train]", 2),
    ("ckpt-set-model", [*UNLEARN, *set_args("model.name=cnn")], "cannot change [model]", 2),
    ("ckpt-clients-text", [*UNLEARN, "--forget-clients", "a"], "comma-separated client ids", 2),
    ("ckpt-clients-range", [*UNLEARN, "--forget-clients", "7"], "out of range", 2),
    ("ckpt-clients-empty-part", [*UNLEARN, "--forget-clients", "0,,1"], "none empty", 2),
    ("ckpt-clients-underscore", [*UNLEARN, "--forget-clients", "1_0"], "whole numbers", 2),
    ("ckpt-clients-other-digits", [*UNLEARN, "--forget-clients", "\u0663"], "whole numbers", 2),
    ("ckpt-eval-clients", [*EVAL, "--forget-clients", "9"], "9", 2),
    ("ckpt-weights-only", [*UNLEARN, "--method", "ft", "--weights-only"], "--weights-only", 2),
    ("ckpt-out-dir", ["unlearn", "--checkpoint", "{ckpt}", "--out", "{dir}"], "is a folder", 2),
    ("ckpt-recovery-diverges", [*UNLEARN, *set_args("unlearn.recovery_lr=1e6")], "diverged", 2),
    # analyses
    (
        "param-unknown",
        ["ablate", "layers", *FAST, "--param", "bogus=1", "--out", "{out}"],
        "has no parameter 'bogus'",
        2,
    ),
    (
        "param-number",
        ["analyze", "recovery", *FAST, "--param", "within=abc", "--out", "{out}"],
        "expected a number",
        2,
    ),
    (
        "param-flag",
        ["ablate", "perturbation", *FAST, "--param", "early_stop=maybe", "--out", "{out}"],
        "expected true or false",
        2,
    ),
    (
        "param-kinds",
        ["ablate", "perturbation", *FAST, "--param", "kinds=nope", "--out", "{out}"],
        "Unknown perturbations",
        2,
    ),
    (
        "param-counts",
        ["ablate", "forget-ratio", *FAST, "--param", "counts=0", "--out", "{out}"],
        "Each forget count",
        2,
    ),
    (
        "param-form",
        ["ablate", "layers", *FAST, "--param", "noequals", "--out", "{out}"],
        "Expected --param KEY=VALUE",
        2,
    ),
    ("report-missing", ["report", "missing-run"], "missing-run", 2),
    # usage errors (argparse)
    ("no-command", [], "required", 2),
    ("bad-command", ["fly"], "invalid choice", 2),
    ("threads-text", [*RUN, "--threads", "two"], "invalid int value", 2),
    ("train-no-out", ["train", *FAST], "--out", 2),
    ("config-quiet", ["config", "-q"], "unrecognized arguments: -q", 2),
]
if not torch.cuda.is_available():
    CASES.append(("cuda", [*TRAIN, *set_args("device=cuda")], "set device = 'cpu'", 2))


@pytest.mark.parametrize(
    ("argv", "message", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_one_clear_paragraph_and_writes_nothing(
    argv: list[str],
    message: str,
    code: int,
    files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    args = [a.format(out=out, **files) for a in argv]
    before = sorted(os.listdir("."))
    try:
        result = main(args)
    except SystemExit as e:  # argparse's usage errors
        result = int(e.code or 0)
    err = capsys.readouterr().err
    assert result == code, err
    assert message in err, err
    assert "Traceback" not in err and "\n\n" not in err.strip(), err
    assert not out.exists(), f"{out} was written"
    assert sorted(os.listdir(".")) == before, "files were left in the working folder"


@pytest.mark.skipif(
    _sys_writable(),
    reason="needs a folder this user cannot write; /sys, the one used, is writable on this machine",
)
@pytest.mark.parametrize("command", ["run", "train"])
def test_an_unwritable_out_is_refused_before_any_work(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = "/sys/fednot-out" + (".pt" if command == "train" else "")
    assert main([command, *FAST, "--out", out]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and "Traceback" not in err


def test_a_config_file_acts_on_a_checkpoint(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = tmp_path / "one.toml"
    one.write_text("[unlearn]\nrecovery_rounds = 1\n\n[eval]\nmia_folds = 3\n")
    out = tmp_path / "u.pt"
    assert main(["unlearn", "--checkpoint", files["ckpt"], "-c", str(one), "--out", str(out)]) == 0
    assert "1 recovery rounds" in capsys.readouterr().out
    payload = torch.load(out, weights_only=True)
    assert payload["config"]["unlearn"]["recovery_rounds"] == 1
    two = tmp_path / "two.toml"
    two.write_text("[unlearn]\nrecovery_rounds = 2\n")
    assert main(["unlearn", "--checkpoint", files["ckpt"], "-c", str(two), "--out", str(out)]) == 0
    assert "2 recovery rounds" in capsys.readouterr().out


def test_the_thread_count_is_recorded_and_keys_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--threads", "1"]) == 0
    assert "threads = 1" in capsys.readouterr().out
    cache = tmp_path / "cache"
    base = ["train", *FAST, "-q", "--set", f"cache_dir={cache}"]
    try:
        for threads in ("1", "2"):
            assert main([*base, "--threads", threads, "--out", str(tmp_path / "m.pt")]) == 0
    finally:
        torch.set_num_threads(1)
    entries = sorted(p.name for p in cache.glob("pretrain-*.pt"))
    assert len(entries) == 2, entries  # one entry per thread count
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert json.loads(json.dumps(saved["config"]))["threads"] == 2


def test_a_pretraining_that_learns_nothing_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "train",
        *FAST,
        "-q",
        *set_args("cache_dir=", "train.weight_decay=10", "train.rounds=5"),
    ]
    with pytest.warns(FedNotWarning, match="no better than always answering"):
        assert main([*argv, "--out", str(tmp_path / "m.pt")]) == 0


@pytest.mark.parametrize(
    "error",
    [
        MemoryError("Unable to allocate 7.28 TiB for an array with shape (1000000000000,)"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 8000000000000 bytes."
        ),
    ],
)
def test_an_allocation_that_cannot_succeed_is_one_line_not_a_traceback(
    error: BaseException, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fednot.cli.listings as listings

    def huge(args: object) -> int:
        raise error

    monkeypatch.setattr(listings, "presets", huge)
    assert main(["presets"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fednot: error: out of memory (") and err.count("\n") == 1
    assert "eval.mia_repeats" in err  # says which settings to lower

    def other(args: object) -> int:
        raise RuntimeError("a bug, not an allocation")

    monkeypatch.setattr(listings, "presets", other)
    with pytest.raises(RuntimeError, match="a bug"):  # other errors keep their traceback
        main(["presets"])
