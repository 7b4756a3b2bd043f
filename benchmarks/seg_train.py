"""One training run of the segmentation harness: a small 2-D network, trained to a validation plateau.

The network is fully convolutional (3x3 convolutions with dilations 1, 2, 4, 8, 1 and a 1x1 classifier,
batch norm, ReLU) on four input channels: the T1 intensity and the pixel's x, y, z position. Adam; the
validation mIoU is measured every ``eval_every`` steps, and training stops when it has not improved for
``patience`` evaluations (or at ``max_steps``); the test counts are those of the best validation step.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seg_losses import make_loss
from seg_stats import iou_dice, slice_counts

DILATIONS = (1, 2, 4, 8, 1)


@dataclass(frozen=True)
class Schedule:
    batch: int = 8
    eval_every: int = 25
    patience: int = 4
    max_steps: int = 1500
    width: int = 24

    def __post_init__(self):
        for name in ("batch", "eval_every", "patience", "max_steps", "width"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.max_steps < self.eval_every:
            raise ValueError(f"max_steps must be >= eval_every = {self.eval_every}, got {self.max_steps}")


def network(classes: int, width: int) -> nn.Sequential:
    layers, channels = [], 4
    for d in DILATIONS:
        layers += [nn.Conv2d(channels, width, 3, padding=d, dilation=d, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers, nn.Conv2d(width, classes, 1))


@torch.no_grad()
def predict(model: nn.Module, inputs: np.ndarray, chunk: int = 16) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(inputs[i:i + chunk])).argmax(dim=1).numpy() for i in range(0, len(inputs), chunk)]
    model.train()
    return np.concatenate(out)


def validation_miou(model, split, classes) -> float:
    counts, _ = slice_counts(predict(model, split.inputs), split.labels, classes,
                             np.zeros(split.labels.shape, bool), np.zeros(split.labels.shape, bool))
    iou, _ = iou_dice(counts.sum(axis=0))
    present = counts[..., 1].sum(axis=0) > 0
    return float(100 * np.nanmean(iou[present]))


def train(data, loss_name: str, lr: float, seed: int, schedule: Schedule, test_masks=None,
          keep_model: bool = False) -> dict:
    """Train one model; returns its learning curve, best step, validation mIoU, (with ``test_masks``,
    the boundary and small-region masks of the test labels) its test counts and (with ``keep_model``)
    the model at its best validation step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = network(data.classes, schedule.width)
    loss_fn = make_loss(loss_name, data.train_frequency)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    train_split, val_split = data.splits["train"], data.splits["val"]
    inputs, labels = torch.from_numpy(train_split.inputs), torch.from_numpy(train_split.labels)
    order = np.array([], dtype=np.int64)
    curve, best, best_state, since_best, running, start = [], -1.0, None, 0, [], time.perf_counter()
    for step in range(1, schedule.max_steps + 1):
        if len(order) < schedule.batch:
            order = np.concatenate([order, rng.permutation(len(inputs))])
        batch, order = order[:schedule.batch], order[schedule.batch:]
        loss = loss_fn(model(inputs[batch]), labels[batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running.append(loss.detach())
        if step % schedule.eval_every == 0:
            score, train_loss = validation_miou(model, val_split, data.classes), float(torch.stack(running).mean())
            if not np.isfinite(train_loss):
                raise RuntimeError(f"{loss_name} at lr {lr} (seed {seed}): the training loss is {train_loss} "
                                   f"by step {step}")
            curve.append([step, round(train_loss, 5), round(score, 3)])
            running = []
            if score > best:
                best, best_state, since_best = score, copy.deepcopy(model.state_dict()), 0
            else:
                since_best += 1
                if since_best >= schedule.patience:
                    break
    result = {"loss": loss_name, "lr": lr, "seed": seed, "steps": curve[-1][0],
              "best_step": curve[int(np.argmax([c[2] for c in curve]))][0], "val_miou": best,
              "plateau": since_best >= schedule.patience, "curve": curve,
              "seconds": round(time.perf_counter() - start, 2)}
    model.load_state_dict(best_state)
    if keep_model:
        result["model"] = model
    if test_masks is not None:
        test = data.splits["test"]
        result["counts"] = slice_counts(predict(model, test.inputs), test.labels, data.classes, *test_masks)
    return result
