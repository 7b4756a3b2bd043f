"""pool="global" against pool="batch" under DistributedDataParallel: the cost per training step (CPU, gloo).

    python benchmarks/distributed.py            # 2 and 4 processes (about two minutes on 2 cores)
    python benchmarks/distributed.py --quick    # 2 processes, few steps (a smoke run)

Each process trains the same small segmentation network (DDP, SGD, float32) on its own images,
alternating steps with ``LossMaxPooling(pool="batch")`` (each process pools its own pixels) and
``pool="global"`` (one pool over every process), in alternating order; the figures are medians
over steps as timed on process 0 (DDP's gradient all-reduce makes every step end together). The
pooling alone (forward and backward of the loss on fixed logits) is timed the same way. The
collectives of one global call come from :func:`solvers.torch.global_pool_traffic`.

Writes ``benchmarks/distributed.md``, which ``benchmarks/report.py`` appends to
``docs/benchmarks.md``, and replaces that section of ``docs/benchmarks.md`` now.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solvers._torch_distributed import Collectives, solve_global  # noqa: E402
from solvers.torch import LossMaxPooling, global_pool_traffic  # noqa: E402

SECTION = Path(__file__).with_name("distributed.md")
HEADING = '## One pool across processes: pool="global" (CPU, gloo)'
CLASSES, P, RATIO = 19, 1.7, 0.3


def _worker(rank: int, world: int, store: str, steps: int, images: int, side: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=300))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, CLASSES, 1))
    model = DistributedDataParallel(net)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(images, 3, side, side, generator=g)
    y = torch.randint(0, CLASSES, (images, side, side), generator=g)
    logits = torch.randn(images, CLASSES, side, side, generator=g, requires_grad=True)
    criteria = {pool: LossMaxPooling(P, RATIO, pool=pool, check_finite=False) for pool in ("batch", "global")}

    def step(pool):
        optimiser.zero_grad()
        criteria[pool](model(x), y).backward()
        optimiser.step()

    def pooling(pool):
        logits.grad = None
        criteria[pool](logits, y).backward()

    pixels = nn.functional.cross_entropy(logits.detach(), y, reduction="none").reshape(1, -1)
    count = torch.tensor(pixels.shape[1])

    def kernels(_):  # the global pool's computation on this process's pixels, without communicating
        solve_global(pixels, count, P, RATIO, Collectives(communicate=False), check_finite=False)

    times = {f"{what} {pool}": [] for what in ("step", "pooling", "kernels") for pool in criteria}
    for i in range(steps + 2):  # two warm-up rounds
        for pool in (("batch", "global") if i % 2 else ("global", "batch")):
            for what, fn in (("step", step), ("pooling", pooling), ("kernels", kernels)):
                dist.barrier()
                start = time.perf_counter()
                fn(pool)
                if i >= 2:
                    times[f"{what} {pool}"].append(time.perf_counter() - start)
    if rank == 0:
        Path(out).write_text(json.dumps({k: 1e3 * statistics.median(v) for k, v in times.items()}))
    dist.destroy_process_group()


def measure(world: int, steps: int, images: int, side: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "medians.json")
        mp.spawn(_worker, args=(world, str(Path(tmp) / "store"), steps, images, side, out), nprocs=world, join=True)
        return dict(world=world, pixels=images * side * side, **json.loads(Path(out).read_text()))


def section(rows: list[dict], machine: str) -> str:
    lines = [HEADING, "",
             "Produced by `python benchmarks/distributed.py` (appended here by `benchmarks/report.py`). Every process",
             f"trains a two-layer convolutional network (float32, DDP, SGD) with `LossMaxPooling(p={P}, ratio={RATIO})`",
             "on its own images, alternating steps of `pool=\"batch\"` and `pool=\"global\"`; medians over steps, timed",
             "on process 0. *Pooling* is the loss layer alone (forward and backward on fixed logits); *global kernels* is",
             "the global pool's computation on one process's pixels without communicating (the radix passes on CPU), so",
             "pooling, global minus global kernels is about the time spent in and waiting for the collectives. All",
             "processes share this machine's cores, so with more processes than cores every collective also waits for",
             "the scheduler.", "",
             f"**Machine:** {machine}", "",
             "| processes | pixels per process | step, batch ms | step, global ms | overhead ms | overhead | "
             "pooling, batch ms | pooling, global ms | global kernels ms |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        extra = r["step global"] - r["step batch"]
        lines.append(f"| {r['world']} | {r['pixels']:,} | {r['step batch']:.3g} | {r['step global']:.3g} | "
                     f"{extra:.3g} | {100 * extra / r['step batch']:+.0f} % | {r['pooling batch']:.3g} | "
                     f"{r['pooling global']:.3g} | {r['kernels global']:.3g} |")
    lines += ["", "Collectives of one `pool=\"global\"` call, on every process, whatever the pool size (all-reduces;",
              "bytes = the size of the tensors each process contributes):", "",
              "| p | losses | collectives | bytes |", "|---:|---|---:|---:|"]
    for p in (1.0, P, math.inf):
        for dtype in (torch.float32, torch.float64):
            t = global_pool_traffic(p, dtype)
            lines.append(f"| {p:g} | {str(dtype).replace('torch.', '')} | {t.collectives} | {t.bytes:,} |")
    return "\n".join(lines) + "\n"


def update_docs(text: str, page: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace (or add) this section at the end of the benchmarks page."""
    old = page.read_text() if page.exists() else "# Benchmarks\n"
    head = old.split(HEADING)[0].rstrip()
    page.write_text(head + "\n\n" + text)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from run import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 processes, few steps")
    args = parser.parse_args()
    worlds, steps = ((2,), 3) if args.quick else ((2, 4), 15)
    rows = [measure(world, steps, images=2, side=96) for world in worlds]
    text = section(rows, machine().replace(f"{torch.get_num_threads()} Torch threads", "1 Torch thread per process"))
    if args.quick:
        print(text)
    else:
        SECTION.write_text(text)
        update_docs(text)
        print(text)
