"""Clients' data as views over one in-memory pool, and the per-batch preprocessing.

A `Samples` view holds indices into an `ImageSet`; nothing is copied per client. Training reads
a view only through `Samples.fetch`, so a view can be replaced by one that refuses access
(`ForbiddenSamples`), which is how tests prove a method never reads the forget data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from fednot.data.source import ImageSet
from fednot.errors import ConfigError, MissingRequirementError


class Samples:
    """A view of some samples of an `ImageSet`, by index."""

    def __init__(self, source: ImageSet, indices: Tensor) -> None:
        self.source = source
        self.indices = indices.to(torch.int64)

    def __len__(self) -> int:
        return int(self.indices.numel())

    @property
    def labels(self) -> Tensor:
        """Labels of the samples, in view order."""
        return self.source.labels[self.indices]

    def fetch(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Return raw ``uint8`` images and labels at ``positions`` (positions within the view)."""
        rows = self.indices[positions]
        return self.source.images[rows], self.source.labels[rows]

    def batches(
        self, batch_size: int, order: Tensor | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (images, labels) batches in ``order`` (default: view order)."""
        positions = torch.arange(len(self)) if order is None else order
        for start in range(0, len(self), batch_size):
            yield self.fetch(positions[start : start + batch_size])

    def select(self, mask: Tensor) -> Samples:
        """Return the sub-view where the boolean ``mask`` (over view positions) is true."""
        return self.view(self.indices[mask])

    def view(self, indices: Tensor) -> Samples:
        """Return a view of the same kind (readable or forbidden) over other ``indices``."""
        return Samples(self.source, indices)

    def over(self, source: ImageSet) -> Samples:
        """The same view (same kind, same indices) over ``source``, a copy of its source."""
        return Samples(source, self.indices)

    def subsample(self, limit: int, generator: torch.Generator) -> Samples:
        """Return at most ``limit`` samples drawn without replacement."""
        if len(self) <= limit:
            return self
        keep = torch.randperm(len(self), generator=generator)[:limit]
        return self.view(self.indices[keep.sort().values])


def concat(views: Iterable[Samples]) -> Samples:
    """Concatenate views over one source; the result is forbidden if any part is."""
    views = list(views)
    if not views:
        raise ConfigError("Cannot concatenate an empty list of sample views.")
    if any(v.source is not views[0].source for v in views):
        raise ConfigError("Sample views over different sources cannot be concatenated.")
    first = next((v for v in views if isinstance(v, ForbiddenSamples)), views[0])
    return first.view(torch.cat([v.indices for v in views]))


class ForbiddenSamples(Samples):
    """A view that raises `MissingRequirementError` when forbidden samples are read.

    With ``forbidden=None`` every sample is forbidden; otherwise only the samples whose ids
    (indices into the source) are listed. Reading the labels of a view that holds any forbidden
    sample is refused too. Sub-views keep the same rule, so a forbidden sample stays forbidden
    however the data are sliced.
    """

    def __init__(self, view: Samples, reason: str, forbidden: Tensor | None = None) -> None:
        super().__init__(view.source, view.indices)
        self.reason = reason
        self.forbidden = forbidden

    def _check(self, rows: Tensor) -> None:
        if self.forbidden is None or bool(torch.isin(rows, self.forbidden).any()):
            raise MissingRequirementError(self.reason)

    @property
    def labels(self) -> Tensor:
        """The labels, unless the view holds a forbidden sample."""
        self._check(self.indices)
        return super().labels

    def view(self, indices: Tensor) -> Samples:
        """A view over other ``indices`` with the same rule."""
        return ForbiddenSamples(Samples(self.source, indices), self.reason, self.forbidden)

    def over(self, source: ImageSet) -> Samples:
        """The same view, with the same rule, over ``source``."""
        return ForbiddenSamples(Samples(source, self.indices), self.reason, self.forbidden)

    def fetch(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """The samples at ``positions``, unless one of them is forbidden."""
        self._check(self.indices[positions])
        return super().fetch(positions)


class UnlabeledSamples(Samples):
    """A view whose labels are withheld: `fetch` returns -1 labels and `labels` raises."""

    @property
    def labels(self) -> Tensor:
        """Refuse: this data is unlabeled."""
        raise MissingRequirementError("This data is unlabeled: its labels are not available.")

    def fetch(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Images at ``positions`` and labels of -1."""
        images, _ = super().fetch(positions)
        return images, torch.full((len(images),), -1, dtype=torch.int64)

    def view(self, indices: Tensor) -> Samples:
        """An unlabeled view over other ``indices``."""
        return UnlabeledSamples(self.source, indices)

    def over(self, source: ImageSet) -> Samples:
        """The same unlabeled view over ``source``."""
        return UnlabeledSamples(source, self.indices)


@dataclass(frozen=True, eq=False)
class Preprocess:
    """Per-batch conversion to normalised floats, with optional augmentation.

    Augmentation (training only) is a random crop after zero-padding by ``pad`` pixels, plus a
    horizontal flip where ``flip`` is set (not for digits). It draws from the generator passed
    in, i.e. the client's stream for the round.
    """

    mean: Tensor
    std: Tensor
    augment: bool = False
    flip: bool = True
    pad: int = 4

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Return float images, augmented if ``generator`` is given and augmentation is on."""
        x = images.float().div_(255.0)
        if self.augment and generator is not None:
            x = self._augment(x, generator)
        mean, std = self.mean.to(x.device), self.std.to(x.device)  # no-ops on the CPU
        return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)

    def _augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Crop and flip where ``x`` lives; the draws come from ``generator`` on the host."""
        n, _, h, w = x.shape
        at = x.device
        padded = torch.nn.functional.pad(x, (self.pad,) * 4)
        dy = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator).to(at)
        dx = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator).to(at)
        rows = (dy[:, None] + torch.arange(h, device=at))[:, :, None]
        cols = (dx[:, None] + torch.arange(w, device=at))[:, None, :]
        out = padded[torch.arange(n, device=at)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        if self.flip:
            flip = (torch.rand(n, generator=generator) < 0.5).to(at)
            out[flip] = out[flip].flip(-1)
        return out.contiguous()

    @classmethod
    def fit(cls, images: Tensor, *, augment: bool, flip: bool, pad: int = 4) -> Preprocess:
        """Per-channel mean and std of ``uint8`` images (N, C, H, W), scaled to [0, 1]."""
        total = torch.zeros(images.shape[1], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for chunk in torch.split(images, 4096):
            x = chunk.to(torch.float64) / 255.0
            total += x.sum(dim=(0, 2, 3))
            squares += (x * x).sum(dim=(0, 2, 3))
        count = images.shape[0] * images.shape[2] * images.shape[3]
        mean = total / count
        std = (squares / count - mean**2).clamp_min(1e-12).sqrt()
        return cls(mean.float(), std.float(), augment=augment, flip=flip, pad=pad)


@dataclass(frozen=True, eq=False)
class ClientData:
    """One client's local data: a training and a validation view."""

    id: int
    train: Samples
    val: Samples


@dataclass(frozen=True, eq=False)
class Federation:
    """Clients (by id), the server's test set, and how batches are preprocessed."""

    clients: tuple[ClientData, ...]
    test: Samples
    preprocess: Preprocess
    num_classes: int
    input_shape: tuple[int, int, int]
    server: Samples | None = None  # the server's unlabeled slice, if any

    @property
    def ids(self) -> tuple[int, ...]:
        """Client ids, ascending."""
        return tuple(c.id for c in self.clients)

    def client(self, client_id: int) -> ClientData:
        """Return client ``client_id`` or raise `ConfigError`."""
        for c in self.clients:
            if c.id == client_id:
                return c
        raise ConfigError(f"No client {client_id}; the federation's clients are {list(self.ids)}.")

    def replace(self, clients: Iterable[ClientData]) -> Federation:
        """Return the same federation with another set of clients."""
        return Federation(
            tuple(sorted(clients, key=lambda c: c.id)),
            self.test,
            self.preprocess,
            self.num_classes,
            self.input_shape,
            self.server,
        )

    def on_device(self, device: torch.device | str) -> Federation:
        """This federation with its pixels moved to ``device`` once (GPU runs; docs/engine.md).

        Every image set is copied there as ``uint8``, once; the labels, the indices and the
        views' rules (forbidden, unlabeled) stay as they are, on the host. Batches are then
        gathered, augmented and normalised on ``device`` with the same host-drawn randomness,
        and only a batch's labels cross to it. On the CPU the arithmetic is the same as before,
        so the results are too, bit for bit.
        """
        moved: dict[int, ImageSet] = {}

        def move(samples: Samples) -> Samples:
            source = samples.source
            if id(source) not in moved:
                images = source.images.to(device)
                moved[id(source)] = ImageSet(images, source.labels, source.classes)
            return samples.over(moved[id(source)])

        return Federation(
            tuple(ClientData(c.id, move(c.train), move(c.val)) for c in self.clients),
            move(self.test),
            self.preprocess,
            self.num_classes,
            self.input_shape,
            None if self.server is None else move(self.server),
        )

    def without(self, client_ids: Iterable[int]) -> Federation:
        """Return the federation without the given clients."""
        drop = {self.client(c).id for c in client_ids}
        return self.replace(c for c in self.clients if c.id not in drop)

    def fingerprint(self) -> str:
        """A hash of which samples the clients and the server hold, and of their pixels."""
        digest = hashlib.sha256()
        for client in self.clients:
            digest.update(f"{client.id}:".encode())
            digest.update(client.train.indices.numpy().tobytes())
            digest.update(client.val.indices.numpy().tobytes())
        digest.update(self.test.indices.numpy().tobytes())
        if self.server is not None:
            digest.update(b"server:" + self.server.indices.numpy().tobytes())
        sources = {id(s): s for s in (self.clients[0].train.source, self.test.source)}
        for source in sources.values():  # every pixel and label: a poisoned copy is another key
            digest.update(str(tuple(source.images.shape)).encode())
            digest.update(source.images.cpu().contiguous().numpy().tobytes())
            digest.update(source.labels.cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:24]

    def pooled_train(self) -> Samples:
        """All clients' training samples."""
        return concat(c.train for c in self.clients)

    def pooled_val(self) -> Samples:
        """All clients' validation samples."""
        return concat(c.val for c in self.clients)
