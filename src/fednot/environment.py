"""The machine a run uses: its torch device, CPU threads and memory layout (docs/reliability.md).

The device and threads are checked before any work starts, so a device the machine lacks, or a
thread count torch refuses, is a one-line error rather than a failure deep inside torch.
"""

from __future__ import annotations

import torch
from torch import nn

from fednot.errors import ConfigError


def parse_device(name: str) -> torch.device:
    """The torch device ``name`` names (``ConfigError`` if it names none); not checked to exist."""
    try:
        return torch.device(name)
    except (RuntimeError, ValueError, TypeError) as e:
        raise ConfigError(
            f"device {name!r} is not a torch device; use 'cpu', 'cuda', 'cuda:1' or 'mps'."
        ) from e


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` names, after checking that this machine has it.

    Raises:
        ConfigError: the name is not a device, or this torch build or machine lacks it.
    """
    device = parse_device(name)
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():  # type: ignore[no-untyped-call]
            raise ConfigError(
                f"device = {name!r}, but this torch ({torch.__version__}) was built without "
                "CUDA. Install a CUDA build of torch, or set device = 'cpu'."
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device = {name!r}, but no CUDA GPU is visible (check the driver and "
                "CUDA_VISIBLE_DEVICES), or set device = 'cpu'."
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device = {name!r}, but only {count} CUDA GPU(s) are visible: use cuda:0"
                f"..cuda:{count - 1}."
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device = {name!r}, but MPS is not available; set device = 'cpu'.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device = {name!r}: fednot runs on 'cpu', 'cuda' or 'mps'.")
    return device


def use_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` (``None``: keep torch's); return the count.

    Results depend on the count (a parallel reduction sums in another order), so the count in
    force is part of every cache key and of the saved configuration.
    """
    if threads is not None:  # RunConfig has checked it is >= 1
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def place_model(model: nn.Module, device: torch.device | str, memory_format: str) -> nn.Module:
    """``model`` moved to ``device``, its 4-D weights in ``memory_format`` (`RunConfig`).

    A convolution whose weight is channels_last computes in channels_last whatever its input's
    layout, so the activations follow the weights end to end; 2-D weights (linear layers) are
    unaffected. Loading a state into the model keeps the layout (``load_state_dict`` copies into
    the existing tensors), so it is set once, here.
    """
    layout = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    placed: nn.Module = model.to(device=device, memory_format=layout)  # type: ignore[call-overload]
    return placed
