"""The losses the segmentation harness compares, by name.

``ce``; class-weighted CE ``wce-inverse``, ``wce-sqrt``, ``wce-median`` (weights from the training
frequencies, scaled to a pixel-average of 1, then clipped at ``WEIGHT_CLIP``; median-frequency weights
are ``median(f)`` times the inverse weights, so after that scaling ``wce-median`` is ``wce-inverse``);
``focal`` (gamma 2);
``topk-image-R`` and ``topk-batch-R`` (the mean of the ``round(R * n)`` largest pixel losses of each
image / of the batch: OHEM by ranking); ``ohem`` (mmseg's ``OHEMPixelSampler``: pixels whose
true-class probability is below ``max(OHEM_THRESHOLD, the min-kept-th smallest probability)``, at
least ``OHEM_MIN_KEPT`` of each image's pixels, averaged); ``lmp-P-R`` (``solvers.torch.LossMaxPooling``,
one pool per image). LMP at ``p = 1`` and ratio ``R`` is ``topk-image-R`` (exactly, when ``R * n`` is an
integer): the harness trains both and :func:`p1_agreement` checks it on every run's data.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from solvers.torch import LossMaxPooling

WEIGHT_CLIP = 10.0      # class weights (pixel-average 1) are clipped to at most this
FOCAL_GAMMA = 2.0
OHEM_THRESHOLD = 0.7    # mmseg's default ``thresh``
OHEM_MIN_KEPT = 0.1     # share of each image's pixels kept at least (mmseg's ``min_kept``, as a share)
WEIGHTINGS = ("inverse", "sqrt", "median")


def loss_grid(ps=(1.0, 1.2, 1.7, 3.0), ratios=(0.1, 0.25, 0.5)) -> list:
    """Every loss of the comparison: the baselines, top-k at each ratio, and LMP on the (p, ratio) grid."""
    names = ["ce", *(f"wce-{w}" for w in WEIGHTINGS), "focal", "ohem"]
    names += [f"topk-{pool}-{r:g}" for pool in ("image", "batch") for r in ratios]
    return names + [f"lmp-{p:g}-{r:g}" for p in ps for r in ratios]


def parse(name: str) -> tuple:
    """``name`` as (kind, p or weighting or pool, ratio); a ValueError names the accepted forms."""
    parts = name.split("-")
    try:
        if name in ("ce", "focal", "ohem"):
            return name, None, None
        if parts[0] == "wce" and len(parts) == 2 and parts[1] in WEIGHTINGS:
            return "wce", parts[1], None
        if parts[0] == "topk" and len(parts) == 3 and parts[1] in ("image", "batch") and 0 < float(parts[2]) <= 1:
            return "topk", parts[1], float(parts[2])
        if parts[0] == "lmp" and len(parts) == 3 and float(parts[1]) >= 1 and 0 <= float(parts[2]) <= 1:
            return "lmp", float(parts[1]), float(parts[2])
    except ValueError:
        pass
    raise ValueError(f"loss must be ce, focal, ohem, wce-{{{','.join(WEIGHTINGS)}}}, topk-{{image,batch}}-R "
                     f"(0 < R <= 1) or lmp-P-R (P >= 1, 0 <= R <= 1), got {name!r}")


def class_weights(frequency: np.ndarray, weighting: str) -> np.ndarray:
    """Inverse, square-root-inverse or median-frequency weights; pixel-average 1, clipped at WEIGHT_CLIP
    (the median-frequency weights are then the inverse weights: the scaling removes their factor median(f)).

    Classes absent from training get weight 0 (they never appear as a target there)."""
    present = frequency > 0
    raw = np.zeros_like(frequency, dtype=np.float64)
    f = frequency[present]
    raw[present] = {"inverse": 1 / f, "sqrt": 1 / np.sqrt(f), "median": np.median(f) / f}[weighting]
    raw /= np.sum(frequency * raw)
    return np.minimum(raw, WEIGHT_CLIP)


def top_share(losses: torch.Tensor, ratio: float) -> torch.Tensor:
    """The mean of the ``round(ratio * n)`` (at least 1) largest entries of each row of ``losses``."""
    k = max(1, round(ratio * losses.shape[-1]))
    return losses.topk(k, dim=-1, sorted=False).values.mean(dim=-1)


def ohem(pixel_ce: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mmseg's OHEM pixel sampler (threshold ``OHEM_THRESHOLD``, min kept ``OHEM_MIN_KEPT`` per image)."""
    with torch.no_grad():
        prob = logits.softmax(dim=1).gather(1, target.unsqueeze(1)).flatten()
        kept = min(round(OHEM_MIN_KEPT * target[0].numel()) * target.shape[0], prob.numel() - 1)
        threshold = torch.clamp(prob.kthvalue(kept + 1).values, min=OHEM_THRESHOLD)
        keep = (prob < threshold).to(pixel_ce.dtype)
    return (pixel_ce.flatten() * keep).sum() / keep.sum().clamp(min=1)


def make_loss(name: str, train_frequency: np.ndarray):
    """``loss(logits (N, C, H, W), target (N, H, W)) -> scalar`` for the loss called ``name``."""
    kind, arg, ratio = parse(name)
    if kind == "lmp":
        return LossMaxPooling(p=arg, ratio=ratio)
    if kind == "wce":
        weight = torch.as_tensor(class_weights(train_frequency, arg), dtype=torch.float32)
        return lambda logits, target: F.cross_entropy(logits, target, weight=weight)

    def loss(logits, target):
        pixel = F.cross_entropy(logits, target, reduction="none")
        if kind == "ce":
            return pixel.mean()
        if kind == "focal":
            p_true = torch.exp(-pixel)
            return ((1 - p_true) ** FOCAL_GAMMA * pixel).mean()
        if kind == "ohem":
            return ohem(pixel, logits, target)
        rows = pixel.flatten(1) if arg == "image" else pixel.reshape(1, -1)
        return top_share(rows, ratio).mean()

    return loss


def p1_agreement(logits: torch.Tensor, target: torch.Tensor, ratio: float) -> dict:
    """LMP at p = 1 against ``topk-image``: the largest differences of the values and of the logits'
    gradients (they agree to rounding where ``ratio * n`` is an integer)."""
    out = {}
    for name in (f"lmp-1-{ratio:g}", f"topk-image-{ratio:g}"):
        x = logits.detach().clone().requires_grad_(True)
        value = make_loss(name, np.ones(logits.shape[1]))(x, target)
        value.backward()
        out[name] = (value.detach(), x.grad)
    (v1, g1), (v2, g2) = out.values()
    return {"ratio": ratio, "pixels": target[0].numel(), "m": ratio * target[0].numel(),
            "value_difference": float((v1 - v2).abs()), "gradient_difference": float((g1 - g2).abs().max()),
            "value": float(v1)}
