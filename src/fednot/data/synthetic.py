"""Small synthetic image federations: tests, examples and the Flower apps' ``tiny`` source.

Learnable images (one random prototype per class plus pixel noise), split into contiguous,
equal client shares; `fednot.testing` re-exports them for method authors.
"""

from __future__ import annotations

import torch

from fednot.data.federated import ClientData, Federation, Preprocess, Samples
from fednot.data.source import ImageSet


def synthetic_images(
    num_samples: int,
    *,
    shape: tuple[int, int, int] = (1, 8, 8),
    num_classes: int = 4,
    noise: float = 40.0,
    seed: int = 0,
) -> ImageSet:
    """Learnable synthetic images: one random prototype per class plus Gaussian pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.rand((num_classes, *shape), generator=generator) * 255
    labels = torch.arange(num_samples) % num_classes
    labels = labels[torch.randperm(num_samples, generator=generator)]
    pixels = prototypes[labels] + noise * torch.randn((num_samples, *shape), generator=generator)
    images = pixels.clamp(0, 255).round().to(torch.uint8)
    return ImageSet(images, labels, tuple(str(c) for c in range(num_classes)))


def tiny_federation(
    num_clients: int = 3,
    *,
    train_per_client: int = 32,
    val_per_client: int = 8,
    test_size: int = 64,
    shape: tuple[int, int, int] = (1, 8, 8),
    num_classes: int = 4,
    seed: int = 0,
    server_size: int = 0,
) -> Federation:
    """A federation of synthetic images with contiguous, equal client shares.

    ``server_size`` more samples (after the test set) are the server's unlabeled slice.
    """
    per_client = train_per_client + val_per_client
    pool = synthetic_images(
        num_clients * per_client + test_size + server_size,
        shape=shape,
        num_classes=num_classes,
        seed=seed,
    )
    clients = []
    for k in range(num_clients):
        start = k * per_client
        train = torch.arange(start, start + train_per_client)
        val = torch.arange(start + train_per_client, start + per_client)
        clients.append(ClientData(k, Samples(pool, train), Samples(pool, val)))
    end = num_clients * per_client + test_size
    test = Samples(pool, torch.arange(num_clients * per_client, end))
    server = Samples(pool, torch.arange(end, len(pool))) if server_size else None
    preprocess = Preprocess.fit(pool.images, augment=False, flip=False)
    return Federation(tuple(clients), test, preprocess, num_classes, shape, server=server)
