"""`as_splits`: what a data set loader returns, as fednot's `DatasetSplits`.

The data set registry (`fednot.data.registry`) applies it to a loader's result, and your own
data (`fednot.data.custom`, which re-exports it, as does `fednot.data`) uses it too. It has a
module of its own because custom data also uses the registry (`partition_dataset` splits as a
run does), so the registry must not import `fednot.data.custom`.
"""

from __future__ import annotations

from fednot.data.convert import is_array, read_raw, settle
from fednot.data.source import DatasetSplits

__all__ = ["as_splits"]


def as_splits(obj: object, name: str) -> DatasetSplits:
    """A data set loader's result as `DatasetSplits`.

    Args:
        obj: `DatasetSplits` (returned as it is); a tuple ``(train, test)`` of data sets in any
            form ``image_set`` accepts, ``test`` possibly ``None``; or one such data set alone
            (an ``(images, labels)`` pair is one data set). Without a test set fednot holds out
            a seeded, stratified ``data.test_fraction`` of ``train``.
        name: the data set's name, for the splits and messages.

    Raises:
        DataError: as ``image_set``, or if train and test differ in image shape or class count.
    """
    if isinstance(obj, DatasetSplits):
        return obj
    train, test = obj, None
    if isinstance(obj, tuple) and len(obj) == 2 and not is_array(obj[0]):  # not (images, labels)
        train, test = obj
    raws = [read_raw(train, f"{name}: training set")]
    if test is not None:
        raws.append(read_raw(test, f"{name}: test set"))
    sets = settle(raws)
    return DatasetSplits(name, sets[0], sets[1] if test is not None else None)
