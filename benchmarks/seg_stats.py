"""Metrics from per-slice counts, the bootstrap over seeds and test slices, and the verdict rule.

A model's test predictions are kept as counts per test slice: ``class_counts`` (T, C, 3) = the
intersection, ground-truth and predicted pixels of each class, and ``region_counts`` (T, 4) = the
boundary pixels labelled right, the boundary pixels, the small-region pixels labelled right, the
small-region pixels. Every metric is a function of counts summed over slices, so resampling slices
is resampling the counts.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METRICS = ("miou", "rare_iou", "boundary_recall", "small_recall")
SMALL_REGION = 16   # pixels: a connected region of one class at most this large is "small"


def region_masks(labels: np.ndarray) -> tuple:
    """(boundary, small) bool masks of (T, H, W) labels: a boundary pixel has a 4-neighbour of another
    class; a small-region pixel lies in a 4-connected region of its class of at most SMALL_REGION pixels."""
    boundary = np.zeros(labels.shape, dtype=bool)
    for axis in (1, 2):
        step = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        boundary[tuple(lo)] |= step
        boundary[tuple(hi)] |= step
    small = np.zeros(labels.shape, dtype=bool)
    for t, image in enumerate(labels):
        for c in np.unique(image):
            regions, count = ndimage.label(image == c)
            sizes = np.bincount(regions.ravel(), minlength=count + 1)
            tiny = sizes <= SMALL_REGION
            tiny[0] = False
            small[t] |= tiny[regions]
    return boundary, small


def slice_counts(pred: np.ndarray, labels: np.ndarray, classes: int, boundary, small) -> tuple:
    """``class_counts`` (T, C, 3) and ``region_counts`` (T, 4) of predictions ``pred`` (T, H, W)."""
    t = labels.shape[0]
    right = pred == labels
    flat = lambda a, weights=None: np.stack([np.bincount(a[i].ravel(), weights=None if weights is None else  # noqa: E731
                                                         weights[i].ravel(), minlength=classes) for i in range(t)])
    class_counts = np.stack([flat(labels, right), flat(labels), flat(pred)], axis=-1).astype(np.int64)
    region_counts = np.stack([(right & boundary).sum(axis=(1, 2)), boundary.sum(axis=(1, 2)),
                              (right & small).sum(axis=(1, 2)), small.sum(axis=(1, 2))], axis=-1)
    return class_counts, region_counts.astype(np.int64)


def iou_dice(class_counts: np.ndarray) -> tuple:
    """Per-class IoU and Dice of counts summed over slices (``(..., C, 3)``); NaN where a class is in
    neither the ground truth nor the prediction."""
    inter, gt, pred = (class_counts[..., k].astype(np.float64) for k in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (gt + pred - inter), 2 * inter / (gt + pred)


def scores(class_counts, region_counts, evaluated, rare) -> dict:
    """The metrics of counts summed over slices: ``class_counts`` (..., C, 3), ``region_counts``
    (..., 4). ``evaluated``: the classes mIoU averages over; ``rare``: the rarest third of them."""
    iou, _ = iou_dice(class_counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"miou": 100 * np.nanmean(iou[..., evaluated], axis=-1),
                "rare_iou": 100 * np.nanmean(iou[..., rare], axis=-1),
                "boundary_recall": 100 * region_counts[..., 0] / region_counts[..., 1],
                "small_recall": 100 * region_counts[..., 2] / region_counts[..., 3]}


def evaluated_classes(test_class_counts: np.ndarray, train_frequency: np.ndarray) -> tuple:
    """(evaluated, rare): the classes present in the test ground truth, and the third of them
    (rounded up) rarest in training."""
    present = np.flatnonzero(test_class_counts[..., 1].sum(axis=tuple(range(test_class_counts.ndim - 2))) > 0)
    order = present[np.argsort(train_frequency[present], kind="stable")]
    return present, np.sort(order[:-(-len(order) // 3)])


class Bootstrap:
    """Resampling weights for ``seeds`` x ``slices``: each resample draws seeds and test slices with
    replacement; one instance gives every loss the same draws, so differences are paired."""

    def __init__(self, seeds: int, slices: int, resamples: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.seed_weights = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=resamples) / seeds
        self.slice_weights = rng.multinomial(slices, np.full(slices, 1 / slices), size=resamples).astype(np.float64)

    def draws(self, class_counts, region_counts, evaluated, rare) -> dict:
        """Each metric's seed-average in every resample: arrays (resamples,). Counts: (S, T, C, 3), (S, T, 4)."""
        summed_classes = np.einsum("bt,stck->bsck", self.slice_weights, class_counts[:, :, evaluated])
        summed_regions = np.einsum("bt,stk->bsk", self.slice_weights, region_counts)
        local = np.searchsorted(evaluated, rare)
        per_seed = scores(summed_classes, summed_regions, np.arange(len(evaluated)), local)
        weights = lambda value: self.seed_weights * ~np.isnan(value)  # noqa: E731  (a NaN seed counts for none)
        return {name: np.nansum(self.seed_weights * value, axis=1) / weights(value).sum(axis=1)
                for name, value in per_seed.items()}


def interval(draws: np.ndarray, level: float = 0.95) -> tuple:
    """The percentile interval of bootstrap draws."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


def verdict(lo: float, hi: float) -> str:
    """"better" when the interval of a difference excludes 0 above, "worse" when it excludes 0 below,
    "no clear difference" otherwise, whatever single seeds did."""
    return "better" if lo > 0 else "worse" if hi < 0 else "no clear difference"


def compare(draws_a: dict, draws_b: dict, point_a: dict, point_b: dict) -> dict:
    """a - b for every metric: the point difference, its 95 % interval and the verdict."""
    out = {}
    for name in METRICS:
        lo, hi = interval(draws_a[name] - draws_b[name])
        out[name] = {"difference": round(point_a[name] - point_b[name], 3), "lo": round(lo, 3), "hi": round(hi, 3),
                     "verdict": verdict(lo, hi)}
    return out
