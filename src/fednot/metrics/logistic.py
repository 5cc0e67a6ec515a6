"""The loss attack's classifier: batched one-feature logistic regressions, fold by fold.

`fit_logistic_1d` minimises scikit-learn's ``LogisticRegression(C=c)`` objective by Newton's
method on many independent problems at once; `fold_accuracies` scores the attack's stratified
cross-validation with it (`fednot.metrics.mia`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

_CHUNK_ELEMENTS = 1 << 18  # losses fitted at once (scratch arrays of 2 MB)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
Terms = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]


def fold_accuracies(x: ArrayLike, *, folds: int, max_iter: int = 100) -> FloatArray:
    """``(..., folds)`` test accuracies of the attack, each fitted on the other folds.

    ``x`` is ``(..., 2n)``: n members' losses, then n non-members'; the j-th of each side is in
    fold j mod ``folds``. ``max_iter`` bounds the Newton iterations of each fit.
    """
    x = np.asarray(x, dtype=np.float64)
    slots = x.shape[-1]
    member = np.arange(slots) < slots // 2
    rows = x.reshape(-1, slots)
    accuracies = np.empty((len(rows), folds))
    per_chunk = max(1, _CHUNK_ELEMENTS // (folds * slots))
    work = np.empty((9, min(per_chunk, len(rows)) * folds * slots))  # reused: no page faults
    layout = _fold_layout(slots // 2, folds)
    for start in range(0, len(rows), per_chunk):
        part = rows[start : start + per_chunk]
        for chosen, train, test in layout:
            xs = np.take(part, train, axis=1, out=_view(work[0], (len(part), *train.shape)))
            y = member[train].astype(np.float64)
            sy = np.broadcast_to(y.sum(-1), xs.shape[:-1]).ravel()
            syx = np.einsum("rgt,gt->rg", xs, y).ravel()
            w, b = _fit(xs.reshape(len(sy), -1), sy, syx, 1.0, max_iter, 1e-10, work[2:])
            xt = np.take(part, test, axis=1, out=_view(work[1], (len(part), *test.shape)))
            xt *= w.reshape(*xs.shape[:-1], 1)
            xt += b.reshape(*xs.shape[:-1], 1)
            accuracies[start : start + per_chunk, chosen] = ((xt > 0) == member[test]).mean(-1)
    return accuracies.reshape(*x.shape[:-1], folds)


def fit_logistic_1d(
    x: ArrayLike, y: ArrayLike, *, c: float = 1.0, max_iter: int = 100, tol: float = 1e-10
) -> tuple[FloatArray, FloatArray]:
    """Batched 1-D logistic regressions with scikit-learn's ``LogisticRegression(C=c)`` objective.

    Minimises ``c · Σ logloss(y, w·x + b) + w²/2`` (intercept unpenalised; the penalty keeps the
    optimum finite even on separable data) by Newton's method on (w, b) from (0, 0) with a
    backtracking line search, until the update is below ``tol`` (relative to 1 + |w|, |b|) or
    after ``max_iter`` iterations. ``x`` is ``(..., m)``, one problem per leading index; ``y``
    holds 0/1 labels, broadcastable to ``x``.

    Returns:
        ``(w, b)``, each of shape ``x.shape[:-1]``; predict class 1 where ``w·x + b > 0``.
    """
    x = np.asarray(x, dtype=np.float64)
    batch, y = x.shape[:-1], np.asarray(y, dtype=np.float64)
    sy = np.broadcast_to(y.sum(-1), batch).ravel()
    syx = np.broadcast_to(np.einsum("...i,...i->...", y, x), batch).ravel()
    xs = x.reshape(len(sy), x.shape[-1])
    w, b = _fit(xs, sy, syx, c, max_iter, tol, np.empty((7, x.size)))
    return w.reshape(batch), b.reshape(batch)


def _fit(
    x: FloatArray,
    sy: FloatArray,
    syx: FloatArray,
    c: float,
    max_iter: int,
    tol: float,
    work: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """`fit_logistic_1d` on ``(B, m)`` features, with ``(7, B·m)`` scratch memory."""
    m = x.shape[1]
    terms, current = _newton_terms(x, sy, syx, c, [_view(u, x.shape) for u in work[2:]])
    active: IntArray = np.arange(len(sy))
    wa, ba, w, b = (np.zeros(len(sy)) for _ in range(4))
    done, spare = np.zeros(len(sy), dtype=bool), 0
    for _ in range(max_iter):
        f, gw, gb, hww, hwb, hbb = current
        det = np.maximum(hww * hbb - hwb * hwb, np.finfo(np.float64).tiny)  # ≥ hbb ≥ 0
        dw = np.where(done, 0.0, (hbb * gw - hwb * gb) / det)
        db = np.where(done, 0.0, (hww * gb - hwb * gw) / det)
        small = np.maximum(abs(dw), abs(db)) <= tol * (1 + np.maximum(abs(wa), abs(ba)))
        last = small & ~done  # take the last, tiny step without a line search
        w[active[last]], b[active[last]] = (wa - dw)[last], (ba - db)[last]
        done |= small
        if done.all():
            return w, b
        if done.mean() > 0.25:  # drop the converged problems
            keep = np.flatnonzero(~done)
            x = np.take(x, keep, axis=0, out=_view(work[spare], (len(keep), m)), mode="clip")
            spare = 1 - spare  # x now lives in work[1 - spare]
            active, sy, syx, done = active[keep], sy[keep], syx[keep], done[keep]
            wa, ba, dw, db, f = wa[keep], ba[keep], dw[keep], db[keep], f[keep]
            terms, _ = _newton_terms(x, sy, syx, c, [_view(u, x.shape) for u in work[2:]])
        step = np.ones(len(wa))
        trial = terms(wa - dw, ba - db)
        for _ in range(60):  # halve the steps that raised the objective
            worse = trial[0] > f + 1e-12 * (1.0 + abs(f))
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
            trial = terms(wa - step * dw, ba - step * db)
        wa, ba, current = wa - step * dw, ba - step * db, trial
    w[active[~done]], b[active[~done]] = wa[~done], ba[~done]
    return w, b


def _newton_terms(
    x: FloatArray, sy: FloatArray, syx: FloatArray, c: float, scratch: list[FloatArray]
) -> tuple[Callable[[FloatArray, FloatArray], Terms], Terms]:
    """Objective, gradients and Hessian of ``(B, m)`` problems: a function of (w, b), and at 0."""
    x2, z, e, q, h = scratch
    np.multiply(x, x, out=x2)
    m, sx = x.shape[1], x.sum(-1)

    def dot(u: FloatArray, v: FloatArray) -> FloatArray:
        return np.asarray(np.einsum("ij,ij->i", u, v), dtype=np.float64)

    def terms(w: FloatArray, b: FloatArray) -> Terms:
        np.add(np.multiply(x, w[:, None], out=z), b[:, None], out=z)
        half_abs = 0.5 * np.abs(z, out=e).sum(-1)
        np.exp(np.negative(e, out=e), out=e)  # e = exp(-|z|)
        np.reciprocal(np.add(e, 1.0, out=q), out=q)  # q = sigmoid(|z|)
        np.multiply(np.multiply(e, q, out=h), q, out=h)  # sigmoid'(z), exact in both tails
        hbb, hwb, hww = c * h.sum(-1), c * dot(h, x), c * dot(h, x2) + 1.0
        np.copysign(np.subtract(q, 0.5, out=q), z, out=q)  # sigmoid(z) - 1/2
        gb, gw = c * (q.sum(-1) + 0.5 * m - sy), c * (dot(q, x) + 0.5 * sx - syx) + w
        softplus = np.log1p(e, out=e).sum(-1) + half_abs + 0.5 * (w * sx + b * m)
        return c * (softplus - w * syx - b * sy) + 0.5 * w * w, gw, gb, hww, hwb, hbb

    ones = np.ones(len(x))
    at_zero = (
        c * m * np.log(2.0) * ones,
        c * (0.5 * sx - syx),
        c * (0.5 * m - sy) * ones,
        0.25 * c * x2.sum(-1) + 1.0,
        0.25 * c * sx,
        0.25 * c * m * ones,
    )
    return terms, at_zero


def _fold_layout(n: int, folds: int) -> list[tuple[IntArray, IntArray, IntArray]]:
    """Folds grouped by training size (at most two groups), with their train and test slots."""
    side = np.arange(n) % folds
    fold = np.concatenate([side, side])
    groups = [g for g in (np.arange(n % folds), np.arange(n % folds, folds)) if len(g)]
    return [
        (
            g,
            np.stack([np.flatnonzero(fold != f) for f in g]),
            np.stack([np.flatnonzero(fold == f) for f in g]),
        )
        for g in groups
    ]


def _view(buffer: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """The first elements of a flat scratch ``buffer``, as an array of ``shape``."""
    return buffer[: int(np.prod(shape))].reshape(shape)
