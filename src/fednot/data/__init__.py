"""Data: readers of the standard on-disk formats, partitioners, client views, forget splits.

Your own data (docs/data.md): `image_set` converts a data set in the form you hold it (an
``(images, labels)`` pair of tensors or arrays, a torch ``Dataset`` of ``(image, label)``
samples) to fednot's ``uint8`` `ImageSet`; `as_splits` makes train/test splits of it;
`federation_from_clients` builds a federation from one data set per client, and
`partition_dataset` one from a single data set split among clients as a run would split it.
Image folders are the ``imagefolder`` data set (`fednot.data.imagefolder`).
"""

from fednot.data.convert import image_set
from fednot.data.custom import as_splits, federation_from_clients, partition_dataset
from fednot.data.source import DatasetSplits, ImageSet

__all__ = [
    "DatasetSplits",
    "ImageSet",
    "as_splits",
    "federation_from_clients",
    "image_set",
    "partition_dataset",
]
