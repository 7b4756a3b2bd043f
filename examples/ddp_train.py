"""Train a small segmentation model with one loss max-pooling pool across processes (DDP, CPU, gloo).

    torchrun --nproc_per_node=2 examples/ddp_train.py             # the loss curve of the DDP run
    torchrun --nproc_per_node=2 examples/ddp_train.py --compare   # ... next to the single-process curve
    python examples/ddp_train.py                                  # the single-process run alone

Every step draws one global batch of synthetic images (the same on every process, from the step
number) with a rare class, and each process trains on its own slice of the images (slices may be
uneven). ``LossMaxPooling(pool="global")`` pools the valid pixels of every slice as one pool, so
the DDP run follows the same trajectory as one process training on the whole batch with
``pool="batch"``: the losses printed are the same numbers (float64 model, up to rounding).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from solvers.torch import LossMaxPooling  # noqa: E402

CLASSES, IGNORE = 4, 255


def batch(step: int, images: int, size: int = 16):
    """Images and labels of one step: blobs of a rare class 3 on a background of classes 0-2."""
    g = torch.Generator().manual_seed(1000 + step)
    labels = torch.randint(0, 3, (images, 1, size // 4, size // 4), generator=g).float()
    labels = nn.functional.interpolate(labels, size=(size, size), mode="nearest")[:, 0].long()
    rare = torch.rand(images, size, size, generator=g) < 0.03
    labels[rare] = 3
    labels[torch.rand(images, size, size, generator=g) < 0.05] = IGNORE
    onehot = nn.functional.one_hot(labels.clamp(max=CLASSES - 1), CLASSES).permute(0, 3, 1, 2)
    x = onehot[:, :3].double() + 0.8 * torch.randn(images, 3, size, size, generator=g, dtype=torch.float64)
    x[:, 0] += onehot[:, 3] * 0.7  # the rare class is faint
    return x, labels


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, CLASSES, 3, padding=1)).double()


def train(net: nn.Module, criterion: nn.Module, steps: int, images: int, rank: int, world: int) -> list[float]:
    """SGD on this process's slice of every step's batch; returns the loss of every step."""
    optimiser = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    curve = []
    for step in range(steps):
        x, y = batch(step, images)
        mine = np.array_split(np.arange(images), world)[rank]  # uneven when world does not divide images
        optimiser.zero_grad()
        loss = criterion(net(x[mine]), y[mine])
        loss.backward()
        optimiser.step()
        curve.append(float(loss.detach()))
    return curve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=5, help="images per global batch")
    parser.add_argument("--p", type=float, default=1.7)
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--compare", action="store_true", help="also run one process on the whole batches")
    args = parser.parse_args()
    torch.set_num_threads(1)
    distributed = "RANK" in os.environ  # started by torchrun
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    net = DistributedDataParallel(model()) if distributed else model()
    criterion = LossMaxPooling(args.p, args.ratio, ignore_index=IGNORE, pool="global")
    curve = train(net, criterion, args.steps, args.images, rank, world)
    single = None
    if args.compare and rank == 0:
        batch_pool = LossMaxPooling(args.p, args.ratio, ignore_index=IGNORE, pool="batch")
        single = train(model(), batch_pool, args.steps, args.images, 0, 1)
    if distributed:  # together: a rank that tore down while rank 0 still compared aborted at exit under load
        dist.barrier()
        dist.destroy_process_group()
    if rank != 0:
        return 0
    print(f"{world} process(es), pool='global', p={args.p}, ratio={args.ratio}, {args.images} images per step")
    print("step  loss" + ("                  single process        difference" if single else ""))
    for step, loss in enumerate(curve):
        extra = f"  {single[step]:.15f}  {abs(loss - single[step]):.1e}" if single else ""
        print(f"{step:4d}  {loss:.15f}{extra}")
    if single:
        worst = max(abs(a - b) / abs(b) for a, b in zip(curve, single))
        same = worst <= 1e-10
        print(f"largest relative difference {worst:.1e}: {'identical' if same else 'DIFFERENT'} loss curves")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
